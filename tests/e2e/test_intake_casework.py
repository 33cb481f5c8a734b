# ruff: noqa: F811 (the tests take the fixtures imported from the hashmatch exchange's tests)
"""Case work end to end (issue 12, decision 35): intake and hashmatch as their own processes,
real NATS and SQLite, driven over HTTP by a partner NGO and a platform."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from nats.aio.client import Client as NATS
from ncii_contracts.intake import (
    CaseErased,
    CaseReopened,
    ConsentsChanged,
    ErasureRequested,
    OffenderDetailsRecorded,
    SpreadStatusChanged,
)
from ncii_events.auth import create_principal
from ncii_events.signing import SigningKey
from ncii_events.store import EventStore
from ncii_events.stream import REFERENCE
from ncii_intake.http.views import CaseList

from tests.e2e.conftest import RunningService, caught_up
from tests.e2e.test_hashmatch_exchange import (  # noqa: F401 (fixtures: hashmatch's process, keys, reader)
    Hashmatch,
    MakeKey,
    ago,
    case_store,
    hashmatch,
    keys,
    lookup,
    random_pdq,
)
from tests.e2e.test_intake_api import case_body
from tests.support.events import REGISTRY
from tests.support.eventually import eventually


def _hashes(value: str) -> dict[str, Any]:
    return {"hashes": [{"algorithm": "pdq", "value": value, "quality": 90, "media": "image"}]}


async def _minor_case_with_hashes(partner: httpx.AsyncClient, value: str) -> str:
    # a minor's case needs no statement: hashes can be shared at once
    case_id = str(
        (await partner.post("/v1/cases", json=case_body(age_group="minor"))).json()["case_id"]
    )
    response = await partner.post(f"/v1/cases/{case_id}/hashes", json=_hashes(value))
    assert response.status_code == 200, response.text
    return case_id


async def _status(client: httpx.AsyncClient, case_id: str) -> str:
    return str((await client.get(f"/v1/cases/{case_id}")).json()["status"])


async def test_a_closed_case_stays_matched_and_a_re_upload_reopens_it_by_itself(
    hashmatch: Hashmatch, intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    value = random_pdq()
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case_id = await _minor_case_with_hashes(partner, value)
        closed = await partner.post(f"/v1/cases/{case_id}/close", json={"reason": "resolved"})
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"
        await hashmatch.caught_up()
        async with hashmatch.client(keys["platform"]) as platform:
            # closing is not withdrawing: the hashes are still matched
            assert [
                len(m) for m in await lookup(platform, {"algorithm": "pdq", "value": value})
            ] == [1]
            sighting = {
                "hash": {"algorithm": "pdq", "value": value},
                "url": "https://videos.example.com/watch/re-upload",
                "seen_at": ago(minutes=1),
            }
            seen = await platform.post("/v1/sightings", json=sighting)
            assert seen.status_code == 201, seen.text
        match_id = seen.json()["matches"][0]["match_id"]

        async def reopened() -> bool:
            return await _status(partner, case_id) == "active"

        await eventually(reopened, what="the re-upload reopening the closed case")
        detail = (await partner.get(f"/v1/cases/{case_id}")).json()
        assert detail["closed_at"] is None
    history = await case_store.read_case(case_id)
    reopenings = [r for r in history if isinstance(r.event, CaseReopened)]
    assert [r.event for r in reopenings] == [CaseReopened(cause="re_upload", match_id=match_id)]
    assert reopenings[0].envelope.actor.role == "service"


async def test_a_closed_case_is_reopened_by_hand_but_a_withdrawn_one_is_final(
    intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case_id = str(
            (await partner.post("/v1/cases", json=case_body(age_group="minor"))).json()["case_id"]
        )
        assert (await partner.post(f"/v1/cases/{case_id}/close")).status_code == 200
        response = await partner.post(f"/v1/cases/{case_id}/reopen")
        assert response.status_code == 200 and response.json()["status"] == "active"
        assert (await partner.post(f"/v1/cases/{case_id}/withdraw")).status_code == 200
        before = len(await case_store.read_case(case_id, decrypt=False))
        refused = await partner.post(f"/v1/cases/{case_id}/reopen")
        assert refused.status_code == 409, refused.text
        assert "withdrawn" in refused.json()["detail"]
        assert "POST /v1/cases" in refused.json()["detail"]  # says what to do instead
        assert len(await case_store.read_case(case_id, decrypt=False)) == before


async def test_share_hashes_withdrawn_leaves_matching_and_given_again_lets_hashes_in(
    hashmatch: Hashmatch, intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    value, later = random_pdq(), random_pdq()
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case_id = await _minor_case_with_hashes(partner, value)
        await hashmatch.caught_up()
        async with hashmatch.client(keys["platform"]) as platform:
            assert [
                len(m) for m in await lookup(platform, {"algorithm": "pdq", "value": value})
            ] == [1]
            response = await partner.post(
                f"/v1/cases/{case_id}/consents", json={"share_hashes": False, "contact": False}
            )
            assert response.status_code == 200, response.text
            await hashmatch.caught_up()
            assert await lookup(platform, {"algorithm": "pdq", "value": value}) == [[]]

            refused = await partner.post(f"/v1/cases/{case_id}/hashes", json=_hashes(later))
            assert refused.status_code == 409, refused.text
            # the refusal names the command that exists, and how to call it
            assert f"POST /v1/cases/{case_id}/consents" in refused.json()["detail"]

            given = await partner.post(f"/v1/cases/{case_id}/consents", json={"share_hashes": True})
            assert given.status_code == 200, given.text
            accepted = await partner.post(f"/v1/cases/{case_id}/hashes", json=_hashes(later))
            assert accepted.status_code == 200, accepted.text
            await hashmatch.caught_up()
            assert [
                len(m) for m in await lookup(platform, {"algorithm": "pdq", "value": later})
            ] == [1]
        detail = (await partner.get(f"/v1/cases/{case_id}")).json()
        assert detail["consents"]["share_hashes"] is True and detail["consents"]["contact"] is False
    changes = [
        r.event for r in await case_store.read_case(case_id) if isinstance(r.event, ConsentsChanged)
    ]
    assert changes == [
        ConsentsChanged(share_hashes=False, contact=False),
        ConsentsChanged(share_hashes=True),
    ]


async def test_the_trail_of_channels_keeps_each_stage_in_order(
    intake: RunningService, keys: dict[str, str]
) -> None:
    trail = [
        {"kind": "messaging_app", "platform": "Messenger", "stage": "lured"},
        {"kind": "messaging_app", "platform": "Telegram", "stage": "threatened"},
        {"kind": "social_platform", "platform": "X", "stage": "spread"},
    ]
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case_id = (await partner.post("/v1/cases", json=case_body(channels=trail))).json()[
            "case_id"
        ]
        shown = (await partner.get(f"/v1/cases/{case_id}")).json()["channels"]
        assert shown == trail
        bad = await partner.post(
            "/v1/cases", json=case_body(channels=[{"kind": "forum", "stage": "posted"}])
        )
        assert bad.status_code == 422


async def test_the_first_location_of_a_threatened_case_moves_it_to_spread(
    intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        body = case_body(age_group="minor", spread_status="threatened")
        case_id = str((await partner.post("/v1/cases", json=body)).json()["case_id"])
        assert (await partner.get(f"/v1/cases/{case_id}")).json()["spread_status"] == "threatened"
        location = {
            "url": "https://forum.example/t/1",
            "platform": "a forum",
            "channel_kind": "forum",
        }
        assert (
            await partner.post(f"/v1/cases/{case_id}/locations", json=location)
        ).status_code == 200
        assert (await partner.get(f"/v1/cases/{case_id}")).json()["spread_status"] == "spread"

        async def listed_as_spread() -> bool:
            page = (await partner.get("/v1/cases", params={"limit": 200})).json()
            return any(
                i["case_id"] == case_id and i["spread_status"] == "spread" for i in page["items"]
            )

        await eventually(listed_as_spread, what="the case list showing the spread status")
        by_hand = await partner.post(
            "/v1/cases", json=case_body(age_group="minor", spread_status="threatened")
        )
        other = by_hand.json()["case_id"]
        assert (await partner.post(f"/v1/cases/{other}/spread")).status_code == 200
        assert (await partner.get(f"/v1/cases/{other}")).json()["spread_status"] == "spread"
    moved = [
        r.event
        for r in await case_store.read_case(case_id)
        if isinstance(r.event, SpreadStatusChanged)
    ]
    assert moved == [SpreadStatusChanged(spread_status="spread", cause="location_reported")]


async def test_bad_case_work_input_is_refused_with_what_to_do_and_nothing_is_written(
    intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case_id = str(
            (await partner.post("/v1/cases", json=case_body(age_group="minor"))).json()["case_id"]
        )
        before = len(await case_store.read_case(case_id, decrypt=False))
        empty = await partner.post(f"/v1/cases/{case_id}/consents", json={})
        assert empty.status_code == 422 and "say which consents change" in empty.text
        unknown = await partner.post(f"/v1/cases/{case_id}/consents", json={"photos": True})
        assert unknown.status_code == 422
        reason = await partner.post(f"/v1/cases/{case_id}/close", json={"reason": "bored"})
        assert reason.status_code == 422
        category = await partner.post("/v1/cases", json=case_body(harm_categories=["revenge"]))
        assert category.status_code == 422
        assert len(await case_store.read_case(case_id, decrypt=False)) == before

        async with intake.client(keys["caseworker"]) as centre:
            response = await centre.post(
                f"/v1/cases/{case_id}/erase", json={"reason": "victim_request"}
            )
            assert response.status_code == 200, response.text
        erased = len(await case_store.read_case(case_id, decrypt=False))
        refused = await partner.post(f"/v1/cases/{case_id}/consents", json={"referral": True})
        assert refused.status_code == 409, refused.text
        assert "erased" in refused.json()["detail"]
        assert len(await case_store.read_case(case_id, decrypt=False)) == erased


# -- what the law needs, working the case, erasure, least privilege -----------------------------


async def _open(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/cases", json=case_body(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_the_legal_assessment_derives_whether_prosecution_needs_her_complaint(
    intake: RunningService, keys: dict[str, str]
) -> None:
    await caught_up(intake)
    async with (
        intake.client(keys["partner"]) as partner,
        intake.client(keys["caseworker"]) as centre,
    ):
        case_id = (await _open(partner, harm_categories=["sexual_audio_315_1"]))["case_id"]
        shown = (await centre.get(f"/v1/cases/{case_id}")).json()["legal"]
        assert shown["categories"] == ["sexual_audio_315_1"] and shown["complaint_required"]
        assert "six months" in shown["consequence"] and shown["sexual_image"] is None
        # the eligibility check is a case worker's: a partner may not record it
        body = {
            "categories": ["forced_recording_319_2"],
            "how_obtained": "recorded_by_force_or_threat",
            "depicts": ["genitals_or_private_parts"],
        }
        refused = await partner.post(f"/v1/cases/{case_id}/legal-assessment", json=body)
        assert refused.status_code == 403
        recorded = await centre.post(f"/v1/cases/{case_id}/legal-assessment", json=body)
        assert recorded.status_code == 200, recorded.text
        legal = (await centre.get(f"/v1/cases/{case_id}")).json()["legal"]
        assert legal["complaint_required"] is False and "ex officio" in legal["consequence"]
        assert (
            legal["sexual_image"] is True and legal["how_obtained"] == "recorded_by_force_or_threat"
        )
        unknown = await centre.post(
            f"/v1/cases/{case_id}/legal-assessment", json={**body, "categories": ["revenge"]}
        )
        assert unknown.status_code == 422 and "categories" in unknown.text

        async def listed_by_category() -> bool:
            page = await centre.get("/v1/cases", params={"category": "forced_recording_319_2"})
            return case_id in {i["case_id"] for i in page.json()["items"]}

        await eventually(listed_by_category, what="the list filtering on the assessed category")


async def test_offender_and_police_report_details_are_personal_and_go_with_erasure(
    intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    await caught_up(intake)
    async with (
        intake.client(keys["partner"]) as partner,
        intake.client(keys["caseworker"]) as centre,
    ):
        case_id = (await _open(partner, age_group="minor"))["case_id"]
        offender = {
            "known": True,
            "account_ids": ["@offender_acct"],
            "ip_addresses": ["203.0.113.7"],
            "crime_group": "Group X",
        }
        assert (
            await partner.post(f"/v1/cases/{case_id}/offender", json=offender)
        ).status_code == 200
        police = {
            "station": "Da-an precinct",
            "report_number": "DA-2026-1234",
            "reported_on": "2026-11-20",
            "seizure_requested": True,
        }
        response = await partner.post(f"/v1/cases/{case_id}/police-report", json=police)
        assert response.status_code == 200, response.text
        shown = (await centre.get(f"/v1/cases/{case_id}")).json()
        assert shown["offender"]["account_ids"] == ["@offender_acct"]
        assert shown["police_report"] == {**police}
        raw = await case_store.read_case(case_id, decrypt=False)
        assert "@offender_acct" not in str([r.envelope.payload for r in raw])  # encrypted
        assert "DA-2026-1234" not in str([r.envelope.payload for r in raw])
        erased = await centre.post(f"/v1/cases/{case_id}/erase", json={"reason": "victim_request"})
        assert erased.status_code == 200
        after = (await centre.get(f"/v1/cases/{case_id}")).json()
        assert after["offender"]["account_ids"] is None and after["offender"]["known"] is True
        assert after["police_report"]["station"] is None
    [kept] = [
        r.event
        for r in await case_store.read_case(case_id)
        if isinstance(r.event, OffenderDetailsRecorded)
    ]
    assert kept.ip_addresses is None  # shredded with the case's key


async def test_a_case_is_assigned_to_a_worker_of_its_organisation_only_and_counted_in_caseloads(
    intake: RunningService, case_store: EventStore, nc: NATS, operator_signing: SigningKey
) -> None:
    ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=operator_signing)
    organisation = f"ngo-{uuid.uuid4().hex[:6]}"
    _, owner = await create_principal(ref_store, organisation=organisation, role="partner")
    colleague, _ = await create_principal(ref_store, organisation=organisation, role="partner")
    stranger, _ = await create_principal(
        ref_store, organisation=f"ngo-{uuid.uuid4().hex[:6]}", role="partner"
    )
    colleague_id, stranger_id = colleague, stranger
    await caught_up(intake)
    async with intake.client(owner) as client:
        case_id = (await _open(client, age_group="minor"))["case_id"]
        before = len(await case_store.read_case(case_id, decrypt=False))
        refused = await client.post(f"/v1/cases/{case_id}/assignee", json={"assignee": stranger_id})
        assert refused.status_code == 422, refused.text
        assert "organisation that owns it" in refused.json()["detail"]
        unknown = await client.post(f"/v1/cases/{case_id}/assignee", json={"assignee": "nobody"})
        assert unknown.status_code == 422
        assert len(await case_store.read_case(case_id, decrypt=False)) == before
        assigned = await client.post(
            f"/v1/cases/{case_id}/assignee", json={"assignee": colleague_id}
        )
        assert assigned.status_code == 200, assigned.text
        assert (await client.get(f"/v1/cases/{case_id}")).json()["assignee"] == colleague_id

        async def counted() -> bool:
            load = (await client.get("/v1/caseload")).json()["items"]
            mine = (await client.get("/v1/cases", params={"assignee": colleague_id})).json()
            return {"assignee": colleague_id, "open_cases": 1} in load and [
                i["case_id"] for i in mine["items"]
            ] == [case_id]

        await eventually(counted, what="the caseload and the assignee filter")


async def test_notes_and_the_contact_log_are_personal(
    intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case_id = (await _open(partner, age_group="minor"))["case_id"]
        note = await partner.post(
            f"/v1/cases/{case_id}/notes",
            json={"text": "called her mother"},
            headers={"Idempotency-Key": "note-1"},
        )
        assert note.status_code == 200, note.text
        logged = await partner.post(
            f"/v1/cases/{case_id}/contacts",
            json={
                "at": ago(minutes=10),
                "channel": "phone",
                "direction": "outbound",
                "summary": "agreed a safe time to call",
            },
        )
        assert logged.status_code == 200, logged.text
        shown = (await partner.get(f"/v1/cases/{case_id}")).json()
    assert [n["text"] for n in shown["notes"]] == ["called her mother"]
    assert shown["contact_log"][0]["summary"] == "agreed a safe time to call"
    raw = str([r.envelope.payload for r in await case_store.read_case(case_id, decrypt=False)])
    assert "called her mother" not in raw and "safe time" not in raw


async def test_a_retried_note_or_contact_is_recorded_once_and_a_note_needs_a_key(
    intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    await caught_up(intake)
    async with intake.client(keys["partner"]) as opener:
        case_id = (await _open(opener, age_group="minor"))["case_id"]
    async with intake.client(keys["partner"], keyed=False) as partner:
        notes = f"/v1/cases/{case_id}/notes"
        # a note without a key: nothing could tell its retry from a second note
        refused = await partner.post(notes, json={"text": "left a message"})
        assert refused.status_code == 428, refused.text
        assert refused.json()["type"].endswith("/idempotency-key-required")
        assert "Idempotency-Key" in refused.json()["detail"]
        for _ in range(2):  # the same key twice: one note
            sent = await partner.post(
                notes, json={"text": "left a message"}, headers={"Idempotency-Key": "n-a"}
            )
            assert sent.status_code == 200, sent.text
        other = await partner.post(
            notes, json={"text": "left a message"}, headers={"Idempotency-Key": "n-b"}
        )
        assert other.status_code == 200, other.text
        # a contact without a key, sent twice (a retry): its time, channel and direction say
        # it is the same contact
        contact = {
            "at": ago(minutes=30),
            "channel": "phone",
            "direction": "inbound",
            "summary": "she called back",
        }
        for _ in range(2):
            logged = await partner.post(f"/v1/cases/{case_id}/contacts", json=contact)
            assert logged.status_code == 200, logged.text
        # another contact at another time is another one
        later = await partner.post(
            f"/v1/cases/{case_id}/contacts", json={**contact, "at": ago(minutes=5)}
        )
        assert later.status_code == 200, later.text
        shown = (await partner.get(f"/v1/cases/{case_id}")).json()
    assert [n["text"] for n in shown["notes"]] == ["left a message", "left a message"]
    assert len(shown["contact_log"]) == 2
    types = [r.envelope.type for r in await case_store.read_case(case_id, decrypt=False)]
    assert types.count("CaseNoteAdded") == 2 and types.count("ContactLogged") == 2


async def test_find_a_case_by_its_reference_typed_the_way_people_type_it(
    intake: RunningService, keys: dict[str, str]
) -> None:
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        opened = await _open(partner, age_group="minor")
        reference = opened["victim_access"]["reference"]
        typed = reference.lower().replace("-", " ").replace("0", "o").replace("1", "l")

        async def found() -> bool:
            page = await partner.get("/v1/cases", params={"reference": typed})
            return [i["case_id"] for i in page.json()["items"]] == [opened["case_id"]]

        await eventually(found, what="the case found by its reference as read aloud")
        bad = await partner.get("/v1/cases", params={"reference": "K7Q4"})
        assert bad.status_code == 422 and "12 letters and digits" in bad.json()["detail"]


async def test_the_case_list_filters_and_pages_with_cursors(
    intake: RunningService, make_key: MakeKey
) -> None:
    owner = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    async with intake.client(owner) as client:
        start = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        minors = [(await _open(client, age_group="minor"))["case_id"] for _ in range(3)]
        adult = (await _open(client))["case_id"]

        async def all_listed() -> bool:
            page = (await client.get("/v1/cases", params={"opened_from": start})).json()
            return len(page["items"]) == 4

        await eventually(all_listed, what="the four cases listed")
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"age_group": "minor", "limit": 2, "opened_from": start}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/cases", params=params)).json()
            seen += [i["case_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(minors) and adult not in seen and len(seen) == 3
        CaseList.model_validate(page)  # the list's plain data keeps the documented shape
        awaiting = (await client.get("/v1/cases", params={"status": "awaiting_statement"})).json()
        assert [i["case_id"] for i in awaiting["items"]] == [adult]
        later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        future = await client.get("/v1/cases", params={"updated_from": later})
        assert future.status_code == 422  # a time in the future is refused, with why


async def test_erasure_needs_a_case_worker_or_an_admin_and_a_partner_only_asks(
    intake: RunningService, keys: dict[str, str], case_store: EventStore, make_key: MakeKey
) -> None:
    admin = await make_key("centre", "admin")
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case_id = (await _open(partner, age_group="minor"))["case_id"]
        refused = await partner.post(
            f"/v1/cases/{case_id}/erase", json={"reason": "victim_request"}
        )
        assert refused.status_code == 403
        assert f"POST /v1/cases/{case_id}/erasure-request" in refused.json()["detail"]
        asked = await partner.post(f"/v1/cases/{case_id}/erasure-request", json={})
        assert asked.status_code == 200, asked.text
        assert (await partner.get(f"/v1/cases/{case_id}")).json()["status"] != "erased"
    async with intake.client(admin) as centre:
        no_reason = await centre.post(f"/v1/cases/{case_id}/erase", json={})
        assert no_reason.status_code == 422
        erased = await centre.post(f"/v1/cases/{case_id}/erase", json={"reason": "victim_request"})
        assert erased.status_code == 200, erased.text
    history = await case_store.read_case(case_id, decrypt=False)
    requested = [r for r in history if isinstance(r.event, ErasureRequested)]
    assert [r.event.requested_by for r in requested] == ["partner"]  # type: ignore[union-attr]
    [erasure] = [r for r in history if isinstance(r.event, CaseErased)]
    assert erasure.event == CaseErased(erased_by="admin", reason="victim_request")
    assert erasure.envelope.actor.role == "admin"  # who, and (above) why


async def test_the_victim_asks_for_erasure_herself_and_it_waits_its_stated_delay(
    intake: RunningService, keys: dict[str, str], case_store: EventStore
) -> None:
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        opened = await _open(partner, age_group="minor")
    access = opened["victim_access"]
    async with intake.client() as anonymous:
        wrong = await anonymous.post(
            "/v1/victim/erasure-request", json={"reference": access["reference"], "pin": "00000000"}
        )
        assert wrong.status_code == 401
        asked = await anonymous.post(
            "/v1/victim/erasure-request",
            json={"reference": access["reference"], "pin": access["pin"]},
        )
    assert asked.status_code == 200, asked.text
    due = datetime.fromisoformat(asked.json()["erasure_takes_effect_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < due - datetime.now(UTC) <= timedelta(days=7)
    assert asked.json()["status"] != "erased"  # not before the delay or her case worker
    async with intake.client() as anonymous:
        status = await anonymous.post(
            "/v1/victim/status", json={"reference": access["reference"], "pin": access["pin"]}
        )
    # her page says it in words, as for every step
    assert status.json()["steps"][-1]["what"] == "erasure of your personal data was requested"
    async with intake.client(keys["caseworker"]) as centre:
        shown = (await centre.get(f"/v1/cases/{opened['case_id']}")).json()
    assert shown["erasure_request"]["requested_by"] == "victim"
    [event] = [
        r.event
        for r in await case_store.read_case(opened["case_id"], decrypt=False)
        if isinstance(r.event, ErasureRequested)
    ]
    assert event.requested_by == "victim"


FIELDS = (
    "channels",
    "pseudonym",
    "contact",
    "locations[].url",
    "offender",
    "police_report.station",
    "notes",
    "contact_log",
    "legal",
)
MATRIX = {
    # role -> the fields it reads (decision 35's table)
    "partner": {
        "channels",
        "pseudonym",
        "contact",
        "locations[].url",
        "police_report.station",
        "notes",
        "contact_log",
        "legal",
    },
    "caseworker": set(FIELDS),
    "admin": set(),
    "admin+reveal": set(FIELDS),
}


def _value(detail: dict[str, Any], field: str) -> Any:
    if field == "locations[].url":
        return detail["locations"][0]["url"]
    if field == "police_report.station":
        return detail["police_report"]["station"]
    return detail[field]


async def test_each_role_reads_the_fields_its_job_needs(
    intake: RunningService, keys: dict[str, str], make_key: MakeKey
) -> None:
    admin = await make_key("centre", "admin")
    await caught_up(intake)
    async with (
        intake.client(keys["partner"]) as partner,
        intake.client(keys["caseworker"]) as centre,
    ):
        case_id = (await _open(partner, age_group="minor"))["case_id"]
        for route, body in [
            ("locations", {"url": "https://f.example/1", "platform": "F", "channel_kind": "forum"}),
            ("offender", {"known": False, "account_ids": ["@x"]}),
            ("police-report", {"station": "Station A"}),
            ("notes", {"text": "note"}),
            ("contacts", {"at": ago(minutes=1), "channel": "phone", "direction": "inbound"}),
        ]:
            response = await partner.post(
                f"/v1/cases/{case_id}/{route}",
                json=body,
                headers={"Idempotency-Key": f"{route}-{case_id}"},
            )
            assert response.status_code == 200, (route, response.text)
        views = {
            "partner": (await partner.get(f"/v1/cases/{case_id}")).json(),
            "caseworker": (await centre.get(f"/v1/cases/{case_id}")).json(),
        }
    async with intake.client(admin) as administrator:
        views["admin"] = (await administrator.get(f"/v1/cases/{case_id}")).json()
        views["admin+reveal"] = (
            await administrator.get(
                f"/v1/cases/{case_id}", params={"reveal": "personal", "reason": "safeguarding"}
            )
        ).json()
    for role, seen in MATRIX.items():
        for field in FIELDS:
            value = _value(views[role], field)
            assert (value not in (None, [])) == (field in seen), (role, field, value)
