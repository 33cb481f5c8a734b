"""Projections over a real NATS server and real SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS
from ncii_contracts.base import DomainEvent
from ncii_events.db import make_engine, migrate_runtime
from ncii_events.keys import NatsCaseKeys
from ncii_events.projection import (
    Projection,
    ProjectionRunner,
    list_dead_letters,
    retry_dead_letter,
)
from ncii_events.projection.checkpoints import CHECKPOINTS
from ncii_events.registry import EventRegistry
from ncii_events.service import ServiceRuntime, ServiceSpec, create_app
from ncii_events.settings import Settings
from ncii_events.signing import provision
from ncii_events.store import NEW, EventStore, Version
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ROOT, SuiteNats
from tests.support.events import NoteAdded, PoisonPill
from tests.support.eventually import eventually
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


async def _applied_event_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(NOTES.c.event_id))).scalars())


async def _wait_rows(engine: AsyncEngine, at_least: int) -> None:
    async def enough() -> bool:
        return (await _rows(engine))[0] >= at_least

    await eventually(enough, what=f"{at_least} rows")


async def _checkpoint(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as conn:
        query = select(CHECKPOINTS.c.last_seq).where(CHECKPOINTS.c.projection == name)
        return int((await conn.execute(query)).scalar_one_or_none() or 0)


async def _wait_checkpoint(engine: AsyncEngine, name: str, seq: int) -> None:
    """Until a runner in another process has applied the log up to ``seq``."""

    async def reached() -> bool:
        return await _checkpoint(engine, name) >= seq

    await eventually(reached, what=f"the checkpoint at {seq}")


def _worker(nats_url: str, db_url: str, case: str, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.projection_worker", nats_url, db_url, case, mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_a_projection_killed_mid_batch_applies_each_event_exactly_once_after_restart(
    nats_server: SuiteNats, store: EventStore, engine: AsyncEngine, database_url: str
) -> None:
    case = new_case()
    ids = await _append_notes(store, case, 300)

    # 1. dies right after committing its third batch
    first = _worker(nats_server.url, database_url, case, "die-after-commit")
    try:
        assert await asyncio.to_thread(first.wait, 60) == 3
    finally:
        if first.poll() is None:  # it did not die as planned: do not leave it running
            first.kill()
            first.wait(10)
    assert (await _rows(engine))[0] == 60  # three batches of 20 committed

    # 2. killed with SIGKILL while it is in the middle of later batches
    second = _worker(nats_server.url, database_url, case, "run")
    try:
        await _wait_rows(engine, 150)
    finally:
        second.send_signal(signal.SIGKILL)
        await asyncio.to_thread(second.wait, 30)
    assert (await _rows(engine))[0] < 300

    # 3. a clean restart finishes the job, from the checkpoint, at once
    third = _worker(nats_server.url, database_url, case, "run")
    try:
        await _wait_checkpoint(engine, projection_for(case).name, await store.last_sequence())
    finally:
        third.terminate()
        await asyncio.to_thread(third.wait, 30)
    assert await _rows(engine) == (300, 300)
    applied = await _applied_event_ids(engine)
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
    runner = ProjectionRunner(nc, engine, store, projection, max_attempts=3, retry_delay=0.05)
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


class _PoisonPillFromNewerCode(
    DomainEvent, aggregate="note", event_type="TestPoisonPill", version=2
):
    """The same event type as written by a later version of the code than the runner's."""


async def test_an_event_this_code_cannot_read_becomes_a_dead_letter_and_the_projection_moves_on(
    nc: NATS, case_keys: NatsCaseKeys, store: EventStore, engine: AsyncEngine
) -> None:
    case = new_case()
    newer = EventStore(
        nc,
        case_keys,
        registry=EventRegistry(NoteAdded, _PoisonPillFromNewerCode),
        signing=store.signing,
    )
    first = await newer.append(
        note_ref(case), [NoteAdded(text="before")], expected=NEW, cause=CAUSE
    )
    unreadable = await newer.append(
        note_ref(case), [_PoisonPillFromNewerCode()], expected=Version.of(first), cause=CAUSE
    )
    await newer.append(
        note_ref(case),
        [NoteAdded(text="after")],
        expected=Version.of(first + unreadable),
        cause=CAUSE,
    )
    projection = projection_for(case)
    runner = ProjectionRunner(nc, engine, store, projection, max_attempts=3, retry_delay=0.01)
    await runner.start()
    try:
        await runner.wait_caught_up(timeout=30)
    finally:
        await runner.stop()
    async with engine.connect() as conn:
        texts = list((await conn.execute(select(NOTES.c.text).order_by(NOTES.c.seq))).scalars())
    assert texts == ["before", "after"]
    [dead] = await list_dead_letters(engine)
    assert dead.stream_seq == unreadable[0].seq and dead.attempts == 3
    assert dead.event_type == "TestPoisonPill"
    assert dead.event_id == unreadable[0].envelope.event_id
    assert dead.error_type == "UnknownEventError"  # v2 is newer than this code
    assert not await retry_dead_letter(engine, store, projection, dead.id)  # still unreadable


