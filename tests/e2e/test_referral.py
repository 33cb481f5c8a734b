"""Referral end to end: intake and referral as their own processes on the suite's secured NATS
server, real SQLite, driven over HTTP as a case worker, a partner NGO and counsellors would.

Time: the referral process's clock is moved with ``NCII_REFERRAL_CLOCK_OFFSET_SECONDS`` across
a restart (the 24-hour clock); the exact boundary is pinned in tests/unit/test_referral_domain.py
and tests/integration/test_referral_reports.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from ncii_events.signing import SigningKey
from ncii_events.store import AggregateRef, EventStore
from ncii_events.stream import REFERENCE, REFERENCE_CASE

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.support.events import REGISTRY
from tests.support.eventually import eventually

MakeKey = Callable[[str, str], Awaitable[str]]
OPENED: dict[str, dict[str, Any]] = {}
"""What intake answered each opening (the victim's reference and PIN among it)."""
FAST = {"NCII_REFERRAL_SWEEP_INTERVAL_S": "0.2"}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def referral(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service(
        "referral",
        nats_server,
        tmp_path_factory.mktemp("referral"),
        master_key_file,
        extra_env=FAST,
    )
    yield service
    stop_service(service)


@dataclass
class Keys:
    caseworker: str
    partner: str
    other_partner: str
    counsellor: str
    other_counsellor: str
    counsel_org: str
    other_counsel_org: str


@pytest.fixture(scope="module")
async def keys(intake: RunningService, referral: RunningService, make_key: MakeKey) -> Keys:
    counsel_org, other_org = unique("counsel"), unique("legalaid")
    made = Keys(
        caseworker=await make_key("centre", "caseworker"),
        partner=await make_key(unique("ngo"), "partner"),
        other_partner=await make_key(unique("ngo"), "partner"),
        counsellor=await make_key(counsel_org, "counsellor"),
        other_counsellor=await make_key(other_org, "counsellor"),
        counsel_org=counsel_org,
        other_counsel_org=other_org,
    )
    await caught_up(intake)
    await caught_up(referral)
    return made


def partner_body(organisation: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organisation": organisation,
        "name": unique("Garden"),
        "services": [
            "counselling",
            "legal_advice",
            "stopncii_enrolment",
            "photodna_programme",
        ],
        "regions": ["taipei_city", "kaohsiung_city"],
        "languages": ["zh-Hant", "en"],
    }
    body.update(overrides)
    return body


async def register_partner(service: RunningService, key: str, organisation: str) -> str:
    async with service.client(key) as client:
        response = await client.post("/v1/partners", json=partner_body(organisation))
    assert response.status_code == 201, response.text
    partner_id = str(response.json()["partner_id"])
    await caught_up(service)
    return partner_id


async def open_case(
    intake: RunningService,
    key: str,
    age_group: str,
    *,
    referral_consent: bool = True,
    region: str | None = "kaohsiung_city",
    learned_at: str | None = None,
    harm: str = "distribution_without_consent_319_3",
) -> str:
    body: dict[str, Any] = {
        "pseudonym": "Sparrow",
        "age_group": age_group,
        "harm_categories": [harm],
        "spread_status": "spread",
        "channels": [{"kind": "social_platform", "platform": "PhotoHost"}],
        "intake_channel": "partner_api",
        "learned_at": learned_at or ago(hours=1),
        "consents": {"takedown": True, "share_hashes": True, "referral": referral_consent},
        "contact": {"email": "sparrow@example.org", "preferred": "email"},
    }
    if region is not None:
        body["region"] = region
    async with intake.client(key) as client:
        response = await client.post("/v1/cases", json=body)
    assert response.status_code == 201, response.text
    OPENED[response.json()["case_id"]] = response.json()
    return str(response.json()["case_id"])


async def offer(
    svc: RunningService, key: str, case_id: str, partner_id: str, **extra: Any
) -> httpx.Response:
    body = {"partner_id": partner_id, "service": "counselling", "needs": ["emotional_support"]}
    body.update(extra)
    async with svc.client(key) as client:
        return await client.post(
            f"/v1/cases/{case_id}/referrals",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )


async def case_known(service: RunningService, key: str, case_id: str) -> None:
    async def seen() -> bool:
        async with service.client(key) as client:
            return (await client.get(f"/v1/cases/{case_id}/referrals")).status_code == 200

    await eventually(seen, what="the case in referral's read model")


async def post(service: RunningService, key: str, path: str, body: Any = None) -> httpx.Response:
    async with service.client(key) as client:
        return await client.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})


async def get(service: RunningService, key: str, path: str) -> httpx.Response:
    async with service.client(key) as client:
        return await client.get(path)


