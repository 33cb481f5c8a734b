"""Floods and races over a real NATS server and real SQL (security review F3, decision 24):
sightings of one entry by one platform within a window become one MatchFound and one
SightingsCounted, whatever their number; writers racing on one aggregate are retried rather
than failed."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import numpy as np
import pytest
from nats.aio.client import Client as NATS
from ncii_contracts.hashmatch import MatchFound, SightingsCounted
from ncii_contracts.intake import CaseOpened, Consents, LocationReported
from ncii_events.auth import Principal
from ncii_events.crypto import MasterKey
from ncii_events.keys import NatsCaseKeys
from ncii_events.store import NEW, AggregateRef, EventStore
from ncii_hashmatch import domain
from ncii_hashmatch.matcher import Query
from ncii_hashmatch.read_models import queries
from ncii_intake.app import IntakeApp
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_hashmatch_bank import PARTNER, Bank, Case, engine, pdq, random_pdq

WINDOW = domain.SIGHTING_WINDOW_SECONDS
GRACE = domain.SIGHTING_GRACE_SECONDS
__all__ = ["engine"]  # the fixture, on SQLite and PostgreSQL
PLATFORM = Principal(principal_id="p-plat", organisation="plat-flood", role="platform")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0 + 600)  # ten minutes into a window


@pytest.fixture
async def bank(
    nc: NATS, engine: AsyncEngine, store: EventStore, master_key: MasterKey, clock: Clock
) -> AsyncIterator[Bank]:
    """On SQLite and PostgreSQL, with the clock of the sighting windows in the test's hands."""
    b = Bank(nc, engine, store, master_key, clock=clock)
    await b.start()
    await b.caught_up()
    yield b
    await b.stop()


def sighting(value: str, i: int) -> tuple[Query, str, str]:
    return (
        Query("pdq", values=(value,)),
        f"https://x.example/{i}",
        f"2026-11-29T10:{i % 60:02d}:00Z",
    )


async def test_300_concurrent_sightings_in_a_window_are_one_match_found_then_one_count(
    bank: Bank, store: EventStore, clock: Clock
) -> None:
    value = random_pdq(np.random.default_rng())
    case = Case(store)
    await case.submit(pdq(value))
    await bank.caught_up()
    app = bank.app
    assert app is not None
    before = len(await store.read_case(case.case_id))

    answers = await asyncio.gather(
        *(app.report_sighting(PLATFORM, *sighting(value, i)) for i in range(300))
    )
    await bank.caught_up()
    added = (await store.read_case(case.case_id))[before:]
    assert [r.type for r in added] == ["MatchFound"]
    match_id = answers[0][1][0].match_id
    assert {a[1][0].match_id for a in answers} == {match_id}

    clock.now += WINDOW - 600 + GRACE - 1  # closed, but a request may still be in it
    await bank.caught_up()
    assert len(await store.read_case(case.case_id)) == before + 1
    clock.now += 1
    await bank.caught_up()
    added = (await store.read_case(case.case_id))[before:]
    assert [r.type for r in added] == ["MatchFound", "SightingsCounted"]
    counted = added[1].event
    assert isinstance(counted, SightingsCounted)
    assert counted.sightings == 300 and counted.match_id == match_id
    assert (counted.first_seen_at, counted.last_seen_at) == (
        "2026-11-29T10:00:00Z",
        "2026-11-29T10:59:00Z",
    )
    assert counted.window_end == "2027-01-15T09:00:00Z"  # 1_800_003_600 s
    assert added[1].envelope.actor.role == "service"
    await bank.caught_up()  # the bank applies what the counter appended
    row = await queries.match(bank.runtime.engine, match_id)
    assert row.sightings == 300  # the read model counts from the log

    # the next window starts again with a MatchFound; a window of one sighting adds no count
    await app.report_sighting(PLATFORM, *sighting(value, 1))
    clock.now += WINDOW
    await bank.caught_up()
    types = Counter(r.type for r in (await store.read_case(case.case_id))[before:])
    assert types == {"MatchFound": 2, "SightingsCounted": 1}
    assert not [r for r in added if isinstance(r.event, MatchFound) and r.event.url is None]


async def test_two_platforms_sightings_of_one_hash_are_counted_apart(
    bank: Bank, store: EventStore, clock: Clock
) -> None:
    value = random_pdq(np.random.default_rng())
    case = Case(store)
    await case.submit(pdq(value))
    await bank.caught_up()
    app = bank.app
    assert app is not None
    other = Principal(principal_id="p-other", organisation="plat-other", role="platform")
    await asyncio.gather(
        *(app.report_sighting(PLATFORM, *sighting(value, i)) for i in range(5)),
        *(app.report_sighting(other, *sighting(value, i)) for i in range(3)),
    )
    clock.now += WINDOW + GRACE
    await bank.caught_up()
    events = [r.event for r in await store.read_case(case.case_id)]
    counts = {e.platform: e.sightings for e in events if isinstance(e, SightingsCounted)}
    assert counts == {"plat-flood": 5, "plat-other": 3}
    assert sum(isinstance(e, MatchFound) for e in events) == 2


@pytest.fixture
async def intake(store: EventStore, case_keys: NatsCaseKeys, master_key: MasterKey) -> IntakeApp:
    return IntakeApp(store, case_keys, master_key)


async def test_writers_racing_on_one_case_are_retried_and_all_land(
    intake: IntakeApp, store: EventStore
) -> None:
    case_id = str(uuid.uuid4())
    opened = CaseOpened(
        organisation="ngo-race",
        reference="AAAA-BBBB-CCCC",
        age_group="minor",
        harm_categories=["threat_sextortion"],
        spread_status="threatened",
        channels=[],
        intake_channel="phone",
        learned_at="2026-11-29T10:00:00Z",
        consents=Consents(takedown=True, share_hashes=True, referral=True),
    )
    await store.append(
        AggregateRef(case_id, "case", case_id), [opened], expected=NEW, cause=PARTNER
    )
    partner = Principal(principal_id="p-race", organisation="ngo-race", role="partner")

    async def report(i: int) -> None:
        await intake.change(
            case_id,
            partner,
            lambda c: c.report_location(
                f"l{i}", url=f"https://x.example/{i}", platform="X", channel_kind="forum"
            ),
            actor_principal=partner,
        )

    await asyncio.gather(*(report(i) for i in range(4)))
    events = [r.event for r in await store.load(AggregateRef(case_id, "case", case_id))]
    locations = {e.location_id for e in events if isinstance(e, LocationReported)}
    assert locations == {f"l{i}" for i in range(4)}
