# ruff: noqa: F811 (the tests take the fixtures imported from the hashmatch exchange's tests)
"""Hashes by programme (issue 12, decision 39): a minor's hashes go to her partner's
child-protection bank, an adult's to its adults' bank; a platform's look-ups match, and its
delta feed lists, only the programmes it is subscribed to, and nothing it receives hints that
another programme's bank exists. Hashmatch as its own process, real NATS and SQLite."""

from __future__ import annotations

import uuid
from typing import Any

from nats.aio.client import Client as NATS
from ncii_cli.main import app as cli
from ncii_contracts.hashmatch import HashesBanked, PlatformProgrammesChanged
from ncii_contracts.intake import AgeGroup, HashesSubmitted
from ncii_events.store import NEW, AggregateRef, EventStore
from ncii_events.stream import REFERENCE
from typer.testing import CliRunner

from tests.e2e.test_hashmatch_exchange import (  # noqa: F401 (fixtures: hashmatch's process, keys, reader)
    PARTNER,
    Hashmatch,
    MakeKey,
    ago,
    feed_end,
    feed_read,
    hashmatch,
    keys,
    lookup,
    pdq,
    random_pdq,
)
from tests.support.events import REGISTRY


async def _submit(store: EventStore, organisation: str, age_group: AgeGroup, value: str) -> str:
    """A case's HashesSubmitted as intake writes it (its age group decides the programme)."""
    case_id = str(uuid.uuid4())
    await store.append(
        AggregateRef(case_id, "case", case_id),
        [
            HashesSubmitted(
                submission_id=str(uuid.uuid4()),
                organisation=organisation,
                age_group=age_group,
                hashes=[pdq(value)],
            )
        ],
        expected=NEW,
        cause=PARTNER,
    )
    return case_id


async def _subscribe(
    hashmatch: Hashmatch, caseworker_key: str, platform_org: str, programmes: list[str]
) -> dict[str, Any]:
    async with hashmatch.client(caseworker_key) as caseworker:
        response = await caseworker.put(
            f"/v1/platforms/{platform_org}/programmes", json={"programmes": programmes}
        )
    assert response.status_code == 200, response.text
    await hashmatch.caught_up()
    return dict(response.json())


async def _platform(make_key: MakeKey) -> tuple[str, str]:
    org = f"platform-{uuid.uuid4().hex[:6]}"
    return org, await make_key(org, "platform")


def _values(items: list[dict[str, Any]]) -> set[str]:
    return {str(i["value"]) for i in items if i["change"] == "add"}


