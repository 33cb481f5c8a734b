"""Intake end to end: the service as its own process, real NATS and SQLite, driven over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ncii_contracts import intake as intake_events
from ncii_events.audit import verify_chain
from ncii_events.store import EventStore

from tests.e2e.conftest import RunningService, caught_up
from tests.support.events import REGISTRY
from tests.support.eventually import eventually

MakeKey = Callable[[str, str], Awaitable[str]]


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pseudonym": "Sparrow",
        "age_group": "adult",
        "harm_categories": ["distribution_without_consent_319_3"],
        "spread_status": "spread",
        "channels": [{"kind": "messaging_app", "platform": "LINE"}],
        "intake_channel": "partner_api",
        "learned_at": ago(hours=1),
        "consents": {"takedown": True, "share_hashes": True, "referral": True},
        "contact": {"email": "sparrow@example.org", "preferred": "email"},
    }
    body.update(overrides)
    return body


PDQ = "e64cc9d91e623842f8d1f1d9a398e78c9f199a3bd87924f2b7e11e0bf061b064"
HASHES = {"hashes": [{"algorithm": "pdq", "value": PDQ, "quality": 90, "media": "image"}]}


@pytest.fixture(scope="module")
async def partner(intake: RunningService, make_key: MakeKey) -> str:
    key = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    return key


@pytest.fixture(scope="module")
async def caseworker(intake: RunningService, make_key: MakeKey) -> str:
    """The centre's case worker: only a case worker (or an admin) erases (decision 35)."""
    key = await make_key("centre", "caseworker")
    await caught_up(intake)
    return key


@pytest.fixture(scope="module")
async def other_partner(intake: RunningService, make_key: MakeKey) -> str:
    key = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    return key


async def open_case(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/cases", json=case_body(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pseudonym": ""}, "pseudonym"),
        ({"pseudonym": "x" * 61}, "pseudonym"),
        ({"pseudonym": "two\nlines"}, "pseudonym"),
        ({"age_group": "teen"}, "age_group"),
        ({"harm_categories": []}, "harm_categories"),
        ({"harm_categories": ["revenge"]}, "harm_categories.0"),
        ({"harm_categories": ["threat_sextortion", "threat_sextortion"]}, "harm_categories"),
        ({"spread_status": "maybe"}, "spread_status"),
        ({"channels": [{"kind": "fax"}]}, "channels.0.kind"),
        ({"intake_channel": "letter"}, "intake_channel"),
        ({"learned_at": "yesterday"}, "learned_at"),
        ({"learned_at": "2026-01-01T10:00:00"}, "learned_at"),  # no time zone
        ({"learned_at": "2999-01-01T00:00:00Z"}, "learned_at"),
        ({"consents": {"takedown": True}}, "consents.share_hashes"),
        ({"contact": {"email": "not-an-address"}}, "contact.email"),
        ({"contact": {"phone": "call me"}}, "contact.phone"),
        ({"real_name": "Chen Mei"}, "real_name"),
    ],
)
async def test_each_invalid_field_gets_a_422_naming_it_and_nothing_is_written(
    intake: RunningService, partner: str, change: dict[str, Any], field: str
) -> None:
    async with intake.client(partner) as client:
        before = (await client.get("/v1/cases", params={"limit": 200})).json()["items"]
        response = await client.post("/v1/cases", json=case_body(**change))
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert field in [e["field"] for e in problem["errors"]], problem
        assert all(e["message"] for e in problem["errors"])
        await caught_up(intake)
        after = (await client.get("/v1/cases", params={"limit": 200})).json()["items"]
        assert len(after) == len(before)


async def test_errors_never_echo_what_was_sent(intake: RunningService, partner: str) -> None:
    secret = "Chen Mei +886912345678"
    async with intake.client(partner) as client:
        response = await client.post(
            "/v1/cases", json=case_body(pseudonym=secret + "\n", contact={"email": secret})
        )
    assert response.status_code == 422
    assert "Chen" not in response.text and "912345678" not in response.text


