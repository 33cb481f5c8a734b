"""The bank and the matcher over a real NATS server and real SQL (SQLite and PostgreSQL): they
follow intake's events, without rebuilding, and a restart restores the index from the bank."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError
from ncii_contracts.hashmatch import HashesBanked, HashesWithdrawn
from ncii_contracts.intake import CaseErased, CaseWithdrawn, HashesSubmitted, SubmittedHash
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, migrate
from ncii_events.envelope import Actor
from ncii_events.keys import NatsCaseKeys
from ncii_events.projection import ProjectionRunner
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, Version
from ncii_events.stream import REFERENCE
from ncii_events.worker import Worker
from ncii_hashmatch import app
from ncii_hashmatch.main import SPEC
from ncii_hashmatch.matcher import Matcher, Query
from ncii_hashmatch.read_models import queries
from ncii_hashmatch.read_models.schema import METADATA
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.events import REGISTRY

PARTNER = Cause(
    actor=Actor(organisation="ngo-test", principal="p-test", role="partner"),
    correlation_id="corr",
    causation_id="cause",
)
MIGRATIONS = Path(app.__file__).parent / "migrations"


def random_pdq(rng: np.random.Generator) -> str:
    return rng.integers(0, 256, size=32, dtype=np.uint8).tobytes().hex()


def flipped(value: str, bits: int, rng: np.random.Generator) -> str:
    n = int(value, 16)
    for b in rng.choice(256, size=bits, replace=False):
        n ^= 1 << int(b)
    return f"{n:064x}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await migrate(eng, MIGRATIONS, "alembic_version_hashmatch")
    yield eng
    await eng.dispose()


class Bank:
    """Hashmatch's bank projections, matcher and outbox, wired as the service wires them."""

    def __init__(
        self,
        nc: NATS,
        engine: AsyncEngine,
        store: EventStore,
        master: MasterKey,
        *,
        projections: bool = True,
        clock: Callable[[], float] = time.time,
    ):
        self.nc = nc
        self.clock = clock
        self.store = store
        self.ref_store = EventStore(
            nc, None, registry=REGISTRY, spec=REFERENCE, signing=store.signing
        )
        self.runtime: Any = SimpleNamespace(
            nc=nc,
            engine=engine,
            store=store,
            ref_store=self.ref_store,
            registry=REGISTRY,
            master=master,
            spec=SPEC,
        )
        self.with_projections = projections
        self.runners: list[ProjectionRunner] = []
        self.workers: list[Worker] = []
        self.app: app.HashmatchApp | None = None

    async def start(self) -> app.HashmatchApp:
        self.app = await app.build(self.runtime, clock=self.clock)
        self.workers = list(app.workers(self.app))
        if self.with_projections:
            self.runners = [
                ProjectionRunner(
                    self.nc,
                    self.runtime.engine,
                    self.ref_store if p.stream == REFERENCE else self.store,
                    p,
                    on_commit=self._committed,
                )
                for p in SPEC.projections
            ]
        for worker in [*self.runners, *self.workers]:
            await worker.start()
        return self.app

    def _committed(self, _seq: int) -> None:
        for worker in self.workers:
            worker.nudge()

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in [*self.runners, *self.workers]))

    @property
    def matcher(self) -> Matcher:
        assert self.app is not None
        return self.app.matcher

    async def caught_up(self) -> None:
        """Read-your-writes: the bank has applied the log as it is now, and the matcher the
        bank's changes up to there."""
        for worker in [*self.runners, *self.workers]:
            await worker.wait_caught_up(30)


@pytest.fixture
async def bank(
    nc: NATS, engine: AsyncEngine, store: EventStore, master_key: MasterKey
) -> AsyncIterator[Bank]:
    """On SQLite and PostgreSQL."""
    b = Bank(nc, engine, store, master_key)
    await b.start()
    await b.caught_up()
    yield b
    await b.stop()


@pytest.fixture
async def sqlite_bank(
    nc: NATS, store: EventStore, master_key: MasterKey, tmp_path: Path
) -> AsyncIterator[Bank]:
    """On SQLite only: for rules that do not depend on the database."""
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'hashmatch.db'}")
    await migrate(eng, MIGRATIONS, "alembic_version_hashmatch")
    b = Bank(nc, eng, store, master_key)
    await b.start()
    await b.caught_up()
    yield b
    await b.stop()
    await eng.dispose()


