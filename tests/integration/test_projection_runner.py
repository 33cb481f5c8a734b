"""Projections over a real NATS server and real SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from ncii_events.db import make_engine
from ncii_events.embedded import EmbeddedNats
from ncii_events.projection import ProjectionRunner, list_dead_letters, retry_dead_letter
from ncii_events.store import NEW, EventStore, Version
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ROOT
from tests.support.events import NoteAdded, PoisonPill
from tests.support.factories import CAUSE, new_case, note_ref
from tests.support.notes_projection import NOTES, projection_for


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    yield eng
    await eng.dispose()


async def _append_notes(store: EventStore, case: str, count: int) -> list[str]:
    version = NEW
    ids: list[str] = []
    for start in range(0, count, 100):
        events = [NoteAdded(text=f"note {i}") for i in range(start, min(count, start + 100))]
        written = await store.append(note_ref(case), events, expected=version, cause=CAUSE)
        version = Version.of(written)
        ids += [w.envelope.event_id for w in written]
    return ids


async def _rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(NOTES))).scalar_one()
        distinct = (
            await conn.execute(select(func.count(NOTES.c.event_id.distinct())))
        ).scalar_one()
    return int(total), int(distinct)


async def _wait_rows(engine: AsyncEngine, at_least: int, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (await _rows(engine))[0] < at_least:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"fewer than {at_least} rows after {timeout}s")
        await asyncio.sleep(0.02)


def _worker(nats_url: str, db_url: str, case: str, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.projection_worker", nats_url, db_url, case, mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_a_projection_killed_mid_batch_applies_each_event_exactly_once_after_restart(
    nats_server: EmbeddedNats, store: EventStore, engine: AsyncEngine, database_url: str
) -> None:
    case = new_case()
    ids = await _append_notes(store, case, 300)

    # 1. dies after committing its third batch and before acknowledging it
    first = _worker(nats_server.url, database_url, case, "die-after-commit")
    try:
        assert await asyncio.to_thread(first.wait, 60) == 3
    finally:
        if first.poll() is None:  # it did not die as planned: do not leave it running
            first.kill()
            first.wait(10)
    assert (await _rows(engine))[0] == 60  # three batches of 20 committed, the third not acked

    # 2. killed with SIGKILL while it is in the middle of later batches
    second = _worker(nats_server.url, database_url, case, "run")
    try:
        await _wait_rows(engine, 150)
    finally:
        second.send_signal(signal.SIGKILL)
        await asyncio.to_thread(second.wait, 30)
    assert (await _rows(engine))[0] < 300

    # 3. a clean restart finishes the job
    third = _worker(nats_server.url, database_url, case, "run")
    try:
        await _wait_rows(engine, 300)
        await asyncio.sleep(1.5)  # past the ack wait: any redelivery would have landed by now
    finally:
        third.terminate()
        await asyncio.to_thread(third.wait, 30)
    assert await _rows(engine) == (300, 300)
    async with engine.connect() as conn:
        applied = set((await conn.execute(select(NOTES.c.event_id))).scalars())
    assert applied == set(ids)


async def test_a_poison_event_becomes_a_dead_letter_and_the_projection_moves_on(
    nc: NATS, store: EventStore, engine: AsyncEngine
) -> None:
    case = new_case()
    written = await store.append(
        note_ref(case),
        [NoteAdded(text="before"), PoisonPill(), NoteAdded(text="after")],
        expected=NEW,
        cause=CAUSE,
    )
    projection = projection_for(case)
    runner = ProjectionRunner(
        nc, engine, store, projection, service="test", max_deliver=3, retry_delay=0.05
    )
    await runner.start()
    try:
        await runner.wait_caught_up(timeout=30)
    finally:
        await runner.stop()
    async with engine.connect() as conn:
        texts = list((await conn.execute(select(NOTES.c.text).order_by(NOTES.c.seq))).scalars())
    assert texts == ["before", "after"]
    [dead] = await list_dead_letters(engine)
    assert dead.stream_seq == written[1].seq
    assert dead.event_type == "TestPoisonPill" and dead.event_id == written[1].envelope.event_id
    assert dead.error_type == "ValueError" and dead.attempts == 3
    assert "notes_projection.py" in dead.error_where
    assert "cannot read" not in dead.error_where  # where, never the message or the data

    fixed = projection_for(case, accept_poison=True)
    assert await retry_dead_letter(engine, store, fixed, dead.id)
    assert await list_dead_letters(engine) == []
    async with engine.connect() as conn:
        texts = list((await conn.execute(select(NOTES.c.text).order_by(NOTES.c.seq))).scalars())
    assert texts == ["before", "poison", "after"]


async def test_rebuild_drops_the_tables_and_replays_the_log_to_the_same_rows(
    nc: NATS, store: EventStore, engine: AsyncEngine
) -> None:
    case = new_case()
    await _append_notes(store, case, 120)
    runner = ProjectionRunner(nc, engine, store, projection_for(case), service="test")
    await runner.start()
    try:
        await runner.wait_caught_up()
        async with engine.connect() as conn:
            before = list((await conn.execute(select(NOTES.c.event_id, NOTES.c.text))).all())
        await runner.rebuild()
        await runner.wait_caught_up()
        await _wait_rows(engine, 120)
        async with engine.connect() as conn:
            after = list((await conn.execute(select(NOTES.c.event_id, NOTES.c.text))).all())
    finally:
        await runner.stop()
    assert sorted(after) == sorted(before) and len(after) == 120


async def test_a_consumer_made_with_an_ack_per_event_is_replaced_from_the_sql_checkpoint(
    nc: NATS, store: EventStore, engine: AsyncEngine
) -> None:
    """Earlier versions made consumers that acknowledge each event; the runner now acknowledges
    a batch at once. Such a consumer, even one that would deliver everything again, is replaced
    by one that starts after the checkpoint: nothing is applied twice, nothing is skipped."""
    case = new_case()
    projection = projection_for(case)
    await _append_notes(store, case, 30)
    runner = ProjectionRunner(nc, engine, store, projection, service="test")
    await runner.start()
    await runner.wait_caught_up(timeout=30)
    await runner.stop()
    durable = runner.durable
    js = nc.jetstream()
    assert (await js.consumer_info(store.spec.name, durable)).config.ack_policy == AckPolicy.ALL

    await js.delete_consumer(store.spec.name, durable)
    await js.add_consumer(
        store.spec.name,
        ConsumerConfig(
            durable_name=durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=projection.subjects[0],
        ),
    )
    more = await _append_notes_after(store, case, 30, 20)
    restarted = ProjectionRunner(nc, engine, store, projection, service="test")
    await restarted.start()
    try:
        await _wait_rows(engine, 50)
        await restarted.wait_caught_up(timeout=30)
    finally:
        await restarted.stop()
    info = await js.consumer_info(store.spec.name, durable)
    assert info.config.ack_policy == AckPolicy.ALL
    assert info.config.deliver_policy == DeliverPolicy.BY_START_SEQUENCE
    assert info.config.opt_start_seq == runner.last_seq + 1
    assert await _rows(engine) == (50, 50)
    async with engine.connect() as conn:
        applied = set((await conn.execute(select(NOTES.c.event_id))).scalars())
    assert set(more) <= applied


async def _append_notes_after(store: EventStore, case: str, existing: int, count: int) -> list[str]:
    version = Version.of(await store.load(note_ref(case)))
    assert version.count == existing
    events = [NoteAdded(text=f"later {i}") for i in range(count)]
    written = await store.append(note_ref(case), events, expected=version, cause=CAUSE)
    return [w.envelope.event_id for w in written]
