"""Floods from one authenticated client, against a real hashmatch process (security review F3,
F6; decision 24): per-principal rate limits, sightings folded per window, feedback that does
not repeat itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from ncii_contracts.hashmatch import MatchFeedbackReceived, MatchFound
from ncii_events.store import EventStore

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_hashmatch_exchange import ago, bank_case, pdq, random_pdq
from tests.e2e.test_hostile_clients import declared, head_only
from tests.e2e.test_intake_api import case_body

MakeKey = Callable[[str, str], Awaitable[str]]
FLOOD = 300
IN_FLIGHT = 32
LOOKUP_BURST = 50_000
"""Two look-ups of one 20,000-frame video, not three (a low budget keeps the test quick)."""


@pytest.fixture(scope="module")
def hashmatch(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service(
        "hashmatch",
        nats_server,
        tmp_path_factory.mktemp("hashmatch-floods"),
        master_key_file,
        extra_env={
            "NCII_RATE_LOOKUP_BURST": str(LOOKUP_BURST),
            "NCII_RATE_LOOKUP_PER_MINUTE": "1000",
        },
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
async def platforms(hashmatch: RunningService, make_key: MakeKey) -> tuple[str, str]:
    keys = (
        await make_key(f"plat-{uuid.uuid4().hex[:6]}", "platform"),
        await make_key(f"plat-{uuid.uuid4().hex[:6]}", "platform"),
    )
    await caught_up(hashmatch)
    return keys


def window_of(t: float, seconds: float = 3600) -> int:
    return int(t // seconds)


async def test_300_concurrent_sightings_of_one_hash_give_no_5xx_and_one_match_found_on_the_case(
    hashmatch: RunningService, platforms: tuple[str, str], store: EventStore
) -> None:
    value = random_pdq()
    case_id, _ = await bank_case(store, pdq(value))
    await caught_up(hashmatch)
    before = len(await store.read_case(case_id))
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def sight(client: httpx.AsyncClient, i: int) -> int:
        body = {
            "hash": {"algorithm": "pdq", "value": value},
            "url": f"https://x.example/{i}/{'a' * 1800}",
            "seen_at": ago(seconds=i % 50 + 1),
        }
        async with slots:
            return (await client.post("/v1/sightings", json=body)).status_code

    started = time.time()
    async with hashmatch.client(platforms[0]) as client:
        statuses = Counter(await asyncio.gather(*(sight(client, i) for i in range(FLOOD))))
    ended = time.time()
    await caught_up(hashmatch)
    history = await store.read_case(case_id)
    added = Counter(r.type for r in history[before:])
    assert set(statuses) <= {201, 429}, (statuses, added)
    assert statuses[201] >= 1
    # One MatchFound for the window (the sightings' server time falls in one hour unless the
    # flood crossed an hour's end); the count follows as one SightingsCounted when it closes.
    windows = window_of(ended) - window_of(started) + 1
    assert added == {"MatchFound": 1} if windows == 1 else 1 <= added["MatchFound"] <= 2, added
    assert sum(added.values()) == added["MatchFound"], added
    found = [r.event for r in history[before:] if isinstance(r.event, MatchFound)]
    assert found[0].url is not None and found[0].url.startswith("https://x.example/")


async def test_a_flooding_platform_gets_429_with_retry_after_while_another_platforms_lookup_is_200(
    hashmatch: RunningService, platforms: tuple[str, str], store: EventStore
) -> None:
    value = random_pdq()
    await bank_case(store, pdq(value))
    await caught_up(hashmatch)
    rng = np.random.default_rng()
    frames = [
        {"value": rng.integers(0, 256, size=32, dtype=np.uint8).tobytes().hex(), "quality": 90}
        for _ in range(20_000)
    ]
    video = {"items": [{"algorithm": "vpdq", "frames": frames}]}
    flooder, other = platforms
    async with hashmatch.client(flooder) as client:
        answers = [await client.post("/v1/lookups", json=video) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    retry = int(refused.headers["Retry-After"])
    assert retry >= 1
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert f"retry in {retry} s" in refused.json()["detail"]
    assert "hashes and frames a minute" in refused.json()["detail"]
    # over its budget, the key's next look-up is refused before its body is read
    status, body = await head_only(hashmatch, "POST", "/v1/lookups", declared(2_000_000, flooder))
    assert status == 429 and body["type"].endswith("rate-limited")
    async with hashmatch.client(other) as client:
        response = await client.post(
            "/v1/lookups", json={"items": [{"algorithm": "pdq", "value": value}]}
        )
    assert response.status_code == 200, response.text
    assert len(response.json()["items"][0]["matches"]) == 1


async def test_the_same_feedback_sent_100_times_without_an_idempotency_key_adds_one_event(
    hashmatch: RunningService, platforms: tuple[str, str], store: EventStore
) -> None:
    value = random_pdq()
    case_id, _ = await bank_case(store, pdq(value))
    await caught_up(hashmatch)
    async with hashmatch.client(platforms[1]) as client:
        lookup = await client.post(
            "/v1/lookups", json={"items": [{"algorithm": "pdq", "value": value}]}
        )
        match_id = lookup.json()["items"][0]["matches"][0]["match_id"]
        path = f"/v1/matches/{match_id}/feedback"
        slots = asyncio.Semaphore(10)

        async def send(verdict: str) -> int:
            async with slots:
                return (await client.post(path, json={"verdict": verdict})).status_code

        statuses = Counter(await asyncio.gather(*(send("blocked") for _ in range(100))))
        assert statuses == {200: 100}
        assert (await client.post(path, json={"verdict": "not_blocked"})).status_code == 200
        assert (await client.post(path, json={"verdict": "not_blocked"})).status_code == 200
    verdicts = [
        r.event.verdict
        for r in await store.read_case(case_id)
        if isinstance(r.event, MatchFeedbackReceived)
    ]
    assert verdicts == ["blocked", "not_blocked"]


@pytest.fixture(scope="module")
def intake(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    # its own process: a budget of 3 case writes, refilled at one a minute
    service = start_service(
        "intake",
        nats_server,
        tmp_path_factory.mktemp("intake-floods"),
        master_key_file,
        extra_env={"NCII_RATE_CASE_WRITES_BURST": "3", "NCII_RATE_CASE_WRITES_PER_MINUTE": "1"},
    )
    yield service
    stop_service(service)


async def test_a_partner_over_its_case_write_budget_gets_429_and_another_partner_still_writes(
    intake: RunningService, make_key: MakeKey
) -> None:
    flooder = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    other = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    async with intake.client(flooder) as client:
        case_id = (await client.post("/v1/cases", json=case_body())).json()["case_id"]
        decision = {"decision": "undecided"}
        path = f"/v1/cases/{case_id}/police-report-decision"
        answers = [await client.post(path, json=decision) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        refused = answers[-1]
        assert refused.headers["Retry-After"] == "60"
        assert "retry in 60 s" in refused.json()["detail"]
        assert (await client.get(f"/v1/cases/{case_id}")).status_code == 200  # reads are free
    async with intake.client(other) as client:
        assert (await client.post("/v1/cases", json=case_body())).status_code == 201