async def test_a_missing_or_wrong_key_is_401_and_a_wrong_role_is_403(
    intake: RunningService, make_key: MakeKey
) -> None:
    async with intake.client() as client:
        assert (await client.get("/v1/cases")).status_code == 401
    async with intake.client("ncii_live_not-a-real-key") as client:
        response = await client.get("/v1/cases")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
    platform = await make_key("some-platform", "platform")
    await caught_up(intake)
    async with intake.client(platform) as client:
        response = await client.post("/v1/cases", json=case_body())
        assert response.status_code == 403
        assert "partner" in response.json()["detail"]


# -- the rules ------------------------------------------------------------------------------------


async def test_an_adult_case_cannot_share_hashes_until_the_non_consent_statement_is_recorded(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client)
        assert case["status"] == "awaiting_statement"
        refused = await client.post(f"/v1/cases/{case['case_id']}/hashes", json=HASHES)
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("non-consent-statement-required")
        assert "statement of non-consent" in refused.json()["detail"]
        stated = await client.post(
            f"/v1/cases/{case['case_id']}/non-consent",
            json={"stated_at": ago(minutes=5), "method": "signed_form"},
        )
        assert stated.status_code == 200 and stated.json()["status"] == "active"
        accepted = await client.post(f"/v1/cases/{case['case_id']}/hashes", json=HASHES)
        assert accepted.status_code == 200, accepted.text