# -- referrals ----------------------------------------------------------------------------------


async def test_a_referral_is_offered_accepted_noted_and_completed_and_only_its_partner_reads_it(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    partner_id = await register_partner(referral, keys.caseworker, keys.counsel_org)
    case_id = await open_case(intake, keys.partner, "adult")
    await case_known(referral, keys.partner, case_id)
    offered = await offer(referral, keys.partner, case_id, partner_id)
    assert offered.status_code == 201, offered.text
    referral_id = offered.json()["referral_id"]
    assert offered.json()["consent_basis"] == "victim_consent"
    await caught_up(referral)

    # the receiving partner: pseudonym, needs, one contact route; nothing else of the case
    read = await get(referral, keys.counsellor, f"/v1/referrals/{referral_id}")
    assert read.status_code == 200, read.text
    seen = read.json()
    assert seen["pseudonym"] == "Sparrow" and seen["needs"] == ["emotional_support"]
    assert seen["contact"] == {"kind": "email", "value": "sparrow@example.org"}
    assert "case_id" not in seen and "harm_categories" not in seen
    listed = await get(referral, keys.counsellor, "/v1/referrals")
    assert [r["referral_id"] for r in listed.json()["items"]] == [referral_id]
    assert "case_id" not in listed.json()["items"][0]

    # another organisation's counsellor: 404 for reading and for every answer
    assert (
        await get(referral, keys.other_counsellor, f"/v1/referrals/{referral_id}")
    ).status_code == 404
    assert (await get(referral, keys.other_counsellor, "/v1/referrals")).json()["items"] == []
    for step in ("accept", "complete"):
        refused = await post(referral, keys.other_counsellor, f"/v1/referrals/{referral_id}/{step}")
        assert refused.status_code == 404
    # the case's side cannot answer for the partner, a counsellor cannot read the case's list
    assert (
        await post(referral, keys.partner, f"/v1/referrals/{referral_id}/accept")
    ).status_code == 403
    assert (
        await get(referral, keys.counsellor, f"/v1/cases/{case_id}/referrals")
    ).status_code == 403

    # complete before accept: refused; then the lifecycle
    early = await post(referral, keys.counsellor, f"/v1/referrals/{referral_id}/complete")
    assert early.status_code == 409
    accepted = await post(referral, keys.counsellor, f"/v1/referrals/{referral_id}/accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    noted = await post(
        referral, keys.counsellor, f"/v1/referrals/{referral_id}/notes", {"note": "first talk"}
    )
    assert noted.status_code == 200, noted.text
    followed = await post(
        referral,
        keys.partner,
        f"/v1/cases/{case_id}/referrals/{referral_id}/follow-ups",
        {"contacted_at": ago(minutes=1), "outcome": "reached_doing_better"},
    )
    assert followed.status_code == 200 and followed.json()["follow_ups"] == 1
    done = await post(referral, keys.counsellor, f"/v1/referrals/{referral_id}/complete")
    assert done.json()["status"] == "completed"
    again = await post(
        referral,
        keys.partner,
        f"/v1/cases/{case_id}/referrals/{referral_id}/revoke",
        {"reason": "other"},
    )
    assert again.status_code == 409
    read = await get(referral, keys.counsellor, f"/v1/referrals/{referral_id}")
    assert [n["note"] for n in read.json()["notes"]] == ["first talk"]


async def test_without_consent_only_a_caseworker_offers_with_a_reason_and_no_contact_route(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    partner_id = await register_partner(referral, keys.caseworker, keys.counsel_org)
    case_id = await open_case(intake, keys.partner, "adult", referral_consent=False)
    await case_known(referral, keys.partner, case_id)
    refused = await offer(referral, keys.partner, case_id, partner_id)
    assert refused.status_code == 409 and "consent" in refused.json()["detail"]
    override = {"reason": "safeguarding_risk", "explanation": "she said she is not safe"}
    by_partner = await offer(referral, keys.partner, case_id, partner_id, override=override)
    assert by_partner.status_code == 403
    by_caseworker = await offer(referral, keys.caseworker, case_id, partner_id, override=override)
    assert by_caseworker.status_code == 201, by_caseworker.text
    assert by_caseworker.json()["consent_basis"] == "caseworker_override"
    await caught_up(referral)
    read = await get(
        referral, keys.counsellor, f"/v1/referrals/{by_caseworker.json()['referral_id']}"
    )
    assert read.json()["contact"] is None and read.json()["pseudonym"] == "Sparrow"


async def test_consent_given_after_the_opening_opens_the_gate_and_withdrawn_closes_it(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    partner_id = await register_partner(referral, keys.caseworker, keys.counsel_org)
    case_id = await open_case(intake, keys.partner, "adult", referral_consent=False)
    await case_known(referral, keys.partner, case_id)
    assert (await offer(referral, keys.partner, case_id, partner_id)).status_code == 409
    for given, status in ((True, 201), (False, 409)):
        changed = await post(
            intake, keys.partner, f"/v1/cases/{case_id}/consents", {"referral": given}
        )
        assert changed.is_success, changed.text
        await caught_up(referral)
        answer = await offer(referral, keys.partner, case_id, partner_id)
        assert answer.status_code == status, answer.text


async def test_the_programme_follows_the_age_and_bad_input_writes_nothing(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    partner_id = await register_partner(referral, keys.caseworker, keys.counsel_org)
    minor = await open_case(intake, keys.partner, "minor")
    adult = await open_case(intake, keys.partner, "adult")
    await case_known(referral, keys.partner, minor)
    await case_known(referral, keys.partner, adult)
    wrong = await offer(referral, keys.partner, minor, partner_id, service="stopncii_enrolment")
    assert wrong.status_code == 422 and "photodna_programme" in wrong.json()["detail"]
    wrong = await offer(referral, keys.partner, adult, partner_id, service="photodna_programme")
    assert wrong.status_code == 422
    right = await offer(referral, keys.partner, minor, partner_id, service="photodna_programme")
    assert right.status_code == 201
    unknown = await offer(referral, keys.partner, adult, str(uuid.uuid4()))
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "partner_id"
    # another NGO's case: 404, as if it did not exist
    assert (await offer(referral, keys.other_partner, adult, partner_id)).status_code == 404
    # a region that does not exist: 422 from the registry and from intake
    async with referral.client(keys.caseworker) as client:
        bad = await client.post(
            "/v1/partners", json=partner_body(keys.counsel_org, regions=["atlantis_city"])
        )
    assert bad.status_code == 422 and "regions" in bad.text
    async with intake.client(keys.partner) as client:
        before = await client.get("/v1/cases")
        body = {
            "pseudonym": "Wren",
            "age_group": "minor",
            "harm_categories": ["child_sexual_exploitation"],
            "spread_status": "spread",
            "intake_channel": "phone",
            "learned_at": ago(hours=1),
            "consents": {"takedown": True, "share_hashes": True, "referral": True},
            "region": "atlantis_city",
        }
        refused = await client.post("/v1/cases", json=body)
        assert refused.status_code == 422 and "region" in refused.text
        after = await client.get("/v1/cases")
    assert before.json() == after.json()
    await caught_up(referral)
    listed = await get(referral, keys.partner, f"/v1/cases/{adult}/referrals")
    assert listed.json()["items"] == []  # none of the refused offers was written


# -- the minor's mandatory report ---------------------------------------------------------------


async def reports_of(service: RunningService, key: str, case_id: str) -> list[dict[str, Any]]:
    response = await get(service, key, f"/v1/cases/{case_id}/reports")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_a_minors_case_opens_its_report_to_the_authority_of_its_region_and_filing_is_recorded(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    learned = ago(hours=2)
    case_id = await open_case(
        intake, keys.partner, "minor", region="taitung_county", learned_at=learned
    )
    adult = await open_case(intake, keys.partner, "adult")

    async def opened() -> dict[str, Any]:
        reports = await reports_of(referral, keys.partner, case_id)
        assert len(reports) == 1, reports  # not projected yet: try again
        (report,) = reports
        return report

    report = await eventually(opened, what="the minor's report due")
    assert report["kind"] == "victim_minor" and report["status"] == "due"
    assert report["region"] == "taitung_county"
    assert report["authority"].startswith("Taitung County")
    learned_at = datetime.fromisoformat(learned.replace("Z", "+00:00"))
    assert report["due_at"] == (learned_at + timedelta(hours=24)).strftime(
        "%Y-%m-%dT%H:%M:%S.000000Z"
    )
    await caught_up(referral)
    assert await reports_of(referral, keys.partner, adult) == []

    staff = await get(referral, keys.caseworker, "/v1/reports?status=due&limit=500")
    assert case_id in {r["case_id"] for r in staff.json()["items"]}
    assert (await get(referral, keys.partner, "/v1/reports")).status_code == 403

    path = f"/v1/cases/{case_id}/reports/{report['report_id']}/filing"
    bad = await post(
        referral,
        keys.partner,
        path,
        {"filed_at": ago(minutes=1), "authority_region": "mars", "authority_reference": "X"},
    )
    assert bad.status_code == 422
    filed = await post(
        referral,
        keys.partner,
        path,
        {
            "filed_at": ago(minutes=1),
            "authority_region": "taitung_county",
            "authority_reference": "TT-2026-117",
        },
    )
    assert filed.status_code == 200, filed.text
    await caught_up(referral)
    (report,) = await reports_of(referral, keys.partner, case_id)
    assert report["status"] == "filed" and report["late"] is False
    assert report["filed_with"]["reference"] == "TT-2026-117"
    twice = await post(
        referral,
        keys.partner,
        path,
        {
            "filed_at": ago(minutes=1),
            "authority_region": "taitung_county",
            "authority_reference": "again",
        },
    )
    assert twice.status_code == 409


async def test_a_report_due_while_the_service_is_down_becomes_overdue_at_start_as_an_event(
    nats_server: SuiteNats,
    tmp_path: Path,
    master_key_file: Path,
    intake: RunningService,
    referral: RunningService,
    keys: Keys,
) -> None:
    own = start_service("referral", nats_server, tmp_path, master_key_file, extra_env=FAST)
    try:
        case_id = await open_case(intake, keys.partner, "minor", learned_at=ago(hours=23))

        async def due() -> dict[str, Any]:
            reports = await reports_of(own, keys.partner, case_id)
            assert len(reports) == 1, reports  # not projected yet: try again
            (report,) = reports
            assert report["status"] == "due"
            return report

        report = await eventually(due, what="the report due")
        suspect = await post(
            own, keys.partner, f"/v1/cases/{case_id}/reports/suspect", {"learned_at": ago(hours=1)}
        )
        assert suspect.status_code == 201, suspect.text
        await caught_up(own)
        # two hours later on this process's clock: still within the suspect's 24 hours
    finally:
        stop_service(own)
    later = {**FAST, "NCII_REFERRAL_CLOCK_OFFSET_SECONDS": str(2 * 3600)}
    restarted = start_service("referral", nats_server, tmp_path, master_key_file, extra_env=later)
    try:

        async def overdue() -> list[dict[str, Any]]:
            items = await reports_of(restarted, keys.partner, case_id)
            by_kind = {r["kind"]: r for r in items}
            assert by_kind["victim_minor"]["status"] == "overdue"
            return items

        items = await eventually(overdue, what="the minor's report overdue")
        by_kind = {r["kind"]: r for r in items}
        assert by_kind["known_suspect"]["status"] == "due"
        staff = await get(restarted, keys.caseworker, "/v1/reports?status=overdue&limit=500")
        assert report["report_id"] in {r["report_id"] for r in staff.json()["items"]}
        filed = await post(
            restarted,
            keys.caseworker,
            f"/v1/cases/{case_id}/reports/{report['report_id']}/filing",
            {
                "filed_at": ago(minutes=0),
                "authority_region": "kaohsiung_city",
                "authority_reference": "KH-1",
            },
        )
        assert filed.status_code == 200, filed.text
    finally:
        stop_service(restarted)


# -- guidance -----------------------------------------------------------------------------------


async def test_guidance_is_derived_from_the_case_and_each_tick_is_recorded_once(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    case_id = await open_case(intake, keys.partner, "adult", harm="secret_recording_319_1")
    await case_known(referral, keys.partner, case_id)
    items = (await get(referral, keys.partner, f"/v1/cases/{case_id}/guidance")).json()["items"]
    names = [i["item"] for i in items]
    assert "own_page_remove_post" in names and "police_report_decision_recorded" in names
    assert "threatened_photodna_programme" not in names
    not_here = await post(
        referral, keys.partner, f"/v1/cases/{case_id}/guidance/sextortion_do_not_pay"
    )
    assert not_here.status_code == 422
    unknown = await post(referral, keys.partner, f"/v1/cases/{case_id}/guidance/pay_them")
    assert unknown.status_code == 422
    for _ in range(2):
        ticked = await post(
            referral, keys.partner, f"/v1/cases/{case_id}/guidance/own_page_remove_post"
        )
        assert ticked.status_code == 200, ticked.text
        await caught_up(referral)
    items = (await get(referral, keys.partner, f"/v1/cases/{case_id}/guidance")).json()["items"]
    assert [i["item"] for i in items if i["ticked_at"]] == ["own_page_remove_post"]
    assert (
        await get(referral, keys.other_partner, f"/v1/cases/{case_id}/guidance")
    ).status_code == 404


# -- the command line ---------------------------------------------------------------------------


async def test_ncii_partners_registers_through_the_staff_api_and_lists_them(
    referral: RunningService, keys: Keys
) -> None:
    from ncii_cli.main import app
    from typer.testing import CliRunner

    name = unique("CliPartner")
    env = {"NCII_API_KEY": keys.caseworker, "NCII_REFERRAL_URL": referral.url}
    args = ["partners", "register", name, "--organisation", keys.counsel_org]
    args += ["--service", "counselling", "--region", "taipei_city", "--language", "zh-Hant"]
    created = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert created.exit_code == 0, created.output
    partner_id = created.output.strip()
    bad = [*args[:-4], "--region", "narnia", "--language", "zh-Hant"]
    refused = await asyncio.to_thread(CliRunner().invoke, app, bad, env=env)
    assert refused.exit_code == 2 and "regions" in refused.output

    async def listed() -> bool:
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["partners", "list", "--json"], env=env
        )
        return any(p["partner_id"] == partner_id for p in json.loads(result.output))

    await eventually(listed, what="the partner in the registry")


async def test_a_counsellors_notes_and_the_contact_route_are_erased_with_the_case(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    partner_id = await register_partner(referral, keys.caseworker, keys.counsel_org)
    case_id = await open_case(intake, keys.partner, "adult")
    await case_known(referral, keys.partner, case_id)
    offered = await offer(referral, keys.partner, case_id, partner_id)
    referral_id = offered.json()["referral_id"]
    await caught_up(referral)
    assert (await post(referral, keys.counsellor, f"/v1/referrals/{referral_id}/accept")).is_success
    noted = await post(
        referral, keys.counsellor, f"/v1/referrals/{referral_id}/notes", {"note": "she is safe"}
    )
    assert noted.is_success
    # erasure is the case worker's, with a reason (decision 35)
    erased = await post(
        intake, keys.caseworker, f"/v1/cases/{case_id}/erase", {"reason": "victim_request"}
    )
    assert erased.is_success, erased.text
    await caught_up(referral)

    async def erased() -> dict[str, Any]:
        read = await get(referral, keys.counsellor, f"/v1/referrals/{referral_id}")
        seen = dict(read.json())
        assert seen["pseudonym"] is None, seen
        return seen

    seen = await eventually(erased, what="the referral's personal data erased")
    assert seen["contact"] is None
    assert [n["note"] for n in seen["notes"]] == [None]
    # and no new note can be written on an erased case
    refused = await post(
        referral, keys.counsellor, f"/v1/referrals/{referral_id}/notes", {"note": "again"}
    )
    assert refused.status_code == 409


async def test_intakes_case_shows_the_report_as_referral_records_it_due_then_filed(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    case_id = await open_case(intake, keys.partner, "minor", learned_at=ago(hours=3))

    async def shown() -> dict[str, Any]:
        detail = (await get(intake, keys.partner, f"/v1/cases/{case_id}")).json()
        assert detail["mandatory_report"] is not None, detail  # referral has not opened it yet
        return dict(detail)

    detail = await eventually(shown, what="referral's report in intake's case")
    report = detail["mandatory_report"]
    assert report["state"] == "due" and report["report_id"]
    (due,) = await reports_of(referral, keys.partner, case_id)
    assert (report["report_id"], report["due_at"]) == (due["report_id"], due["due_at"])
    path = f"/v1/cases/{case_id}/reports/{report['report_id']}/filing"
    assert any(path in p for p in detail["pending"])
    filed = await post(
        referral,
        keys.partner,
        path,
        {
            "filed_at": ago(minutes=5),
            "authority_region": "kaohsiung_city",
            "authority_reference": "KH-7",
        },
    )
    assert filed.status_code == 200, filed.text
    detail = (await get(intake, keys.partner, f"/v1/cases/{case_id}")).json()
    assert detail["mandatory_report"]["state"] == "filed"
    assert detail["mandatory_report"]["late"] is False
    assert not any(path in p for p in detail["pending"])
    # the victim sees the filing as a step of her case, as when intake recorded it
    access = OPENED[case_id]["victim_access"]
    async with intake.client(None) as client:
        status = await client.post(
            "/v1/victim/status", json={"reference": access["reference"], "pin": access["pin"]}
        )
    assert status.status_code == 200, status.text
    steps = [s["what"] for s in status.json()["steps"]]
    assert "the case was reported to the authority, as the law requires" in steps
    assert not [s for s in steps if "Mandatory" in s or "Referral" in s]


# -- consent withdrawn, offender known (decision 36) --------------------------------------------


async def statuses(service: RunningService, key: str, case_id: str) -> dict[str, str]:
    listed = await get(service, key, f"/v1/cases/{case_id}/referrals")
    return {r["referral_id"]: r["status"] for r in listed.json()["items"]}


async def test_withdrawing_consent_revokes_her_open_referrals_as_events_and_hides_her_contact(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    partner_id = await register_partner(referral, keys.caseworker, keys.counsel_org)
    case_id = await open_case(intake, keys.partner, "adult", referral_consent=False)
    await case_known(referral, keys.partner, case_id)
    override = {"reason": "safeguarding_risk", "explanation": "she said she is not safe"}
    on_override = await offer(referral, keys.caseworker, case_id, partner_id, override=override)
    assert on_override.status_code == 201, on_override.text
    given = await post(intake, keys.partner, f"/v1/cases/{case_id}/consents", {"referral": True})
    assert given.is_success, given.text
    await caught_up(referral)
    ids: dict[str, str] = {}
    for name in ("offered", "accepted", "completed"):
        made = await offer(referral, keys.partner, case_id, partner_id)
        assert made.status_code == 201, made.text
        ids[name] = made.json()["referral_id"]
    await caught_up(referral)
    for name, steps in (("accepted", ["accept"]), ("completed", ["accept", "complete"])):
        for step in steps:
            done = await post(referral, keys.counsellor, f"/v1/referrals/{ids[name]}/{step}")
            assert done.is_success, done.text
    before = await get(referral, keys.counsellor, f"/v1/referrals/{ids['accepted']}")
    assert before.json()["contact"] == {"kind": "email", "value": "sparrow@example.org"}

    withdrawn = await post(
        intake, keys.partner, f"/v1/cases/{case_id}/consents", {"referral": False}
    )
    assert withdrawn.is_success, withdrawn.text

    async def revoked() -> dict[str, str]:
        now = await statuses(referral, keys.partner, case_id)
        assert now[ids["offered"]] == "revoked" and now[ids["accepted"]] == "revoked", now
        return now

    now = await eventually(revoked, what="her open referrals revoked")
    assert now[ids["completed"]] == "completed"  # over already: stays as it ended
    assert now[on_override.json()["referral_id"]] == "offered"  # rests on its reason
    # the counsellor keeps her notes and the pseudonym, not her contact route
    after = await get(referral, keys.counsellor, f"/v1/referrals/{ids['accepted']}")
    assert after.json()["contact"] is None and after.json()["status"] == "revoked"
    done = await get(referral, keys.counsellor, f"/v1/referrals/{ids['completed']}")
    assert done.json()["contact"] is None
    # each revocation is an event the service wrote, in the case's timeline
    detail = (await get(intake, keys.caseworker, f"/v1/cases/{case_id}")).json()
    revocations = [t for t in detail["timeline"] if t["type"] == "ReferralRevoked"]
    assert [t["actor_role"] for t in revocations] == ["service", "service"]
    # and a new offer needs an override again
    assert (await offer(referral, keys.partner, case_id, partner_id)).status_code == 409


async def test_an_offender_known_in_intake_brings_the_seizure_guidance_and_a_minors_suspect_clock(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    item = "offender_known_ask_police_to_seize_devices"
    adult = await open_case(intake, keys.partner, "adult")
    minor = await open_case(intake, keys.partner, "minor", region="hualien_county")
    await case_known(referral, keys.partner, adult)
    await case_known(referral, keys.partner, minor)
    for case_id in (adult, minor):
        items = (await get(referral, keys.partner, f"/v1/cases/{case_id}/guidance")).json()
        assert item not in [i["item"] for i in items["items"]]
        recorded = await post(
            intake,
            keys.caseworker,
            f"/v1/cases/{case_id}/offender",
            {"known": True, "account_ids": ["ex-boyfriend-77"]},
        )
        assert recorded.is_success, recorded.text

    for case_id in (adult, minor):

        async def advised(case_id: str = case_id) -> bool:
            found = (await get(referral, keys.partner, f"/v1/cases/{case_id}/guidance")).json()
            assert item in [i["item"] for i in found["items"]], found
            return True

        await eventually(advised, what="the seizure guidance")

    async def suspect_due() -> dict[str, Any]:
        by_kind = {r["kind"]: r for r in await reports_of(referral, keys.partner, minor)}
        assert "known_suspect" in by_kind, by_kind
        return by_kind["known_suspect"]

    report = await eventually(suspect_due, what="the minor's suspect report")
    assert report["status"] == "due" and report["authority"].startswith("Hualien County")
    learned = datetime.fromisoformat(report["learned_at"].replace("Z", "+00:00"))
    due = datetime.fromisoformat(report["due_at"].replace("Z", "+00:00"))
    assert due - learned == timedelta(hours=24)
    # opened by hand too: the same report, once per case
    by_hand = await post(
        referral, keys.partner, f"/v1/cases/{minor}/reports/suspect", {"learned_at": ago(hours=1)}
    )
    assert by_hand.status_code == 201 and by_hand.json()["report_id"] == report["report_id"]
    await caught_up(referral)
    assert [r["kind"] for r in await reports_of(referral, keys.partner, adult)] == []
    kinds = sorted(r["kind"] for r in await reports_of(referral, keys.partner, minor))
    assert kinds == ["known_suspect", "victim_minor"]


async def test_a_declined_referral_takes_no_answer_and_bad_input_is_a_4xx_that_writes_nothing(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    partner_id = await register_partner(referral, keys.caseworker, keys.counsel_org)
    adult = await open_case(intake, keys.partner, "adult")
    await case_known(referral, keys.partner, adult)
    made = await offer(referral, keys.partner, adult, partner_id)
    referral_id = made.json()["referral_id"]
    await caught_up(referral)
    path = f"/v1/referrals/{referral_id}"
    bad_reason = await post(referral, keys.counsellor, f"{path}/decline", {"reason": "busy"})
    assert bad_reason.status_code == 422
    declined = await post(referral, keys.counsellor, f"{path}/decline", {"reason": "no_capacity"})
    assert declined.json()["status"] == "declined"
    for step in ("accept", "complete", "decline"):
        again = await post(referral, keys.counsellor, f"{path}/{step}", {"reason": "other"})
        assert again.status_code in (409, 422), again.text  # final (422: decline's body)
    assert (await post(referral, keys.counsellor, f"{path}/accept")).status_code == 409
    # staff never revoke "for" a withdrawn consent: that one is the service's own
    second = (await offer(referral, keys.partner, adult, partner_id)).json()["referral_id"]
    revoke = f"/v1/cases/{adult}/referrals/{second}/revoke"
    assert (
        await post(referral, keys.partner, revoke, {"reason": "consent_withdrawn"})
    ).status_code == 422
    # a report that does not exist, a suspect report for an adult's case: 4xx
    filing = {
        "filed_at": ago(minutes=1),
        "authority_region": "taipei_city",
        "authority_reference": "X",
    }
    missing = await post(
        referral, keys.partner, f"/v1/cases/{adult}/reports/{uuid.uuid4()}/filing", filing
    )
    assert missing.status_code == 404
    adult_suspect = await post(
        referral, keys.partner, f"/v1/cases/{adult}/reports/suspect", {"learned_at": ago(hours=1)}
    )
    assert adult_suspect.status_code == 422 and "minor" in adult_suspect.json()["detail"]
    await caught_up(referral)
    assert await reports_of(referral, keys.partner, adult) == []
    assert await statuses(referral, keys.partner, adult) == {
        referral_id: "declined",
        second: "offered",
    }


async def test_a_counsellor_reads_only_the_referrals_addressed_to_her_organisation(
    intake: RunningService, referral: RunningService, keys: Keys
) -> None:
    case_id = await open_case(intake, keys.partner, "minor")
    await case_known(referral, keys.partner, case_id)
    for path in (
        f"/v1/cases/{case_id}/referrals",
        f"/v1/cases/{case_id}/reports",
        f"/v1/cases/{case_id}/guidance",
        "/v1/reports",
        "/v1/partners",
    ):
        assert (await get(referral, keys.counsellor, path)).status_code == 403, path
    assert (await get(intake, keys.counsellor, f"/v1/cases/{case_id}")).status_code == 403
    assert (await get(intake, keys.counsellor, "/v1/cases")).status_code == 403
    refused = await post(referral, keys.counsellor, "/v1/partners", partner_body(keys.counsel_org))
    assert refused.status_code == 403


# -- retries without a key (decision 0057) -------------------------------------------------------


async def _referral_types(log: EventStore, case_id: str) -> list[str]:
    return [r.envelope.type for r in await log.read_case(case_id, decrypt=False)]


@pytest.fixture(scope="module")
def log(nc: NATS, test_signing: SigningKey) -> EventStore:
    return EventStore(nc, None, registry=REGISTRY, signing=test_signing)


@pytest.fixture(scope="module")
def ref_log(nc: NATS, test_signing: SigningKey) -> EventStore:
    return EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=test_signing)


def _requires_a_key(response: httpx.Response) -> None:
    assert response.status_code == 428, response.text
    assert response.json()["type"].endswith("/idempotency-key-required")


async def test_an_offer_and_a_counsellors_note_need_a_key_and_a_keyed_retry_writes_once(
    intake: RunningService, referral: RunningService, keys: Keys, make_key: MakeKey, log: EventStore
) -> None:
    org = unique("retry-counsel")
    counsellor = await make_key(org, "counsellor")
    partner_id = await register_partner(referral, keys.caseworker, org)
    case_id = await open_case(intake, keys.partner, "adult")
    await case_known(referral, keys.partner, case_id)
    body = {"partner_id": partner_id, "service": "counselling", "needs": ["emotional_support"]}
    path = f"/v1/cases/{case_id}/referrals"
    async with (
        referral.client(keys.partner, keyed=False) as partner,
        referral.client(counsellor, keyed=False) as counsel,
    ):
        assert (await counsel.post(path, json=body)).status_code == 403  # the role first
        _requires_a_key(await partner.post(path, json=body))
        assert "ReferralOffered" not in await _referral_types(log, case_id)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await partner.post(path, json=body, headers=key)
        again = await partner.post(path, json=body, headers=key)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == first.json()
        assert (await _referral_types(log, case_id)).count("ReferralOffered") == 1
        referral_id = first.json()["referral_id"]
        await caught_up(referral)
        accept = {"Idempotency-Key": uuid.uuid4().hex}
        assert (
            await counsel.post(f"/v1/referrals/{referral_id}/accept", headers=accept)
        ).is_success

        notes = f"/v1/referrals/{referral_id}/notes"
        _requires_a_key(await counsel.post(notes, json={"note": "first talk"}))
        assert "CounsellorNoteAdded" not in await _referral_types(log, case_id)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        for _ in range(2):
            noted = await counsel.post(notes, json={"note": "first talk"}, headers=key)
            assert noted.status_code == 200, noted.text
        assert (await _referral_types(log, case_id)).count("CounsellorNoteAdded") == 1
        read = await counsel.get(f"/v1/referrals/{referral_id}")
        assert [n["note"] for n in read.json()["notes"]] == ["first talk"]


async def test_a_step_or_a_follow_up_retried_without_a_key_is_one_and_another_time_is_another(
    intake: RunningService, referral: RunningService, keys: Keys, make_key: MakeKey, log: EventStore
) -> None:
    org = unique("retry-counsel")
    counsellor = await make_key(org, "counsellor")
    partner_id = await register_partner(referral, keys.caseworker, org)
    case_id = await open_case(intake, keys.partner, "adult")
    await case_known(referral, keys.partner, case_id)
    offered = await offer(referral, keys.partner, case_id, partner_id)
    referral_id = offered.json()["referral_id"]
    await caught_up(referral)
    async with referral.client(counsellor, keyed=False) as counsel:
        # a step retried without a key: the same answer, one event
        accepted = [await counsel.post(f"/v1/referrals/{referral_id}/accept") for _ in range(2)]
        assert [a.status_code for a in accepted] == [200, 200], accepted[-1].text
        assert accepted[0].json() == accepted[1].json()
    assert (await _referral_types(log, case_id)).count("ReferralAccepted") == 1
    follow = {"contacted_at": ago(minutes=10), "outcome": "reached_doing_better", "note": "ok"}
    async with (
        referral.client(keys.partner, keyed=False) as partner,
        referral.client(counsellor, keyed=False) as counsel,
    ):
        case_side = f"/v1/cases/{case_id}/referrals/{referral_id}/follow-ups"
        answers = [await partner.post(case_side, json=follow) for _ in range(2)]
        assert [a.json()["follow_ups"] for a in answers] == [1, 1], answers[-1].text
        partner_side = f"/v1/referrals/{referral_id}/follow-ups"
        later = {**follow, "contacted_at": ago(minutes=2)}
        answers = [await counsel.post(partner_side, json=later) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200], answers[-1].text
    assert (await _referral_types(log, case_id)).count("FollowUpRecorded") == 2


async def test_registering_a_partner_needs_a_key_and_the_same_settings_again_are_no_news(
    referral: RunningService, keys: Keys, ref_log: EventStore
) -> None:
    org = unique("retry-partner")
    async with referral.client(keys.caseworker, keyed=False) as staff:
        _requires_a_key(await staff.post("/v1/partners", json=partner_body(org)))
        await caught_up(referral)
        listed = (await staff.get("/v1/partners")).json()["items"]
        assert org not in {p["organisation"] for p in listed}
        body = partner_body(org)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await staff.post("/v1/partners", json=body, headers=key)
        again = await staff.post("/v1/partners", json=body, headers=key)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == first.json()
        partner_id = first.json()["partner_id"]
        changed = {**body, "taking_referrals": False}
        for _ in range(2):  # a PUT retried without a key
            put = await staff.put(f"/v1/partners/{partner_id}", json=changed)
            assert put.status_code == 200, put.text
    events = await ref_log.load(AggregateRef(REFERENCE_CASE, "partner", partner_id))
    assert [e.envelope.type for e in events] == ["PartnerRegistered", "PartnerUpdated"]
