"""Intake's writes on retry (decision 0057, after 46): a write that adds a fact with nothing in
clear to know its retry by needs an Idempotency-Key (428, after the role check, nothing written);
with the key a retry is answered the same and writes one event; a record that replaces the
previous one (the legal assessment, all in clear) is no news when it says the same again."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from ncii_events.signing import SigningKey
from ncii_events.store import EventStore

from tests.e2e.conftest import RunningService, caught_up
from tests.e2e.test_intake_api import HASHES, MakeKey, ago, case_body
from tests.support.events import REGISTRY


@pytest.fixture(scope="module")
def log(nc: NATS, test_signing: SigningKey) -> EventStore:
    return EventStore(nc, None, registry=REGISTRY, signing=test_signing)


@pytest.fixture(scope="module")
async def keys(intake: RunningService, make_key: MakeKey) -> dict[str, str]:
    made = {
        "partner": await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner"),
        "caseworker": await make_key("centre", "caseworker"),
        "platform": await make_key(f"host-{uuid.uuid4().hex[:6]}", "platform"),
    }
    await caught_up(intake)
    return made


async def _types(log: EventStore, case_id: str) -> Counter[str]:
    return Counter(r.envelope.type for r in await log.read_case(case_id, decrypt=False))


def _requires_a_key(response: httpx.Response) -> None:
    assert response.status_code == 428, response.text
    problem = response.json()
    assert problem["type"].endswith("/idempotency-key-required")
    assert "Idempotency-Key" in problem["detail"]


async def _open(client: httpx.AsyncClient, **overrides: Any) -> str:
    response = await client.post(
        "/v1/cases", json=case_body(**overrides), headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["case_id"])


async def test_opening_a_case_without_a_key_is_refused_after_the_role_check_and_opens_nothing(
    intake: RunningService, make_key: MakeKey
) -> None:
    partner = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    platform = await make_key(f"host-{uuid.uuid4().hex[:6]}", "platform")
    await caught_up(intake)
    async with intake.client(platform, keyed=False) as client:
        assert (await client.post("/v1/cases", json=case_body())).status_code == 403
    async with intake.client(partner, keyed=False) as client:
        for _ in range(2):
            _requires_a_key(await client.post("/v1/cases", json=case_body()))
        await caught_up(intake)
        assert (await client.get("/v1/cases")).json()["items"] == []
        # with a key, the retry is the same case, reference and PIN
        body, key = case_body(), {"Idempotency-Key": uuid.uuid4().hex}
        first = await client.post("/v1/cases", json=body, headers=key)
        again = await client.post("/v1/cases", json=body, headers=key)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == first.json()
        await caught_up(intake)
        assert len((await client.get("/v1/cases")).json()["items"]) == 1


LOCATION = {"url": "https://forum.example.net/t/1", "platform": "Forum", "channel_kind": "forum"}
OFFENDER = {"known": True, "account_ids": ["@acct"], "crime_group": "Group X"}
POLICE = {"station": "Da-an precinct", "report_number": "DA-1", "seizure_requested": False}
ADDED = [
    ("locations", LOCATION, "LocationReported"),
    ("hashes", HASHES, "HashesSubmitted"),
    ("offender", OFFENDER, "OffenderDetailsRecorded"),
    ("police-report", POLICE, "PoliceReportDetailsRecorded"),
]


@pytest.mark.parametrize(("path", "body", "event"), ADDED, ids=[a[0] for a in ADDED])
async def test_a_fact_without_a_key_is_refused_and_with_one_a_retry_writes_it_once(
    intake: RunningService,
    keys: dict[str, str],
    log: EventStore,
    path: str,
    body: dict[str, Any],
    event: str,
) -> None:
    async with intake.client(keys["partner"], keyed=False) as client:
        case_id = await _open(client, age_group="minor")  # a minor: hashes need no statement
        before = await _types(log, case_id)
        _requires_a_key(await client.post(f"/v1/cases/{case_id}/{path}", json=body))
        assert await _types(log, case_id) == before  # nothing written
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=key)
        again = await client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=key)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json()
        assert (await _types(log, case_id))[event] == 1
        # another key is another fact
        other = {"Idempotency-Key": uuid.uuid4().hex}
        third = await client.post(f"/v1/cases/{case_id}/{path}", json=body, headers=other)
        assert third.status_code == 200, third.text
        assert (await _types(log, case_id))[event] == 2


async def test_a_victim_access_reset_needs_a_key_and_a_retried_one_gives_the_same_pin(
    intake: RunningService, keys: dict[str, str], log: EventStore
) -> None:
    async with intake.client(keys["partner"], keyed=False) as client:
        case_id = await _open(client)
        reset = f"/v1/cases/{case_id}/victim-access/reset"
        _requires_a_key(await client.post(reset))
        assert (await _types(log, case_id))["VictimAccessReset"] == 0
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await client.post(reset, headers=key)
        again = await client.post(reset, headers=key)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json()["victim_access"]["pin"] == first.json()["victim_access"]["pin"]
        assert (await _types(log, case_id))["VictimAccessReset"] == 1


async def test_the_same_legal_assessment_again_without_a_key_is_no_news(
    intake: RunningService, keys: dict[str, str], log: EventStore
) -> None:
    body = {
        "categories": ["forced_recording_319_2"],
        "how_obtained": "recorded_by_force_or_threat",
        "depicts": ["genitals_or_private_parts"],
    }
    async with (
        intake.client(keys["partner"], keyed=False) as partner,
        intake.client(keys["caseworker"], keyed=False) as centre,
    ):
        case_id = await _open(partner)
        path = f"/v1/cases/{case_id}/legal-assessment"
        answers = [await centre.post(path, json=body) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200], answers[-1].text
        assert answers[0].json() == answers[1].json()
        assert (await _types(log, case_id))["LegalAssessmentRecorded"] == 1
        changed = await centre.post(path, json={**body, "depicts": ["intercourse"]})
        assert changed.status_code == 200, changed.text
        assert (await _types(log, case_id))["LegalAssessmentRecorded"] == 2


async def test_a_contact_without_a_key_stays_one_on_retry(
    intake: RunningService, keys: dict[str, str], log: EventStore
) -> None:
    # decision 46's clear identity, unchanged: time, channel and direction
    async with intake.client(keys["partner"], keyed=False) as client:
        case_id = await _open(client)
        contact = {"at": ago(minutes=3), "channel": "phone", "direction": "outbound"}
        for _ in range(2):
            sent = await client.post(f"/v1/cases/{case_id}/contacts", json=contact)
            assert sent.status_code == 200, sent.text
        assert (await _types(log, case_id))["ContactLogged"] == 1