async def test_a_minor_case_needs_no_statement_and_shares_hashes_at_once(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(
            client, age_group="minor", harm_categories=["child_sexual_exploitation"]
        )
        assert case["status"] == "active"
        assert (
            await client.post(f"/v1/cases/{case['case_id']}/hashes", json=HASHES)
        ).status_code == 200
        refused = await client.post(
            f"/v1/cases/{case['case_id']}/non-consent",
            json={"stated_at": ago(minutes=1), "method": "verbal"},
        )
        assert refused.status_code == 409 and "minor" in refused.json()["detail"]


async def test_hashes_without_the_consent_to_share_them_are_refused(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(
            client,
            age_group="minor",
            consents={"takedown": True, "share_hashes": False, "referral": False},
        )
        refused = await client.post(f"/v1/cases/{case['case_id']}/hashes", json=HASHES)
        assert refused.status_code == 409 and refused.json()["type"].endswith("consent-missing")


async def test_intakes_old_mandatory_report_routes_are_gone_410_pointing_to_referral(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client, age_group="minor")
        filed = await client.post(
            f"/v1/cases/{case['case_id']}/mandatory-report",
            json={"filed_at": ago(minutes=1), "authority": "Taipei City Social Welfare Dept."},
        )
        assert filed.status_code == 410, filed.text
        assert filed.headers["content-type"].startswith("application/problem+json")
        assert f"POST /v1/cases/{case['case_id']}/reports/" in filed.json()["detail"]
        listed = await client.get("/v1/mandatory-reports")
        assert listed.status_code == 410 and "GET /v1/reports" in listed.json()["detail"]
        await caught_up(intake)
        detail = (await client.get(f"/v1/cases/{case['case_id']}")).json()
        assert [t["type"] for t in detail["timeline"]] == ["CaseOpened"]
        # no clock of intake's own: the report shows once referral opened it (test_referral)
        assert detail["mandatory_report"] is None
        assert not any("24 hours" in p for p in detail["pending"])
        summary = (await client.get("/v1/cases")).json()["items"][0]
        assert not [k for k in summary if k.startswith("mandatory_report")]
        spec = (await client.get("/openapi.json")).json()["paths"]
        moved = spec["/v1/cases/{case_id}/mandatory-report"]["post"]
        assert moved["deprecated"] is True and "referral" in moved["description"]
        assert spec["/v1/mandatory-reports"]["get"]["deprecated"] is True


async def test_a_withdrawn_case_is_final_and_takes_no_new_facts(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client, age_group="minor")
        withdrawn = await client.post(
            f"/v1/cases/{case['case_id']}/withdraw", json={"reason": "resolved"}
        )
        assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
        again = await client.post(f"/v1/cases/{case['case_id']}/withdraw")
        assert again.status_code == 200 and again.json()["status"] == "withdrawn"
        refused = await client.post(
            f"/v1/cases/{case['case_id']}/locations",
            json={"url": "https://example.com/x", "platform": "Forum", "channel_kind": "forum"},
        )
        assert refused.status_code == 409 and "withdrawn" in refused.json()["detail"]
        assert (
            await client.post(f"/v1/cases/{case['case_id']}/hashes", json=HASHES)
        ).status_code == 409


async def test_erasure_destroys_personal_data_but_the_history_replays_and_verifies(
    intake: RunningService, partner: str, caseworker: str, store: EventStore
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client, age_group="minor")
        cid = case["case_id"]
        await client.post(
            f"/v1/cases/{cid}/locations",
            json={
                "url": "https://video.example/watch?v=abc",
                "platform": "VideoSite",
                "channel_kind": "video_site",
            },
        )
        before = (await client.get(f"/v1/cases/{cid}")).json()
        assert before["pseudonym"] == "Sparrow"
        assert before["locations"][0]["url"] == "https://video.example/watch?v=abc"
        async with intake.client(caseworker) as centre:
            erased = await centre.post(f"/v1/cases/{cid}/erase", json={"reason": "victim_request"})
        assert erased.status_code == 200 and erased.json()["status"] == "erased"
        after = (await client.get(f"/v1/cases/{cid}")).json()
        assert after["pseudonym"] is None and after["contact"] is None
        assert after["locations"][0]["url"] is None and after["personal_data_erased"] is True
        assert after["locations"][0]["platform"] is None
        assert [t["type"] for t in after["timeline"]] == [
            "CaseOpened",
            "LocationReported",
            "CaseErased",
        ]
        refused = await client.post(
            f"/v1/cases/{cid}/locations",
            json={"url": "https://x.example/1", "platform": "X", "channel_kind": "forum"},
        )
        assert refused.status_code == 409
    history = await store.read_case(cid)
    assert verify_chain(history).ok
    assert isinstance(history[0].event, intake_events.CaseOpened)
    assert history[0].erased_fields == {"pseudonym", "contact", "channels"}
    assert history[1].erased_fields == {"url", "platform"}


# -- the victim's access --------------------------------------------------------------------------


async def test_the_victim_sees_and_withdraws_the_case_with_reference_and_pin_only(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client)
    access = case["victim_access"]
    assert len(access["pin"]) == 8 and access["reference"] == case["reference"]
    await caught_up(intake)
    async with intake.client() as anonymous:
        typed = access["reference"].lower().replace("-", " ")  # as a person types it
        status = await anonymous.post(
            "/v1/victim/status", json={"reference": typed, "pin": access["pin"]}
        )
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "awaiting_statement"
        assert status.json()["steps"][0]["what"] == "your case was opened"
        assert "Sparrow" not in status.text
        wrong_pin = f"{(int(access['pin']) + 1) % 100_000_000:08d}"
        wrong = await anonymous.post(
            "/v1/victim/status", json={"reference": access["reference"], "pin": wrong_pin}
        )
        assert wrong.status_code == 401
        credentials = {"reference": access["reference"], "pin": access["pin"]}
        withdrawn = await anonymous.post("/v1/victim/withdraw", json=credentials)
        assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    async with intake.client(partner) as client:
        detail = (await client.get(f"/v1/cases/{case['case_id']}")).json()
        assert detail["status"] == "withdrawn"
        assert detail["timeline"][-1]["actor_role"] == "victim"


# -- organisations ------------------------------------------------------------------------------


async def test_another_organisation_gets_404_for_a_case_it_does_not_own(
    intake: RunningService, partner: str, other_partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client)
    await caught_up(intake)
    cid = case["case_id"]
    async with intake.client(other_partner) as other:
        got = await other.get(f"/v1/cases/{cid}")
        missing = await other.get(f"/v1/cases/{uuid.uuid4()}")
        assert got.status_code == missing.status_code == 404
        assert got.json()["detail"] == missing.json()["detail"]
        changed = await other.post(f"/v1/cases/{cid}/withdraw")
        assert changed.status_code == 404
        listed = {
            c["case_id"]
            for c in (await other.get("/v1/cases", params={"limit": 200})).json()["items"]
        }
        assert cid not in listed
    async with intake.client(partner) as client:
        assert (await client.get(f"/v1/cases/{cid}")).json()["status"] == "awaiting_statement"


async def test_the_centres_case_workers_see_every_organisations_cases(
    intake: RunningService, partner: str, make_key: MakeKey
) -> None:
    caseworker = await make_key("centre", "caseworker")
    async with intake.client(partner) as client:
        case = await open_case(client)
    await caught_up(intake)
    async with intake.client(caseworker) as client:
        assert (await client.get(f"/v1/cases/{case['case_id']}")).status_code == 200


# -- retries and concurrency ----------------------------------------------------------------------


async def test_retrying_an_open_with_the_same_idempotency_key_returns_the_same_case_and_pin(
    intake: RunningService, partner: str
) -> None:
    key = str(uuid.uuid4())
    body = case_body()
    async with intake.client(partner) as client:
        first, second = await asyncio.gather(
            client.post("/v1/cases", json=body, headers={"Idempotency-Key": key}),
            client.post("/v1/cases", json=body, headers={"Idempotency-Key": key}),
        )
        third = await client.post("/v1/cases", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == second.status_code == third.status_code == 201
        assert first.json() == second.json() == third.json()
        reused = await client.post(
            "/v1/cases", json=case_body(pseudonym="Heron"), headers={"Idempotency-Key": key}
        )
        assert reused.status_code == 422 and "different request" in reused.json()["detail"]
        await caught_up(intake)
        detail = (await client.get(f"/v1/cases/{first.json()['case_id']}")).json()
        assert len(detail["timeline"]) == 1


async def test_replaying_an_open_after_the_case_was_erased_shows_no_reference_or_pin(
    intake: RunningService, partner: str, caseworker: str
) -> None:
    # F9: the replay (kept 24 h) still handed out the victim's access to an erased case
    key = str(uuid.uuid4())
    body = case_body()
    async with intake.client(partner) as client:
        first = await client.post("/v1/cases", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 201 and first.json()["victim_access"]["pin"]
        case_id = first.json()["case_id"]
        async with intake.client(caseworker) as centre:
            erased = await centre.post(f"/v1/cases/{case_id}/erase", json={"reason": "other"})
        assert erased.status_code == 422  # says why, from a closed list
        async with intake.client(caseworker) as centre:
            erased = await centre.post(
                f"/v1/cases/{case_id}/erase", json={"reason": "victim_request"}
            )
        assert erased.status_code == 200, erased.text
        replay = await client.post("/v1/cases", json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == {"case_id": case_id, "status": "erased", "victim_access": None}
    reference = first.json()["victim_access"]["reference"]
    assert reference not in replay.text and first.json()["victim_access"]["pin"] not in replay.text


async def test_retrying_a_change_with_the_same_idempotency_key_writes_it_once(
    intake: RunningService, partner: str
) -> None:
    location = {"url": "https://forum.example/t/1", "platform": "Forum", "channel_kind": "forum"}
    async with intake.client(partner) as client:
        case = await open_case(client)
        path = f"/v1/cases/{case['case_id']}/locations"
        for _ in range(3):
            response = await client.post(path, json=location, headers={"Idempotency-Key": "loc-1"})
            assert response.status_code == 200
        detail = (await client.get(f"/v1/cases/{case['case_id']}")).json()
        assert len(detail["locations"]) == 1


async def test_concurrent_changes_to_one_case_get_409_and_no_update_is_lost(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client)
        path = f"/v1/cases/{case['case_id']}/locations"
        responses = await asyncio.gather(
            *(
                client.post(
                    path,
                    json={
                        "url": f"https://forum.example/t/{i}",
                        "platform": "Forum",
                        "channel_kind": "forum",
                    },
                )
                for i in range(20)
            )
        )
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 409}, codes
        for conflict in (r for r in responses if r.status_code == 409):
            assert conflict.json()["type"].endswith("concurrent-change")
        detail = (await client.get(f"/v1/cases/{case['case_id']}")).json()
        assert len(detail["locations"]) == codes.count(200)


async def test_a_stale_if_match_gets_412_and_a_current_one_succeeds(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client)
        cid = case["case_id"]
        read = await client.get(f"/v1/cases/{cid}")
        tag = read.headers["etag"]
        body = {"decision": "will_report"}
        ok = await client.post(
            f"/v1/cases/{cid}/police-report-decision", json=body, headers={"If-Match": tag}
        )
        assert ok.status_code == 200
        stale = await client.post(
            f"/v1/cases/{cid}/police-report-decision",
            json={"decision": "declined"},
            headers={"If-Match": tag},
        )
        assert stale.status_code == 412
        assert (await client.get(f"/v1/cases/{cid}")).json()["consents"][
            "police_report"
        ] == "will_report"


async def test_case_lists_are_cursor_paginated_newest_first(
    intake: RunningService, make_key: MakeKey
) -> None:
    key = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    async with intake.client(key) as client:
        opened = [(await open_case(client))["case_id"] for _ in range(5)]
        await caught_up(intake)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/cases", params=params)).json()
            seen += [c["case_id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(opened))


async def test_a_revoked_key_is_refused_once_the_services_key_cache_expires(
    intake: RunningService, nc: Any, operator_signing: Any
) -> None:
    """The two seconds themselves are held with a clock in
    ``test_a_valid_key_is_remembered_for_two_seconds_so_a_revocation_holds_after_that``."""
    from ncii_events.auth import create_principal, revoke_principal
    from ncii_events.stream import REFERENCE

    ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=operator_signing)
    principal_id, key = await create_principal(
        ref_store, organisation="ngo-revoked", role="partner"
    )
    await caught_up(intake)
    async with intake.client(key) as client:
        assert (await client.get("/v1/cases")).status_code == 200
        assert await revoke_principal(ref_store, principal_id, "lost laptop")
        await caught_up(intake)

        async def refused() -> httpx.Response | None:
            answer = await client.get("/v1/cases")  # 200 while the service remembers the key
            return answer if answer.status_code != 200 else None

        answer = await eventually(refused, what="the revoked key being refused", interval=0.1)
        assert answer is not None
        assert answer.status_code == 401 and "revoked" in answer.json()["detail"]


async def test_a_key_erased_by_another_process_is_dropped_from_the_services_cache(
    intake: RunningService, partner: str, case_keys: Any
) -> None:
    async with intake.client(partner) as client:
        case = await open_case(client, age_group="minor")  # the service now holds the key
        assert await case_keys.erase(case["case_id"])  # erased from this test's process

        async def key_dropped() -> bool:  # reading the case needs the key: read-only probe
            detail = (await client.get(f"/v1/cases/{case['case_id']}")).json()
            return detail["pseudonym"] is None

        await eventually(key_dropped, what="the service's key watcher dropping the key")
        refused = await client.post(
            f"/v1/cases/{case['case_id']}/locations",
            json={"url": "https://x.example/1", "platform": "X", "channel_kind": "forum"},
        )
        assert refused.status_code == 409
        detail = (await client.get(f"/v1/cases/{case['case_id']}")).json()
        assert detail["pseudonym"] is None and detail["personal_data_erased"] is True


async def test_a_video_submission_keeps_only_frames_good_enough_to_match_on(
    intake: RunningService, partner: str, store: EventStore
) -> None:
    good, poor = "a" * 64, "b" * 64
    video = {
        "algorithm": "vpdq",
        "media": "video",
        "frames": [
            {"value": good, "quality": 90, "timestamp": 0.0},
            {"value": poor, "quality": 10, "timestamp": 1.0},
        ],
    }
    async with intake.client(partner) as client:
        case = await open_case(client, age_group="minor")
        accepted = await client.post(
            f"/v1/cases/{case['case_id']}/hashes", json={"hashes": [video]}
        )
        assert accepted.status_code == 200, accepted.text
        all_poor = {**video, "frames": [video["frames"][1]]}  # type: ignore[index]
        refused = await client.post(
            f"/v1/cases/{case['case_id']}/hashes", json={"hashes": [all_poor]}
        )
        assert refused.status_code == 422 and "below quality 50" in refused.text
    [submitted] = [
        e.event
        for e in await store.read_case(case["case_id"])
        if isinstance(e.event, intake_events.HashesSubmitted)
    ]
    assert submitted.hashes[0].value is None and submitted.hashes[0].frames == [good]