async def test_rebuild_drops_the_tables_and_replays_the_log_to_the_same_rows(
    nc: NATS, store: EventStore, engine: AsyncEngine
) -> None:
    case = new_case()
    await _append_notes(store, case, 120)
    runner = ProjectionRunner(nc, engine, store, projection_for(case))
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


async def _append_notes_after(store: EventStore, case: str, existing: int, count: int) -> list[str]:
    version = Version.of(await store.load(note_ref(case)))
    assert version.count == existing
    events = [NoteAdded(text=f"later {i}") for i in range(count)]
    written = await store.append(note_ref(case), events, expected=version, cause=CAUSE)
    return [w.envelope.event_id for w in written]


async def test_two_runner_processes_on_one_database_apply_each_event_once_even_when_one_is_killed(
    nats_server: SuiteNats, store: EventStore, engine: AsyncEngine, database_url: str
) -> None:
    case = new_case()
    ids = await _append_notes(store, case, 400)
    name = projection_for(case).name
    # Deployed replicas start on a migrated database: migrations are not made for racing.
    await migrate_runtime(engine)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: NOTES.metadata.create_all(c))
    first = _worker(nats_server.url, database_url, case, "run")
    second = _worker(nats_server.url, database_url, case, "run")
    try:
        await _wait_rows(engine, 100)
        first.send_signal(signal.SIGKILL)  # in the middle: the other one finishes the job
        await asyncio.to_thread(first.wait, 30)
        await _wait_checkpoint(engine, name, await store.last_sequence())
    finally:
        for worker in (first, second):
            if worker.poll() is None:
                worker.terminate()
                await asyncio.to_thread(worker.wait, 30)
    assert await _rows(engine) == (400, 400)
    applied = await _applied_event_ids(engine)
    assert applied == set(ids)


async def test_two_runners_in_one_process_share_the_work_and_apply_each_event_once(
    nc: NATS, store: EventStore, engine: AsyncEngine
) -> None:
    case = new_case()
    projection = projection_for(case)
    a = ProjectionRunner(nc, engine, store, projection, batch_size=10)
    b = ProjectionRunner(nc, engine, store, projection, batch_size=10)
    await a.start()
    await b.start()
    try:
        ids = await _append_notes(store, case, 250)
        await asyncio.gather(a.wait_caught_up(), b.wait_caught_up())
    finally:
        await asyncio.gather(a.stop(), b.stop())
    assert a.applied + b.applied == 250
    assert await _rows(engine) == (250, 250)
    applied = await _applied_event_ids(engine)
    assert applied == set(ids)


async def test_an_emptied_or_restored_database_catches_up_from_its_own_checkpoint(
    nc: NATS, store: EventStore, engine: AsyncEngine
) -> None:
    case = new_case()
    projection = projection_for(case)
    first = await _append_notes(store, case, 30)
    runner = ProjectionRunner(nc, engine, store, projection)
    await runner.start()
    await runner.wait_caught_up()
    await runner.stop()
    backup_seq = await _checkpoint(engine, projection.name)
    later = await _append_notes_after(store, case, 30, 20)
    runner = ProjectionRunner(nc, engine, store, projection)
    await runner.start()
    await runner.wait_caught_up()
    await runner.stop()
    assert await _rows(engine) == (50, 50)

    # restored from the backup taken at ``backup_seq``: the rows and checkpoint of then
    async with engine.begin() as conn:
        await conn.execute(NOTES.delete().where(NOTES.c.seq > backup_seq))
        await conn.execute(
            CHECKPOINTS.update()
            .where(CHECKPOINTS.c.projection == projection.name)
            .values(last_seq=backup_seq)
        )
    runner = ProjectionRunner(nc, engine, store, projection)
    await runner.start()
    await runner.wait_caught_up()
    await runner.stop()
    assert await _rows(engine) == (50, 50)

    # emptied: no tables at all
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: NOTES.metadata.drop_all(c))
        await conn.run_sync(lambda c: CHECKPOINTS.metadata.drop_all(c))
        await conn.exec_driver_sql("DROP TABLE alembic_version_ncii_runtime")
    runner = ProjectionRunner(nc, engine, store, projection)
    await runner.start()
    await runner.wait_caught_up()
    await runner.stop()
    assert await _rows(engine) == (50, 50)
    applied = await _applied_event_ids(engine)
    assert applied == set(first) | set(later)