class Case:
    def __init__(self, store: EventStore, organisation: str = "ngo-test") -> None:
        self.store = store
        self.case_id = str(uuid.uuid4())
        self.organisation = organisation
        self.version = NEW

    async def append(self, event: Any) -> int:
        ref = AggregateRef(self.case_id, "case", self.case_id)
        written = await self.store.append(ref, [event], expected=self.version, cause=PARTNER)
        self.version = Version.of(written)
        return written[-1].seq

    async def submit(self, *hashes: SubmittedHash) -> int:
        return await self.append(
            HashesSubmitted(
                submission_id=str(uuid.uuid4()),
                organisation=self.organisation,
                age_group="adult",
                hashes=list(hashes),
            )
        )


def pdq(value: str, dihedral: list[str] | None = None) -> SubmittedHash:
    return SubmittedHash(algorithm="pdq", value=value, media="image", quality=90, dihedral=dihedral)


async def matches(matcher: Matcher, value: str) -> list[str]:
    hits = (await matcher.lookup([Query("pdq", values=(value,))]))[0]
    return [h.entry_key for h in hits]


async def test_a_submitted_hash_is_matchable_once_the_bank_caught_up_without_a_rebuild(
    bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    value = random_pdq(rng)
    before = bank.matcher.primary.rows
    await Case(store).submit(pdq(value))
    await bank.caught_up()
    assert await matches(bank.matcher, flipped(value, 31, rng))
    assert bank.matcher.primary.rows == before + 1  # appended, nothing rebuilt
    assert not await matches(bank.matcher, flipped(value, 32, rng))


async def test_withdrawal_and_erasure_remove_a_case_from_matching_once_the_bank_caught_up(
    bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    withdrawn, erased = Case(store), Case(store)
    a, b = random_pdq(rng), random_pdq(rng)
    await withdrawn.submit(pdq(a))
    await erased.submit(pdq(b))
    await bank.caught_up()
    assert await matches(bank.matcher, a) and await matches(bank.matcher, b)

    await withdrawn.append(CaseWithdrawn(withdrawn_by="victim"))
    await erased.append(CaseErased(erased_by="partner"))
    await bank.caught_up()  # the bank's answer, and the index itself, dropped them
    assert not await matches(bank.matcher, a) and not await matches(bank.matcher, b)
    raw = bank.matcher.search([Query("pdq", values=(a,)), Query("pdq", values=(b,))])
    assert raw.candidates == []


async def test_once_the_bank_commits_a_withdrawal_no_lookup_returns_the_hash_even_before_the_poll(
    sqlite_bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    case = Case(store)
    value = random_pdq(rng)
    await case.submit(pdq(value))
    await sqlite_bank.caught_up()
    assert await matches(sqlite_bank.matcher, value)
    await (
        sqlite_bank.matcher.stop()
    )  # the index keeps the hash: only the bank knows it is withdrawn
    seq = await case.append(CaseWithdrawn(withdrawn_by="partner"))
    bank_runner = sqlite_bank.runners[0]
    await bank_runner.wait_caught_up()
    assert bank_runner.last_seq >= seq
    assert len(sqlite_bank.matcher.primary) >= 1
    assert not await matches(sqlite_bank.matcher, value)


async def test_the_changes_record_an_addition_then_a_removal_for_a_withdrawn_case(
    bank: Bank, store: EventStore, engine: AsyncEngine, rng: np.random.Generator
) -> None:
    async with engine.connect() as conn:
        start = await conn.run_sync(queries.cursors_now)
    case = Case(store)
    value = random_pdq(rng)
    await case.submit(pdq(value))
    await case.append(CaseWithdrawn(withdrawn_by="victim"))
    await bank.caught_up()
    async with engine.connect() as conn:
        rows = await conn.run_sync(queries.changes_since, start, 1000, ("add", "remove"))
    mine = [(r.kind, r.value) for r in rows if r.value == value]
    assert mine == [("add", value), ("remove", value)]


async def test_a_restart_restores_the_index_from_the_bank_with_only_live_entries(
    nc: NATS,
    engine: AsyncEngine,
    store: EventStore,
    master_key: MasterKey,
    rng: np.random.Generator,
) -> None:
    first = Bank(nc, engine, store, master_key)
    await first.start()
    kept, withdrawn = Case(store), Case(store)
    a, b = random_pdq(rng), random_pdq(rng)
    await kept.submit(pdq(a))
    await withdrawn.submit(pdq(b))
    await withdrawn.append(CaseWithdrawn(withdrawn_by="victim"))
    await first.caught_up()
    await first.stop()

    second = Bank(nc, engine, store, master_key)
    await second.start()
    try:
        assert second.matcher.stats.restored_rows >= 1
        assert await matches(second.matcher, a)
        assert not await matches(second.matcher, b)
        late = random_pdq(rng)
        await kept.submit(pdq(late))  # and it follows the bank from where it stopped
        await second.caught_up()
        assert await matches(second.matcher, late)
    finally:
        await second.stop()


async def test_the_case_log_shows_when_its_hashes_became_matchable_and_when_they_stopped(
    sqlite_bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    case = Case(store)
    await case.submit(pdq(random_pdq(rng)), pdq("0" * 64), pdq(random_pdq(rng)))
    await case.append(CaseWithdrawn(withdrawn_by="victim"))
    await sqlite_bank.caught_up()
    log = await store.read_case(case.case_id)
    types = [r.type for r in log]
    assert types.index("HashesSubmitted") < types.index("HashesBanked")
    banked = next(r.event for r in log if isinstance(r.event, HashesBanked))
    assert len(banked.entries) == 3
    assert banked.bank == "ORG_NGO_TEST"
    withdrawn = next(r.event for r in log if isinstance(r.event, HashesWithdrawn))
    assert withdrawn.reason == "case_withdrawn"
    assert sorted(withdrawn.entry_keys) == sorted(e.entry_key for e in banked.entries)
    hashes_withdrawn = next(r for r in log if r.type == "HashesWithdrawn")
    assert hashes_withdrawn.envelope.actor.role == "service"


async def test_rotations_banked_with_a_submission_match_a_single_rotated_hash(
    sqlite_bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    variants = [random_pdq(rng) for _ in range(8)]
    await Case(store).submit(pdq(variants[0], dihedral=variants))
    await sqlite_bank.caught_up()
    hits = (
        await sqlite_bank.matcher.lookup([Query("pdq", values=(flipped(variants[3], 5, rng),))])
    )[0]
    assert [(h.distance, h.rotated) for h in hits] == [(5, True)]


async def test_a_video_matches_by_its_frames_when_enough_of_the_query_frames_match(
    sqlite_bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    frames = [random_pdq(rng) for _ in range(10)]
    await Case(store).submit(
        SubmittedHash(algorithm="vpdq", value="", media="video", frames=frames)
    )
    await sqlite_bank.caught_up()
    clip = [flipped(f, 10, rng) for f in frames[:4]]  # a 4-second excerpt, re-encoded
    mostly = [*clip, random_pdq(rng)]  # 4 of 5 frames = 80%: matches
    half = [*clip[:2], random_pdq(rng), random_pdq(rng)]  # 50%: does not
    results = await sqlite_bank.matcher.lookup(
        [Query("vpdq", frames=tuple(mostly)), Query("vpdq", frames=tuple(half))]
    )
    assert [(h.query_match_percent, h.compared_match_percent) for h in results[0]] == [(80.0, 40.0)]
    assert results[1] == []


async def test_a_matcher_only_replica_sharing_the_database_follows_the_bank_by_polling(
    bank: Bank,
    nc: NATS,
    engine: AsyncEngine,
    store: EventStore,
    master_key: MasterKey,
    rng: np.random.Generator,
) -> None:
    replica = Bank(nc, engine, store, master_key, projections=False)
    await replica.start()
    try:
        assert replica.runners == []
        case = Case(store)
        value = random_pdq(rng)
        await case.submit(pdq(value))
        await bank.caught_up()
        await replica.caught_up()  # no projection of its own: it follows the bank's tables
        assert await matches(replica.matcher, value)
        await case.append(CaseWithdrawn(withdrawn_by="victim"))
        await bank.caught_up()
        await replica.caught_up()
        assert not await matches(replica.matcher, value)
    finally:
        await replica.stop()


# -- erasure and the feed (decision 26) ----------------------------------------------------------


async def tables_holding(engine: AsyncEngine, needles: list[str]) -> list[str]:
    """``table.column`` of every text column of the bank's tables that holds one of them."""
    found: list[str] = []
    async with engine.connect() as conn:
        for table in METADATA.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String):
                    continue
                for needle in needles:
                    query = select(func.count()).select_from(table).where(column.contains(needle))
                    if (await conn.execute(query)).scalar_one():
                        found.append(f"{table.name}.{column.name}")
    return found


async def test_erasure_overwrites_the_cases_hash_values_and_a_rebuild_cannot_read_them_back(
    nc: NATS,
    bank: Bank,
    engine: AsyncEngine,
    store: EventStore,
    case_keys: NatsCaseKeys,
    master_key: MasterKey,
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    erased, kept = Case(store), Case(store)
    rotations = [random_pdq(rng) for _ in range(8)]
    md5 = rng.integers(0, 256, size=16, dtype=np.uint8).tobytes().hex()
    other = random_pdq(rng)
    await erased.submit(
        pdq(rotations[0], dihedral=rotations),
        SubmittedHash(algorithm="md5", value=md5, media="video"),
    )
    await kept.submit(pdq(other))
    await bank.caught_up()
    assert "hm_entries.value" in await tables_holding(engine, [rotations[0]])  # while it lives

    await erased.append(CaseErased(erased_by="partner"))
    await case_keys.erase(erased.case_id)  # as intake does: the event, then the key
    await bank.caught_up()
    assert await tables_holding(engine, [*rotations, md5]) == []
    assert not await matches(bank.matcher, rotations[0]) and await matches(bank.matcher, other)
    for raw in await raw_case_messages(nc, erased.case_id):
        assert not any(v.encode() in raw for v in [*rotations, md5])

    # a rebuild from the log (a new database) cannot decrypt them: they are never banked again
    rebuilt_engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}")
    await migrate(rebuilt_engine, MIGRATIONS, "alembic_version_hashmatch")
    rebuilt = Bank(nc, rebuilt_engine, store, master_key)
    await rebuilt.start()
    try:
        await rebuilt.caught_up()
        assert await tables_holding(rebuilt_engine, [*rotations, md5]) == []
        assert await matches(rebuilt.matcher, other)
    finally:
        await rebuilt.stop()
        await rebuilt_engine.dispose()


async def raw_case_messages(nc: NATS, case_id: str) -> list[bytes]:
    """Every stored message of the case, as the log holds it (JetStream direct get)."""
    js = nc.jetstream()
    out: list[bytes] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(
                "NCII", seq=seq, subject=f"ncii.{case_id}.>", next=True, direct=True
            )
        except NotFoundError:
            return out
        assert msg.data is not None and msg.seq is not None
        out.append(msg.data)
        seq = msg.seq + 1


async def test_the_feed_releases_case_changes_in_windows_mixed_across_cases(
    sqlite_bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    engine: AsyncEngine = sqlite_bank.runtime.engine
    async with engine.connect() as conn:
        start = await conn.run_sync(queries.cursors_now)
    at = queries.FeedPosition(start["c"], start["r"])
    before = time.time()  # the clock is the test's: the feed takes it as an argument
    one, two = Case(store, "ngo-one"), Case(store, "ngo-two")
    a = [random_pdq(rng) for _ in range(16)]
    b = [random_pdq(rng) for _ in range(16)]
    await one.submit(*(pdq(v) for v in a))
    await two.submit(*(pdq(v) for v in b))
    await sqlite_bank.caught_up()

    async def read(released: str, limit: int) -> list[Any]:
        rows: list[Any] = []
        position = at
        async with engine.connect() as conn:
            while True:
                page = await conn.run_sync(queries.feed_page, position, limit, released, 10_000)
                rows += page.rows
                position = page.position
                if not page.has_more:
                    return rows

    # nothing is released before the window it was applied in has closed
    assert await read(queries.released_before(before, 300), 5) == []
    rows = await read(queries.released_before(time.time() + 300, 300), 5)
    assert sorted(r.value for r in rows) == sorted(a + b)  # each once, across pages of 5
    assert [r.mix for r in rows] == sorted(r.mix for r in rows)  # digest order, not log order
    labels = ["a" if r.value in a else "b" for r in rows]
    for label in "ab":  # neither submission is a run (16 each: by chance with p < 1e-7)
        where = [i for i, x in enumerate(labels) if x == label]
        assert where != list(range(where[0], where[0] + 16))
    assert {r.bank for r in rows} == {"ORG_NGO_ONE", "ORG_NGO_TWO"}
    tokens = sqlite_bank.app.tokens if sqlite_bank.app else None
    assert tokens is not None
    assert tokens.bank_id("ORG_NGO_ONE") == tokens.bank_id("ORG_NGO_TWO")  # one public id