async def test_a_minors_hashes_go_to_the_child_protection_bank_and_an_adults_to_the_adults_bank(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    org = f"ngo-{uuid.uuid4().hex[:6]}"
    minor, adult = random_pdq(), random_pdq()
    minor_case = await _submit(store, org, "minor", minor)
    adult_case = await _submit(store, org, "adult", adult)
    await hashmatch.caught_up()
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        banks = {b["name"]: b for b in (await caseworker.get("/v1/banks")).json()["items"]}
    slug = org.upper().replace("-", "_")
    child_bank, adults_bank = banks[f"ORG_{slug}__CHILD"], banks[f"ORG_{slug}"]
    assert (child_bank["programme"], child_bank["live_hashes"]) == ("child_protection", 1)
    assert (adults_bank["programme"], adults_bank["live_hashes"]) == ("adults", 1)
    assert child_bank["public_id"] != adults_bank["public_id"]
    # what the bank recorded on each case says which bank took its hashes
    banked = {}
    for case_id in (minor_case, adult_case):
        events = [r.event for r in await store.read_case(case_id, decrypt=False)]
        banked[case_id] = [e.bank for e in events if isinstance(e, HashesBanked)]
    assert banked == {minor_case: [f"ORG_{slug}__CHILD"], adult_case: [f"ORG_{slug}"]}


async def test_a_platform_subscribed_to_adults_only_neither_matches_nor_sees_a_minors_hash(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore, make_key: MakeKey
) -> None:
    adults_org, adults_key = await _platform(make_key)
    both_org, both_key = await _platform(make_key)
    await _subscribe(hashmatch, keys["caseworker"], adults_org, ["adults"])
    await _subscribe(hashmatch, keys["caseworker"], both_org, ["child_protection", "adults"])
    org = f"ngo-{uuid.uuid4().hex[:6]}"
    minor, adult = random_pdq(), random_pdq()
    await _submit(store, org, "minor", minor)
    await _submit(store, org, "adult", adult)
    await hashmatch.caught_up()
    items = [{"algorithm": "pdq", "value": v} for v in (minor, adult)]
    async with hashmatch.client(adults_key) as adults_only:
        only = await lookup(adults_only, *items)
        only_feed, _ = await feed_read(adults_only, None, limit=1000)
        sighting = await adults_only.post(
            "/v1/sightings",
            json={"hash": items[0], "url": "https://host.example/x", "seen_at": ago(minutes=1)},
        )
    async with hashmatch.client(both_key) as both:
        full = await lookup(both, *items)
        full_feed, _ = await feed_read(both, None, limit=1000)
    # adults only: the minor's hash matches nothing and is not in the feed, and a sighting of
    # it is the same 422 as a hash that is in no bank
    assert [len(m) for m in only] == [0, 1]
    assert minor not in _values(only_feed) and adult in _values(only_feed)
    assert sighting.status_code == 422 and sighting.json()["type"].endswith("/no-current-match")
    # subscribed to both: both match, each from its programme's bank
    assert [len(m) for m in full] == [1, 1]
    assert {minor, adult} <= _values(full_feed)
    child_bank_id = full[0][0]["bank"]
    assert child_bank_id != full[1][0]["bank"]
    # nothing the adults-only platform received names the child-protection bank
    assert child_bank_id not in {i["bank"] for i in only_feed} | {m["bank"] for m in only[1]}


async def test_changing_a_subscription_changes_matching_and_starts_the_feed_again(
    hashmatch: Hashmatch,
    keys: dict[str, str],
    store: EventStore,
    make_key: MakeKey,
    nc: NATS,
) -> None:
    platform_org, platform_key = await _platform(make_key)
    org = f"ngo-{uuid.uuid4().hex[:6]}"
    minor, adult = random_pdq(), random_pdq()
    await _submit(store, org, "minor", minor)
    await _submit(store, org, "adult", adult)
    await hashmatch.caught_up()
    items = [{"algorithm": "pdq", "value": v} for v in (minor, adult)]
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        default = (await caseworker.get(f"/v1/platforms/{platform_org}/programmes")).json()
    # never subscribed: the adults' programme only
    assert default == {"platform": platform_org, "programmes": ["adults"], "recorded": False}
    async with hashmatch.client(platform_key) as platform:
        assert [len(m) for m in await lookup(platform, *items)] == [0, 1]
        cursor = await feed_end(platform)
        # subscribing to both: the minor's hash matches, and the feed starts again with it
        answer = await _subscribe(
            hashmatch, keys["caseworker"], platform_org, ["adults", "child_protection"]
        )
        assert answer["programmes"] == ["adults", "child_protection"]
        assert [len(m) for m in await lookup(platform, *items)] == [1, 1]
        page = (await platform.get("/v1/hashes/changes", params={"cursor": cursor})).json()
        assert page["reset"] is True
        again, cursor = await feed_read(platform, cursor, limit=1000)
        assert {minor, adult} <= _values(again)
        # the same subscription again: no reset, nothing new
        await _subscribe(
            hashmatch, keys["caseworker"], platform_org, ["child_protection", "adults"]
        )
        page = (await platform.get("/v1/hashes/changes", params={"cursor": cursor})).json()
        assert (page["reset"], page["items"]) == (False, [])
        # no programme at all: nothing matches, and the list starts again empty of case hashes
        await _subscribe(hashmatch, keys["caseworker"], platform_org, [])
        assert [len(m) for m in await lookup(platform, *items)] == [0, 0]
        page = (await platform.get("/v1/hashes/changes", params={"cursor": cursor})).json()
        emptied, _ = await feed_read(platform, cursor, limit=1000)
    assert page["reset"] is True and not ({minor, adult} & _values(emptied))
    # every change is an event on the reference stream; saying the same again is none
    ref = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE)
    changes = [
        r.event.programmes
        for r in await ref.read_from(1, subject=f"{REFERENCE.prefix}.platform_programmes.>")
        if isinstance(r.event, PlatformProgrammesChanged) and r.event.platform == platform_org
    ]
    assert changes == [["adults", "child_protection"], []]


