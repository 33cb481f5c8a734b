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
from ncii_contracts.hashmatch import HashesBanked, HashesWithdrawn
from ncii_contracts.intake import CaseErased, CaseWithdrawn, HashesSubmitted, SubmittedHash
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, migrate
from ncii_events.envelope import Actor
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, Version
from ncii_events.stream import REFERENCE
from ncii_hashmatch import projections, state
from ncii_hashmatch.main import SPEC
from ncii_hashmatch.matcher import Matcher, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.events import REGISTRY

PARTNER = Cause(
    actor=Actor(organisation="ngo-test", principal="p-test", role="partner"),
    correlation_id="corr",
    causation_id="cause",
)
MIGRATIONS = Path(projections.__file__).parent / "migrations"


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
    """Hashmatch's bank, matcher and outbox, started as the service starts them."""

    def __init__(
        self,
        nc: NATS,
        engine: AsyncEngine,
        store: EventStore,
        master: MasterKey,
        settings: state.HashmatchSettings | None = None,
    ):
        self.settings = settings
        self.runtime: Any = SimpleNamespace(
            nc=nc,
            engine=engine,
            store=store,
            ref_store=EventStore(nc, None, registry=REGISTRY, spec=REFERENCE),
            registry=REGISTRY,
            master=master,
            spec=SPEC,
            runners=[],
        )
        self.state: state.Hashmatch | None = None

    async def start(self) -> state.Hashmatch:
        self.state = await state.start(self.runtime, self.settings)
        return self.state

    async def stop(self) -> None:
        await asyncio.gather(*(runner.stop() for runner in self.runtime.runners))
        self.runtime.runners = []

    @property
    def matcher(self) -> Matcher:
        assert self.state is not None
        return self.state.matcher

    async def caught_up(self) -> None:
        for runner in self.runtime.runners:
            await runner.wait_caught_up(30)


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


async def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> float:
    """Seconds until ``await check()`` is true."""
    t0 = time.perf_counter()
    while not await check():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError(f"not true after {timeout}s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - t0


async def matches(matcher: Matcher, value: str) -> list[str]:
    hits = (await matcher.lookup([Query("pdq", values=(value,))]))[0]
    return [h.entry_key for h in hits]


async def test_a_submitted_hash_is_matchable_within_a_second_without_a_rebuild(
    bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    value = random_pdq(rng)
    before = bank.matcher.primary.rows
    t0 = time.perf_counter()
    await Case(store).submit(pdq(value))

    async def matchable() -> bool:
        return bool(await matches(bank.matcher, flipped(value, 31, rng)))

    elapsed = await wait_for(matchable, timeout=1.0)
    print(f"\nHashesSubmitted -> matchable: {1000 * (time.perf_counter() - t0):.0f} ms")
    assert elapsed < 1.0
    assert bank.matcher.primary.rows == before + 1  # appended, nothing rebuilt
    assert not await matches(bank.matcher, flipped(value, 32, rng))


async def test_withdrawal_and_erasure_remove_a_case_from_matching_within_a_second(
    bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    withdrawn, erased = Case(store), Case(store)
    a, b = random_pdq(rng), random_pdq(rng)
    await withdrawn.submit(pdq(a))
    await erased.submit(pdq(b))
    await bank.caught_up()

    async def both_matchable() -> bool:
        return bool(await matches(bank.matcher, a) and await matches(bank.matcher, b))

    await wait_for(both_matchable, timeout=1.0)

    t0 = time.perf_counter()
    await withdrawn.append(CaseWithdrawn(withdrawn_by="victim"))
    await erased.append(CaseErased(erased_by="partner"))

    async def gone() -> bool:
        return not await matches(bank.matcher, a) and not await matches(bank.matcher, b)

    await wait_for(gone, timeout=1.0)
    print(f"\nCaseWithdrawn/CaseErased -> unmatchable: {1000 * (time.perf_counter() - t0):.0f} ms")
    await bank.caught_up()  # and the index itself dropped them (not only the bank's answer)
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
    bank_runner = sqlite_bank.state.runners[0] if sqlite_bank.state else None
    assert bank_runner is not None

    async def committed() -> bool:
        return bank_runner.last_seq >= seq

    await wait_for(committed)
    assert len(sqlite_bank.matcher.primary) >= 1
    assert not await matches(sqlite_bank.matcher, value)


async def test_the_changes_record_an_addition_then_a_removal_for_a_withdrawn_case(
    bank: Bank, store: EventStore, engine: AsyncEngine, rng: np.random.Generator
) -> None:
    async with engine.connect() as conn:
        start = await conn.run_sync(projections.cursors_now)
    case = Case(store)
    value = random_pdq(rng)
    await case.submit(pdq(value))
    await case.append(CaseWithdrawn(withdrawn_by="victim"))
    await bank.caught_up()
    async with engine.connect() as conn:
        rows = await conn.run_sync(projections.changes_since, start, 1000, ("add", "remove"))
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

        async def matchable() -> bool:
            return bool(await matches(second.matcher, late))

        await wait_for(matchable)
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
    replica = Bank(nc, engine, store, master_key, state.HashmatchSettings(projections=False))
    await replica.start()
    try:
        assert replica.state is not None and replica.state.runners == []
        case = Case(store)
        value = random_pdq(rng)
        t0 = time.perf_counter()
        await case.submit(pdq(value))

        async def matchable() -> bool:
            return bool(await matches(replica.matcher, value))

        await wait_for(matchable, timeout=1.0)
        print(f"\nreplica (polling): matchable after {1000 * (time.perf_counter() - t0):.0f} ms")
        await case.append(CaseWithdrawn(withdrawn_by="victim"))

        async def gone() -> bool:
            return not await matches(replica.matcher, value)

        await wait_for(gone, timeout=1.0)
    finally:
        await replica.stop()
