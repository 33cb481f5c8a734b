"""The audit service end to end (issue 13, decision 37): its own process and NATS user, an
auditor's key, a case opened through intake and replayed, revealed and bundled over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ncii_audit.bundle import attached_bundle, verify_bundle
from ncii_events.signing import PUBLIC_KEYS_FILE

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_intake_api import MakeKey, open_case


@pytest.fixture(scope="module")
def audit(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service("audit", nats_server, tmp_path_factory.mktemp("audit"), master_key_file)
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
async def keys(intake: RunningService, audit: RunningService, make_key: MakeKey) -> dict[str, str]:
    made = {
        "partner": await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner"),
        "auditor": await make_key("centre", "auditor"),
        "admin": await make_key("centre", "admin"),
    }
    await caught_up(intake)
    await caught_up(audit)
    return made


@pytest.fixture(scope="module")
async def case_id(intake: RunningService, keys: dict[str, str]) -> str:
    async with intake.client(keys["partner"]) as client:
        return str((await open_case(client))["case_id"])


async def test_an_auditor_replays_any_case_verified_with_personal_fields_withheld(
    audit: RunningService, keys: dict[str, str], case_id: str
) -> None:
    async with audit.client(keys["auditor"]) as client:
        response = await client.get(f"/v1/audit/cases/{case_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["first_break"] is None and body["summary"]["verified"] >= 1
    opened = body["events"][0]
    assert opened["type"] == "CaseOpened" and opened["check"] == "ok"
    assert opened["signer"] == "intake" and opened["actor"]["role"] == "partner"
    assert opened["personal"]["pseudonym"] == "withheld" and opened["payload"]["pseudonym"] is None
    assert "Sparrow" not in response.text and "sparrow@example.org" not in response.text


@pytest.mark.parametrize("role", ["partner", "admin"])
async def test_only_auditors_use_the_audit_routes(
    audit: RunningService, keys: dict[str, str], case_id: str, role: str
) -> None:
    async with audit.client(keys[role]) as client:
        for path in ("", "/access-log", "/bundle"):
            response = await client.get(f"/v1/audit/cases/{case_id}{path}")
            assert response.status_code == 403, (path, response.text)


async def test_bad_audit_requests_are_4xx_saying_what_to_fix(
    audit: RunningService, keys: dict[str, str], case_id: str
) -> None:
    async with audit.client(keys["auditor"]) as client:
        unknown = await client.get(f"/v1/audit/cases/{uuid.uuid4()}")
        assert unknown.status_code == 404
        no_reason = await client.get(f"/v1/audit/cases/{case_id}", params={"reveal": "personal"})
        assert no_reason.status_code == 422 and "reason=" in no_reason.json()["detail"]
        naive = await client.get(
            f"/v1/audit/cases/{case_id}", params={"as_of": "2026-11-30T08:00:00"}
        )
        assert naive.status_code == 422 and "zone" in naive.json()["detail"]
        bad_ticket = await client.get(
            f"/v1/audit/cases/{case_id}",
            params={"reveal": "personal", "reason": "safeguarding", "ticket": "a b"},
        )
        assert bad_ticket.status_code == 422
        access = await client.get(f"/v1/audit/cases/{case_id}/access-log")
    # none of the refused requests read anything, so none is in the access log
    assert access.json()["reads"] == []


async def test_a_reveal_is_recorded_first_and_shows_in_the_access_log(
    audit: RunningService, keys: dict[str, str], case_id: str
) -> None:
    async with audit.client(keys["auditor"]) as client:
        revealed = await client.get(
            f"/v1/audit/cases/{case_id}",
            params={"reveal": "personal", "reason": "legal_obligation", "ticket": "court-17"},
        )
        assert revealed.status_code == 200, revealed.text
        events = revealed.json()["events"]
        assert events[0]["payload"]["pseudonym"] == "Sparrow"
        assert events[-1]["type"] == "AuditorReadPersonalData" and events[-1]["signer"] == "audit"
        access = (await client.get(f"/v1/audit/cases/{case_id}/access-log")).json()["reads"]
    assert [r["endpoint"] for r in access] == ["GET /v1/audit/cases/{case_id}"]
    assert access[0]["actor"]["role"] == "auditor" and access[0]["reason"] == "legal_obligation"
    assert access[0]["event_id"] == events[-1]["event_id"]


async def test_as_of_before_the_opening_shows_nothing_and_now_shows_the_state(
    audit: RunningService, keys: dict[str, str], case_id: str
) -> None:
    async with audit.client(keys["auditor"]) as client:
        before = await client.get(
            f"/v1/audit/cases/{case_id}", params={"as_of": "2000-01-01T00:00:00Z"}
        )
        now = await client.get(
            f"/v1/audit/cases/{case_id}", params={"as_of": "2999-01-01T00:00:00Z"}
        )
    assert before.json()["events"] == [] and before.json()["state"] == []
    assert before.json()["domain"] == []
    state = {s["aggregate"]: s for s in now.json()["state"]}
    assert state["case"]["events"][0] == "CaseOpened"
    assert state["case"]["fields"]["age_group"] == "adult"
    # and as intake's own domain folds it (decision 52), over HTTP
    domain = {d["aggregate"]: d for d in now.json()["domain"]}
    assert domain["case"]["folded_by"] == "intake"
    assert domain["case"]["state"]["status"] == "awaiting_statement"


async def test_the_bundle_route_signs_a_bundle_a_third_party_verifies(
    audit: RunningService, keys: dict[str, str], case_id: str, master_key_file: Path
) -> None:
    async with audit.client(keys["auditor"]) as client:
        response = await client.get(f"/v1/audit/cases/{case_id}/bundle")
    assert response.status_code == 200, response.text
    document = response.json()
    public = json.loads((master_key_file.parent / PUBLIC_KEYS_FILE).read_text())["audit"]
    assert verify_bundle(document, public[-1]) == []
    assert "Sparrow" not in response.text


async def test_the_bundle_route_answers_a_pdf_carrying_the_signed_json_and_an_html_page(
    audit: RunningService, keys: dict[str, str], case_id: str, master_key_file: Path
) -> None:
    public = json.loads((master_key_file.parent / PUBLIC_KEYS_FILE).read_text())["audit"]
    async with audit.client(keys["auditor"]) as client:
        by_query = await client.get(f"/v1/audit/cases/{case_id}/bundle", params={"format": "pdf"})
        by_accept = await client.get(
            f"/v1/audit/cases/{case_id}/bundle", headers={"Accept": "application/pdf"}
        )
        page = await client.get(f"/v1/audit/cases/{case_id}/bundle", params={"format": "html"})
        unknown = await client.get(f"/v1/audit/cases/{case_id}/bundle", params={"format": "doc"})
        missing = await client.get(f"/v1/audit/cases/{uuid.uuid4()}/bundle?format=pdf")
        reads = (await client.get(f"/v1/audit/cases/{case_id}/access-log")).json()["reads"]
    for response in (by_query, by_accept):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert f'filename="case-bundle-{case_id}.pdf"' in response.headers["content-disposition"]
        assert response.content.startswith(b"%PDF-") and b"Sparrow" not in response.content
        attached = attached_bundle(response.content)
        assert attached is not None and attached["bundle"]["case_id"] == case_id
        assert verify_bundle(attached, public[-1]) == []
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Case bundle" in page.text and "Sparrow" not in page.text
    assert unknown.status_code == 422 and "format" in unknown.text
    assert missing.status_code == 404
    # a bundle holds nothing personal in clear: no read of personal data to record
    assert all(r["endpoint"] != "GET /v1/audit/cases/{case_id}/bundle" for r in reads)


async def test_an_auditor_over_its_budget_gets_429_with_retry_after(
    nats_server: SuiteNats,
    tmp_path_factory: pytest.TempPathFactory,
    master_key_file: Path,
    keys: dict[str, str],
    case_id: str,
) -> None:
    limited = start_service(
        "audit",
        nats_server,
        tmp_path_factory.mktemp("audit-limited"),
        master_key_file,
        extra_env={"NCII_RATE_CASE_WRITES_BURST": "2", "NCII_RATE_CASE_WRITES_PER_MINUTE": "1"},
    )
    try:
        await caught_up(limited)
        async with limited.client(keys["auditor"]) as client:
            answers = [await client.get(f"/v1/audit/cases/{case_id}/access-log") for _ in range(3)]
    finally:
        stop_service(limited)
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