class _Outage:
    """Makes every SQL statement that mentions ``table`` fail as if the server were down."""

    def __init__(self, engine: AsyncEngine, table: str) -> None:
        self.on = True
        self.table = table
        self.failures = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)

    def _before(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if self.on and self.table in statement:
            self.failures += 1
            raise OperationalError(statement, {}, ConnectionRefusedError("refused"))


async def test_a_database_outage_is_retried_until_it_ends_and_reported_as_not_ready_meanwhile(
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
    runner = ProjectionRunner(nc, engine, store, projection, max_attempts=2, retry_delay=0.01)
    runner.max_backoff = 0.05
    await runner.start()
    outage = _Outage(engine, "dead_letters")  # the dead letter cannot be written
    try:
        async with asyncio.timeout(30):
            while outage.failures < 3:  # several rounds failed, and the runner is still there
                async with runner._changed:
                    await runner._changed.wait()
        assert runner.running
        assert runner.health() == "retrying (OperationalError)"
        assert await runner.pending() > 0
        outage.on = False
        await runner.wait_caught_up()
        assert runner.health() == "ok"
    finally:
        await runner.stop()
    [dead] = await list_dead_letters(engine)
    assert dead.stream_seq == written[1].seq
    async with engine.connect() as conn:
        texts = list((await conn.execute(select(NOTES.c.text).order_by(NOTES.c.seq))).scalars())
    assert texts == ["before", "after"]


async def test_a_batch_applies_the_same_rows_as_one_event_at_a_time(
    nc: NATS, store: EventStore, engine: AsyncEngine
) -> None:
    case = new_case()
    await _append_notes(store, case, 60)
    rows: list[list[tuple[int, str]]] = []
    for batch_size in (1, 500):
        projection = projection_for(case)
        runner = ProjectionRunner(nc, engine, store, projection, batch_size=batch_size)
        await runner.rebuild() if rows else await runner.start()
        await runner.wait_caught_up()
        await runner.stop()
        async with engine.connect() as conn:
            result = await conn.execute(select(NOTES.c.seq, NOTES.c.text).order_by(NOTES.c.seq))
            rows.append([(int(r.seq), str(r.text)) for r in result])
    assert rows[0] == rows[1] and len(rows[0]) == 60


def _one_projection_service(
    name: str,
    projection: Projection,
    nats_server: SuiteNats,
    master_key_file: Path,
    tmp_path: Path,
) -> tuple[ServiceSpec[None], Settings]:
    """A service that runs only ``projection`` (and the principals), on SQLite in tmp_path,
    with its signing key in tmp_path/keys (``var/keys``, where `ncii run` puts it)."""
    provision(tmp_path / "keys", [name])
    spec: ServiceSpec[None] = ServiceSpec(
        name=name,
        title="t",
        description="t",
        port=0,
        projections=(projection,),
        consumes=(NoteAdded, PoisonPill),
    )
    settings = Settings(
        nats_url=nats_server.url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}",
        master_key_file=master_key_file,
        var_dir=tmp_path,
    )
    return spec, settings


async def test_readiness_says_which_projection_is_retrying_an_outage_and_why(
    nats_server: SuiteNats, store: EventStore, master_key_file: Path, tmp_path: Path
) -> None:
    case = new_case()
    projection = projection_for(case)
    spec, settings = _one_projection_service(
        "readiness", projection, nats_server, master_key_file, tmp_path
    )
    runtime = ServiceRuntime(spec, settings)
    await runtime.start()
    try:
        [runner] = [r for r in runtime.runners if r.name == projection.name]
        runner.retry_delay, runner.max_backoff = 0.01, 0.05
        await runtime.wait_caught_up()
        assert (await runtime.readiness())["ready"]
        outage = _Outage(runtime.engine, "dead_letters")
        await store.append(note_ref(case), [PoisonPill()], expected=NEW, cause=CAUSE)
        async with asyncio.timeout(30):
            async with runner._changed:
                await runner._changed.wait_for(lambda: runner.health() != "ok")
        checks = await runtime.readiness()
        assert checks["ready"] is False
        assert checks["not_working"] == {projection.name: "retrying (OperationalError)"}
        assert checks["projections_pending"][projection.name] > 0
        assert runtime.stopped_for_good() == {}  # retrying: alive, no restart needed
        outage.on = False
        await runtime.wait_caught_up()
        checks = await runtime.readiness()
        assert checks["ready"] and checks["not_working"] == {}
    finally:
        await runtime.stop()


async def test_liveness_fails_when_a_projection_has_stopped_for_good_so_it_gets_restarted(
    nats_server: SuiteNats,
    master_key_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the test process keeps its own logging (create_app would install the service's handler)
    monkeypatch.setattr("ncii_events.service.configure", lambda *_a, **_k: None)
    projection = projection_for(new_case())
    spec, settings = _one_projection_service(
        "liveness", projection, nats_server, master_key_file, tmp_path
    )
    app = create_app(spec, settings)
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    await runtime.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        [runner] = [r for r in runtime.runners if r.name == projection.name]
        assert runner._task is not None
        await runtime.wait_caught_up()  # its loop runs
        runner._task.cancel()  # its loop ends without a stop: nothing will restart it
        await eventually(lambda: not runner.alive(), what="the runner to end")
        response = await client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "stopped",
            "stopped": {projection.name: "stopped (CancelledError)"},
        }
        assert (await runtime.readiness())["ready"] is False
    finally:
        await client.aclose()
        await runtime.stop()  # stopping a dead runner is not an error
