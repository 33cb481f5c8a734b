# ruff: noqa: F811 (the tests take the fixtures imported from the hashmatch exchange's tests)
"""Case work end to end (issue 12, decision 35): intake and hashmatch as their own processes,
real NATS and SQLite, driven over HTTP by a partner NGO and a platform."""

from __future__ import annotations

from typing import Any

import httpx
from ncii_contracts.intake import CaseReopened, ConsentsChanged, SpreadStatusChanged
from ncii_events.store import EventStore

from tests.e2e.conftest import RunningService, caught_up
from tests.e2e.test_hashmatch_exchange import (  # noqa: F401 (fixtures: hashmatch's process, keys, reader)
    Hashmatch,
    ago,
    case_store,
    hashmatch,
    keys,
    lookup,
    random_pdq,
)
from tests.e2e.test_intake_api import case_body
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

        assert (await partner.post(f"/v1/cases/{case_id}/erase")).status_code == 200
        erased = len(await case_store.read_case(case_id, decrypt=False))
        refused = await partner.post(f"/v1/cases/{case_id}/consents", json={"referral": True})
        assert refused.status_code == 409, refused.text
        assert "erased" in refused.json()["detail"]
        assert len(await case_store.read_case(case_id, decrypt=False)) == erased
