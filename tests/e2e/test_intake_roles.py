"""Who reads a case's personal data, and what a case's version says (security review F11, F18):
intake as its own process, real NATS and SQLite, driven over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from ncii_contracts.intake import PersonalDataRead
from ncii_events.envelope import canonical_json
from ncii_events.store import EventStore
from ncii_intake.domain import CASE_PERSONAL_FIELDS

from tests.e2e.conftest import RunningService, caught_up
from tests.e2e.test_intake_api import case_body

MakeKey = Callable[[str, str], Awaitable[str]]
LOCATION = {"url": "https://forum.example/t/sparrow", "platform": "Forum", "channel_kind": "forum"}
PERSONAL_VALUES = ("Sparrow", "sparrow@example.org", "https://forum.example/t/sparrow", "Forum")


@pytest.fixture(scope="module")
async def keys(intake: RunningService, make_key: MakeKey) -> dict[str, str]:
    org = f"ngo-{uuid.uuid4().hex[:6]}"
    made = {
        "partner": await make_key(org, "partner"),
        "other_partner": await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner"),
        "caseworker": await make_key("centre", "caseworker"),
        "admin": await make_key("operations", "admin"),
    }
    await caught_up(intake)
    return made


async def case_with_location(intake: RunningService, key: str) -> str:
    async with intake.client(key) as client:
        opened = await client.post("/v1/cases", json=case_body())
        assert opened.status_code == 201, opened.text
        case_id = str(opened.json()["case_id"])
        located = await client.post(f"/v1/cases/{case_id}/locations", json=LOCATION)
        assert located.status_code == 200, located.text
    return case_id


def personal(detail: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    places = [(loc["platform"], loc["url"]) for loc in detail["locations"]]
    return detail["pseudonym"], detail["contact"], places


def reads(history: list[Any]) -> list[PersonalDataRead]:
    return [r.event for r in history if isinstance(r.event, PersonalDataRead)]


# -- F11: personal data by role -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "shown"),
    [("partner", True), ("caseworker", True), ("admin", False)],
)
async def test_a_cases_personal_fields_are_shown_or_withheld_by_role(
    intake: RunningService, keys: dict[str, str], store: EventStore, role: str, shown: bool
) -> None:
    case_id = await case_with_location(intake, keys["partner"])
    async with intake.client(keys[role]) as client:
        response = await client.get(f"/v1/cases/{case_id}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["locations"][0]["channel_kind"] == LOCATION["channel_kind"]  # the rest is there
    if shown:
        assert personal(detail) == (
            "Sparrow",
            {**detail["contact"], "email": "sparrow@example.org"},
            [("Forum", LOCATION["url"])],
        )
        assert detail["personal_data_withheld"] is None
    else:
        assert personal(detail) == (None, None, [(None, None)])
        assert not any(value in response.text for value in PERSONAL_VALUES)
        withheld = detail["personal_data_withheld"]
        # decision 35 added the channels, offender, police report, notes and contact log
        assert withheld["fields"] == list(CASE_PERSONAL_FIELDS)
        assert {"pseudonym", "contact", "locations[].platform", "locations[].url"} <= set(
            withheld["fields"]
        )
        assert f"/v1/cases/{case_id}?reveal=personal&reason=" in withheld["how_to_read"]
        assert "safeguarding" in withheld["reasons"]
        assert detail["personal_data_erased"] is False
    assert reads(await store.read_case(case_id)) == []  # a plain read records nothing


async def test_a_partner_still_gets_404_for_another_organisations_case_even_with_reveal(
    intake: RunningService, keys: dict[str, str], store: EventStore
) -> None:
    case_id = await case_with_location(intake, keys["partner"])
    async with intake.client(keys["other_partner"]) as client:
        plain = await client.get(f"/v1/cases/{case_id}")
        revealed = await client.get(
            f"/v1/cases/{case_id}", params={"reveal": "personal", "reason": "safeguarding"}
        )
    assert plain.status_code == revealed.status_code == 404
    assert reads(await store.read_case(case_id)) == []


async def test_an_admins_reveal_records_who_why_and_where_in_the_log_then_returns_the_data(
    intake: RunningService, keys: dict[str, str], store: EventStore
) -> None:
    case_id = await case_with_location(intake, keys["partner"])
    async with intake.client(keys["admin"]) as admin:
        response = await admin.get(
            f"/v1/cases/{case_id}",
            params={"reveal": "personal", "reason": "partner_request", "ticket": "OPS-1234"},
        )
    assert response.status_code == 200, response.text
    assert personal(response.json())[::2] == ("Sparrow", [("Forum", LOCATION["url"])])
    assert response.json()["personal_data_withheld"] is None
    history = await store.read_case(case_id)
    [recorded] = [r for r in history if isinstance(r.event, PersonalDataRead)]
    assert recorded.event == PersonalDataRead(
        reason="partner_request",
        ticket="OPS-1234",
        endpoint="GET /v1/cases/{case_id}",
        fields=list(CASE_PERSONAL_FIELDS),
    )
    assert (recorded.envelope.actor.role, recorded.envelope.actor.organisation) == (
        "admin",
        "operations",
    )
    assert recorded.envelope.aggregate == "personal_data_read"
    stored = canonical_json(recorded.envelope.payload).decode()
    assert not any(value in stored for value in PERSONAL_VALUES)
    # the partner sees in its case's timeline that someone read it, and the case's own version
    # (what If-Match checks) did not move
    async with intake.client(keys["partner"]) as partner:
        detail = (await partner.get(f"/v1/cases/{case_id}")).json()
    assert [(t["type"], t["actor_role"]) for t in detail["timeline"]][-1] == (
        "PersonalDataRead",
        "admin",
    )
    assert detail["version"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"reveal": "personal"}, "reason"),
        ({"reveal": "personal", "reason": "curiosity"}, "reason"),
        ({"reveal": "personal", "reason": "safeguarding", "ticket": "Jane Doe"}, "ticket"),
        ({"reveal": "everything", "reason": "safeguarding"}, "reveal"),
    ],
)
async def test_a_reveal_without_a_valid_reason_is_a_422_and_records_nothing(
    intake: RunningService,
    keys: dict[str, str],
    store: EventStore,
    params: dict[str, str],
    field: str,
) -> None:
    case_id = await case_with_location(intake, keys["partner"])
    async with intake.client(keys["admin"]) as admin:
        response = await admin.get(f"/v1/cases/{case_id}", params=params)
    assert response.status_code == 422, response.text
    assert any(field in e["field"] for e in response.json()["errors"]), response.text
    assert not any(value in response.text for value in PERSONAL_VALUES)
    assert reads(await store.read_case(case_id)) == []


# -- F18: a case's version is its own -------------------------------------------------------------


async def test_a_cases_version_etag_and_timeline_count_its_own_events_not_the_logs(
    intake: RunningService, keys: dict[str, str]
) -> None:
    """Two organisations write in turn: each case's version goes 1, 2, 3 whatever the other
    wrote in between, and If-Match works on it."""
    clients = {
        name: intake.client(keys[name]) for name in ("partner", "other_partner", "caseworker")
    }
    a: httpx.AsyncClient = clients["partner"]
    b: httpx.AsyncClient = clients["other_partner"]
    async with a, b, clients["caseworker"] as caseworker:
        case_a = (await a.post("/v1/cases", json=case_body())).json()
        case_b = (await b.post("/v1/cases", json=case_body())).json()
        versions_a = [case_a["version"]]
        versions_b = [case_b["version"]]
        tags = [(await a.get(f"/v1/cases/{case_a['case_id']}")).headers["etag"]]
        for i in range(2):
            for client, case, versions in ((b, case_b, versions_b), (a, case_a, versions_a)):
                for _ in range(1 + i if client is b else 1):  # B writes more than A does
                    written = await client.post(
                        f"/v1/cases/{case['case_id']}/locations",
                        json={**LOCATION, "url": f"https://forum.example/t/{uuid.uuid4()}"},
                        headers={"If-Match": f'"{versions[-1]}"'},
                    )
                    assert written.status_code == 200, written.text
                    versions.append(written.json()["version"])
            tags.append((await a.get(f"/v1/cases/{case_a['case_id']}")).headers["etag"])
        assert versions_a == [1, 2, 3]
        assert versions_b == [1, 2, 3, 4]
        assert tags == ['"1"', '"2"', '"3"']
        detail = (await caseworker.get(f"/v1/cases/{case_a['case_id']}")).json()
        assert detail["version"] == 3
        assert [t["seq"] for t in detail["timeline"]] == [1, 2, 3]
        stale = await a.post(
            f"/v1/cases/{case_a['case_id']}/police-report-decision",
            json={"decision": "will_report"},
            headers={"If-Match": '"2"'},
        )
        assert stale.status_code == 412
        assert '"3"' in stale.json()["detail"]