async def test_only_staff_subscribe_platforms_and_a_banks_programme_cannot_change(
    hashmatch: Hashmatch, keys: dict[str, str], make_key: MakeKey
) -> None:
    platform_org, platform_key = await _platform(make_key)
    await _subscribe(hashmatch, keys["caseworker"], platform_org, ["adults"])
    async with hashmatch.client(platform_key) as platform:
        refused = await platform.put(
            f"/v1/platforms/{platform_org}/programmes", json={"programmes": ["child_protection"]}
        )
        assert refused.status_code == 403
    bank = f"LIST_{uuid.uuid4().hex[:8].upper()}"
    value = random_pdq()
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        unknown = await caseworker.put(
            f"/v1/platforms/{platform_org}/programmes", json={"programmes": ["everyone"]}
        )
        assert unknown.status_code == 422
        assert [e["field"] for e in unknown.json()["errors"]] == ["programmes.0"]
        made = await caseworker.put(f"/v1/banks/{bank}", json={"programme": "child_protection"})
        assert made.status_code == 200, made.text
        assert made.json()["programme"] == "child_protection"
        imported = await caseworker.post(f"/v1/banks/{bank}/import", content=f"pdq {value}")
        assert imported.status_code == 200, imported.text
        # settings without a programme keep the bank's; another programme is refused
        kept = await caseworker.put(f"/v1/banks/{bank}", json={"pdq_threshold": 20})
        assert (kept.status_code, kept.json()["programme"]) == (200, "child_protection")
        moved = await caseworker.put(f"/v1/banks/{bank}", json={"programme": "adults"})
        assert moved.status_code == 409, moved.text
        assert moved.json()["type"].endswith("/bank-programme-fixed")
        case_bank = await caseworker.put(
            "/v1/banks/ORG_SOMEONE__CHILD", json={"programme": "adults"}
        )
        assert case_bank.status_code == 409
    await hashmatch.caught_up()
    async with hashmatch.client(platform_key) as platform:
        assert [len(m) for m in await lookup(platform, {"algorithm": "pdq", "value": value})] == [0]
    _never_org, never_key = await _platform(make_key)
    await hashmatch.caught_up()
    async with hashmatch.client(never_key) as never:
        # a platform never subscribed has the adults' programme only
        assert [len(m) for m in await lookup(never, {"algorithm": "pdq", "value": value})] == [0]


async def test_the_cli_shows_and_sets_a_platforms_programmes(
    hashmatch: Hashmatch, keys: dict[str, str]
) -> None:
    platform_org = f"platform-{uuid.uuid4().hex[:6]}"
    common = ["--hashmatch-url", hashmatch.url, "--key", keys["caseworker"]]
    runner = CliRunner()
    shown = runner.invoke(cli, ["platforms", "programmes", platform_org, *common])
    assert shown.exit_code == 0, shown.output
    assert shown.output.strip() == f"{platform_org}: adults (the default: never set)"
    both = ["--programme", "child_protection", "--programme", "adults"]
    changed = runner.invoke(cli, ["platforms", "programmes", platform_org, *both, *common])
    assert changed.exit_code == 0, changed.output
    assert changed.output.strip() == f"{platform_org}: adults, child_protection"
    await hashmatch.caught_up()
    shown = runner.invoke(cli, ["platforms", "programmes", platform_org, *common])
    assert shown.output.strip() == f"{platform_org}: adults, child_protection"
    wrong = runner.invoke(cli, ["platforms", "programmes", platform_org, "--programme", "kids"])
    assert wrong.exit_code == 2
