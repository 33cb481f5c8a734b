"""Hashmatch end to end: the service as its own process (and intake as its own, where the hashes
come from a real case), real NATS and SQLite, driven over HTTP as a platform, a partner NGO and
the centre's case workers would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError
from ncii_cli.hasher import hash_file
from ncii_contracts.hashmatch import (
    HashesBanked,
    HashesWithdrawn,
    MatchFeedbackReceived,
    MatchFound,
)
from ncii_contracts.intake import CaseWithdrawn, HashesSubmitted, SubmittedHash
from ncii_events.crypto import MasterKey
from ncii_events.envelope import Actor
from ncii_events.http import encode_cursor
from ncii_events.keys import NatsCaseKeys
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, Version
from ncii_events.stream import REFERENCE, REFERENCE_CASE
from ncii_hashmatch.domain import case_bank_name

from tests.conftest import ROOT, SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_intake_api import case_body
from tests.support.events import REGISTRY

MakeKey = Callable[[str, str], Awaitable[str]]
CONFORMANCE = ROOT.parent / "shared" / "pdq-conformance" / "images"
RNG = np.random.default_rng()


def random_pdq() -> str:
    return RNG.integers(0, 256, size=32, dtype=np.uint8).tobytes().hex()


def random_md5() -> str:
    return RNG.integers(0, 256, size=16, dtype=np.uint8).tobytes().hex()


def flipped(value: str, bits: int) -> str:
    n = int(value, 16)
    for b in RNG.choice(256, size=bits, replace=False):
        n ^= 1 << int(b)
    return f"{n:064x}"


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Hashmatch:
    """The hashmatch process; ``restart`` keeps its database."""

    #: The feed releases every change applied so far, mixed (its windows are tested on their
    #: own, with a clock, in tests/integration/test_hashmatch_bank.py).
    ENV: ClassVar[dict[str, str]] = {"NCII_HASHMATCH_FEED_WINDOW_S": "0"}

    def __init__(self, nats: SuiteNats, workdir: Path, master_key_file: Path) -> None:
        self.args = ("hashmatch", nats, workdir, master_key_file)
        self.service: RunningService = start_service(*self.args, extra_env=self.ENV)

    @property
    def url(self) -> str:
        return self.service.url

    def client(self, key: str | None = None, *, keyed: bool = True) -> httpx.AsyncClient:
        return self.service.client(key, keyed=keyed)

    async def caught_up(self) -> None:
        await caught_up(self.service)

    def restart(self) -> None:
        stop_service(self.service)
        self.service = start_service(*self.args, extra_env=self.ENV)

    def stop(self) -> None:
        stop_service(self.service)


@pytest.fixture(scope="module")
def hashmatch(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[Hashmatch]:
    service = Hashmatch(nats_server, tmp_path_factory.mktemp("hashmatch"), master_key_file)
    yield service
    service.stop()


@pytest.fixture(scope="module")
async def keys(make_key: MakeKey, hashmatch: Hashmatch) -> dict[str, str]:
    platforms = {
        name: f"platform-{uuid.uuid4().hex[:6]}" for name in ("platform", "other_platform")
    }
    made = {
        **{name: await make_key(org, "platform") for name, org in platforms.items()},
        "caseworker": await make_key("centre", "caseworker"),
        "partner": await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner"),
    }
    await hashmatch.caught_up()
    # these platforms receive both programmes: the tests bank minors' hashes as well as
    # adults' (a platform never subscribed gets the adults' only: decision 39)
    async with hashmatch.client(made["caseworker"]) as caseworker:
        for org in platforms.values():
            response = await caseworker.put(
                f"/v1/platforms/{org}/programmes",
                json={"programmes": ["adults", "child_protection"]},
            )
            assert response.status_code == 200, response.text
    await hashmatch.caught_up()
    return made


@pytest.fixture(scope="module")
async def case_store(nc: NATS, master_key_file: Path) -> AsyncIterator[EventStore]:
    """Reads the log with the services' master key, so personal fields decrypt."""
    case_keys = NatsCaseKeys(nc, MasterKey.load_or_create(master_key_file))
    yield EventStore(nc, case_keys, registry=REGISTRY)


PARTNER = Cause(
    actor=Actor(organisation="ngo-e2e", principal="p-e2e", role="partner"),
    correlation_id="corr-e2e",
    causation_id="cause-e2e",
)


async def bank_case(
    store: EventStore, *hashes: SubmittedHash, organisation: str = "ngo-e2e"
) -> tuple[str, Version]:
    """Append a HashesSubmitted as intake does (for cases whose other facts do not matter)."""
    case_id = str(uuid.uuid4())
    written = await store.append(
        AggregateRef(case_id, "case", case_id),
        [
            HashesSubmitted(
                submission_id=str(uuid.uuid4()),
                organisation=organisation,
                age_group="adult",
                hashes=list(hashes),
            )
        ],
        expected=NEW,
        cause=PARTNER,
    )
    return case_id, Version.of(written)


def pdq(value: str, dihedral: list[str] | None = None) -> SubmittedHash:
    return SubmittedHash(
        algorithm="pdq", value=value, media="image", quality=100, dihedral=dihedral
    )


async def lookup(client: httpx.AsyncClient, *items: dict[str, Any]) -> list[list[dict[str, Any]]]:
    response = await client.post("/v1/lookups", json={"items": list(items)})
    assert response.status_code == 200, response.text
    return [item["matches"] for item in response.json()["items"]]


async def feed_end(client: httpx.AsyncClient) -> str:
    """A cursor at the end of the delta feed as it stands."""
    cursor: str | None = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/hashes/changes", params=params)).json()
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return str(cursor)


async def feed_read(
    client: httpx.AsyncClient, cursor: str | None, limit: int = 3
) -> tuple[list[dict[str, Any]], str]:
    """Every item after ``cursor`` (None: from the start), and the cursor after them."""
    items: list[dict[str, Any]] = []
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/hashes/changes", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items, str(cursor)


async def feed_since(
    client: httpx.AsyncClient, cursor: str, limit: int = 3
) -> list[dict[str, Any]]:
    return (await feed_read(client, cursor, limit))[0]


# -- matching --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "position",
    [{"c": 2**70, "r": 0}, {"c": 0, "r": -(2**63) - 1}, {"c": "1\x00", "r": 0}],
)
async def test_a_feed_cursor_beyond_64_bits_or_with_nul_is_a_422_and_the_connection_lives_on(
    hashmatch: Hashmatch, keys: dict[str, str], position: dict[str, Any]
) -> None:
    # was a 500 (OverflowError on SQLite, DBAPIError on PostgreSQL) that dropped the connection
    async with hashmatch.client(keys["platform"]) as client:
        cursor = encode_cursor(position)
        response = await client.get("/v1/hashes/changes", params={"cursor": cursor})
        assert response.status_code == 422, response.text
        assert response.json()["title"] == "Invalid cursor"
        assert (await client.get("/v1/hashes/changes")).status_code == 200


async def test_distance_31_matches_and_32_does_not_and_the_answer_holds_nothing_personal(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    banked = random_pdq()
    case_id, _ = await bank_case(store, pdq(banked))
    await hashmatch.caught_up()
    async with hashmatch.client(keys["platform"]) as client:
        at31, at32 = flipped(banked, 31), flipped(banked, 32)
        response = await client.post(
            "/v1/lookups",
            json={
                "items": [
                    {"algorithm": "pdq", "value": at31},
                    {"algorithm": "pdq", "value": at32},
                    {"algorithm": "pdq", "value": banked, "quality": 30},
                ]
            },
        )
    assert response.status_code == 200
    items = response.json()["items"]
    assert [m["distance"] for m in items[0]["matches"]] == [31]
    assert items[1]["matches"] == []
    assert (items[2]["matches"], items[2]["skipped"]) == ([], "low_quality")
    match = items[0]["matches"][0]
    assert match["bank"].startswith("b_") and match["match_id"].startswith("m_")
    for secret in (case_id, "ngo-e2e", "NGO_E2E", "ORG_"):
        assert secret not in response.text


async def test_each_rotated_or_flipped_bridge_image_matches_the_original_only_with_rotations_on(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    if not CONFORMANCE.is_dir():
        pytest.skip(f"Meta's conformance images not found at {CONFORMANCE}")
    images = sorted(CONFORMANCE.glob("reg-test-input__dih__bridge-*.jpg"))
    assert len(images) == 8
    hashes = [hash_file(p, dihedral=True).pdq for p in images]
    assert all(h is not None and h.dihedral for h in hashes)
    original = hashes[0]
    assert original is not None and original.value is not None
    organisation = f"ngo-bridge-{uuid.uuid4().hex[:6]}"
    await bank_case(store, pdq(original.value, original.dihedral), organisation=organisation)
    await hashmatch.caught_up()

    def far(h: Any) -> bool:
        return bin(int(h.value, 16) ^ int(original.value, 16)).count("1") > 31

    async with hashmatch.client(keys["caseworker"]) as caseworker:
        bank = case_bank_name(organisation)
        items = (await caseworker.get("/v1/banks")).json()["items"]
        ours = next(b["public_id"] for b in items if b["name"] == bank)

    def in_our_bank(matches: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        # Other tests of the session may bank the same conformance images (intake's hash
        # submission does): only this test's bank says what this test did.
        return [[m for m in found if m["bank"] == ours] for found in matches]

    async with hashmatch.client(keys["platform"]) as platform:
        single = in_our_bank(
            await lookup(platform, *({"algorithm": "pdq", "value": h.value} for h in hashes))
        )
        eight = in_our_bank(
            await lookup(
                platform,
                *({"algorithm": "pdq", "value": h.value, "dihedral": h.dihedral} for h in hashes),
            )
        )
        for image, one, all8, h in zip(images, single, eight, hashes, strict=True):
            assert len(one) == 1, f"{image.name}: its single hash does not match"
            assert len(all8) == 1, f"{image.name}: its 8 hashes do not match"
            assert one[0]["distance"] <= 31
            assert one[0]["rotated"] == far(h)
        rotated = [h for h in hashes if far(h)]
        assert len(rotated) == 7  # every rotation/flip is far from the original, as plain hashes

        async with hashmatch.client(keys["caseworker"]) as caseworker:
            response = await caseworker.put(f"/v1/banks/{bank}", json={"match_dihedral": False})
            assert response.status_code == 200, response.text
        await hashmatch.caught_up()
        single = in_our_bank(
            await lookup(platform, *({"algorithm": "pdq", "value": h.value} for h in hashes))
        )
        eight = in_our_bank(
            await lookup(
                platform,
                *({"algorithm": "pdq", "value": h.value, "dihedral": h.dihedral} for h in hashes),
            )
        )
    for h, one, all8 in zip(hashes, single, eight, strict=True):
        expected = 0 if far(h) else 1
        assert (len(one), len(all8)) == (expected, expected)


async def test_a_bank_threshold_change_reaches_matching_at_once(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    organisation = f"ngo-threshold-{uuid.uuid4().hex[:6]}"
    banked = random_pdq()
    await bank_case(store, pdq(banked), organisation=organisation)
    await hashmatch.caught_up()
    near = flipped(banked, 25)
    async with hashmatch.client(keys["platform"]) as platform:
        assert len((await lookup(platform, {"algorithm": "pdq", "value": near}))[0]) == 1
        async with hashmatch.client(keys["caseworker"]) as caseworker:
            name = f"ORG_{organisation.upper().replace('-', '_')}"
            assert (
                await caseworker.put(f"/v1/banks/{name}", json={"pdq_threshold": 20})
            ).status_code == 200
            assert (
                await caseworker.put(f"/v1/banks/{name}", json={"pdq_threshold": 65})
            ).status_code == 422
        await hashmatch.caught_up()
        assert (await lookup(platform, {"algorithm": "pdq", "value": near}))[0] == []
        assert (
            len((await lookup(platform, {"algorithm": "pdq", "value": flipped(banked, 20)}))[0])
            == 1
        )


async def test_a_video_matches_by_vpdq_frames_over_http_with_the_shares_of_frames_matched(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    frames = [random_pdq() for _ in range(5)]
    await bank_case(store, SubmittedHash(algorithm="vpdq", value="", media="video", frames=frames))
    await hashmatch.caught_up()
    excerpt = [
        {"value": flipped(f, 9), "quality": 80, "timestamp": i} for i, f in enumerate(frames[:4])
    ]
    blurry = [{"value": random_pdq(), "quality": 20}]  # ignored: below quality 50
    async with hashmatch.client(keys["platform"]) as platform:
        [[match], none] = await lookup(
            platform,
            {"algorithm": "vpdq", "frames": excerpt + blurry},
            {"algorithm": "vpdq", "frames": [{"value": random_pdq(), "quality": 90}]},
        )
    assert none == []
    assert (match["algorithm"], match["query_match_percent"], match["compared_match_percent"]) == (
        "vpdq",
        100.0,
        80.0,
    )


# -- from a case to a sighting, and withdrawal ----------------------------------------------------


async def test_a_platforms_sighting_of_a_victims_hash_records_match_found_in_the_case_log(
    hashmatch: Hashmatch,
    intake: RunningService,
    keys: dict[str, str],
    case_store: EventStore,
) -> None:
    value = random_pdq()
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        case = (await partner.post("/v1/cases", json=case_body())).json()
        case_id = case["case_id"]
        response = await partner.post(
            f"/v1/cases/{case_id}/non-consent",
            json={"stated_at": ago(minutes=5), "method": "written"},
        )
        assert response.status_code == 200, response.text
        hashes = {"hashes": [{"algorithm": "pdq", "value": value, "quality": 90, "media": "image"}]}
        response = await partner.post(f"/v1/cases/{case_id}/hashes", json=hashes)
        assert response.status_code == 200, response.text
    await hashmatch.caught_up()

    url = "https://videos.example.com/watch/abc123"
    sighting = {
        "hash": {"algorithm": "pdq", "value": flipped(value, 12)},
        "url": url,
        "seen_at": ago(minutes=1),
    }
    async with hashmatch.client(keys["platform"]) as platform:
        first = await platform.post("/v1/sightings", json=sighting)
        assert first.status_code == 201, first.text
        again = await platform.post("/v1/sightings", json=sighting)
        assert again.status_code == 201
    assert first.json() == again.json()
    assert [m["distance"] for m in first.json()["matches"]] == [12]
    assert case_id not in first.text and url not in first.text
    await hashmatch.caught_up()

    history = await case_store.read_case(case_id)
    found = [r for r in history if isinstance(r.event, MatchFound)]
    assert len(found) == 1  # the same sighting twice is recorded once
    event = found[0].event
    assert isinstance(event, MatchFound)
    assert event.url == url and event.distance == 12 and event.algorithm == "pdq"
    assert event.match_id == first.json()["matches"][0]["match_id"]
    assert found[0].envelope.actor.role == "platform"
    assert found[0].envelope.aggregate == "match"
    raw = await case_store.read_case(case_id, decrypt=False)
    assert url not in str([r.envelope.payload for r in raw])  # encrypted in the log
    types = [r.type for r in history]
    assert types.index("HashesSubmitted") < types.index("HashesBanked") < types.index("MatchFound")


async def test_withdrawal_removes_the_hashes_from_matching_and_the_feed_and_sightings_fail(
    hashmatch: Hashmatch,
    intake: RunningService,
    keys: dict[str, str],
    case_store: EventStore,
) -> None:
    value, md5 = random_pdq(), random_md5()
    async with hashmatch.client(keys["platform"]) as platform:
        start = await feed_end(platform)
    async with intake.client(keys["partner"]) as partner:
        case_id = (await partner.post("/v1/cases", json=case_body(age_group="minor"))).json()[
            "case_id"
        ]
        hashes = {
            "hashes": [
                {"algorithm": "pdq", "value": value, "quality": 90, "media": "image"},
                {"algorithm": "md5", "value": md5, "media": "video"},
            ]
        }
        assert (await partner.post(f"/v1/cases/{case_id}/hashes", json=hashes)).status_code == 200
        await hashmatch.caught_up()
        async with hashmatch.client(keys["platform"]) as platform:
            added, after_add = await feed_read(platform, start)
            found = await lookup(
                platform, {"algorithm": "pdq", "value": value}, {"algorithm": "md5", "value": md5}
            )
            assert [len(m) for m in found] == [1, 1]
            assert (await partner.post(f"/v1/cases/{case_id}/withdraw")).status_code == 200
            await hashmatch.caught_up()
            gone = await lookup(
                platform, {"algorithm": "pdq", "value": value}, {"algorithm": "md5", "value": md5}
            )
            assert gone == [[], []]
            sighting = {
                "hash": {"algorithm": "pdq", "value": value},
                "url": "https://example.com/x",
                "seen_at": ago(minutes=1),
            }
            response = await platform.post("/v1/sightings", json=sighting)
            assert response.status_code == 422
            assert response.json()["type"].endswith("no-current-match")
            removed = await feed_since(platform, after_add)
            fresh = await feed_since(platform, start)
    mine = {c["id"]: (c["algorithm"], c["value"]) for c in added if c["value"] in (value, md5)}
    assert sorted(mine.values()) == sorted([("pdq", value), ("md5", md5)])
    # the removals name the ids the additions had, never the hashes
    assert sorted((c["change"], c["id"], c["value"]) for c in removed if c["id"] in mine) == sorted(
        ("remove", i, None) for i in mine
    )
    # a platform reading after the withdrawal never gets the withdrawn hashes
    assert not [c for c in fresh if c["value"] in (value, md5)]
    history = await case_store.read_case(case_id)
    withdrawn = [r.event for r in history if isinstance(r.event, HashesWithdrawn)]
    assert len(withdrawn) == 1 and withdrawn[0].reason == "case_withdrawn"
    assert len(withdrawn[0].entry_keys) == 2
    assert any(isinstance(r.event, HashesBanked) for r in history)


# -- the negative bank -----------------------------------------------------------------------------


async def test_a_confirmed_false_positive_suppresses_lookups_of_that_content_not_of_the_original(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    banked = random_pdq()
    lookalike = flipped(banked, 20)  # e.g. a similar but different picture
    await bank_case(store, pdq(banked))
    await hashmatch.caught_up()
    async with hashmatch.client(keys["platform"]) as platform:
        [[match]] = await lookup(platform, {"algorithm": "pdq", "value": lookalike})
        match_id = match["match_id"]
        response = await platform.post(
            f"/v1/matches/{match_id}/feedback",
            json={"verdict": "false_positive", "content": {"algorithm": "pdq", "value": lookalike}},
        )
        assert response.status_code == 200, response.text
        await hashmatch.caught_up()
        async with hashmatch.client(keys["caseworker"]) as caseworker:
            listed = (await caseworker.get("/v1/false-positives")).json()["items"]
            [report] = [m for m in listed if m["match_id"] == match_id]
            assert report["reported_content"] == {
                "algorithm": "pdq",
                "compared_with_banked_hash": True,
                "equals_banked_hash": False,
                "distance": 20,
                "match_threshold": 31,
                "within_match_threshold": True,
            }
            confirm = {"target": "reported_content", "near_banked_hash_reviewed": True}
            unreviewed = await caseworker.post(
                f"/v1/false-positives/{match_id}/confirm", json={"target": "reported_content"}
            )
            assert unreviewed.status_code == 409, unreviewed.text
            assert "PDQ distance 20" in unreviewed.json()["detail"]
            response = await caseworker.post(
                f"/v1/false-positives/{match_id}/confirm", json=confirm
            )
            assert response.status_code == 200, response.text
            again = await caseworker.post(f"/v1/false-positives/{match_id}/confirm", json=confirm)
            assert again.json()["negative_id"] == response.json()["negative_id"]
            await hashmatch.caught_up()
            listed = (await caseworker.get("/v1/false-positives")).json()["items"]
            assert match_id not in [m["match_id"] for m in listed]
        results = await lookup(
            platform,
            {"algorithm": "pdq", "value": lookalike},
            {"algorithm": "pdq", "value": flipped(lookalike, 3)},
            {"algorithm": "pdq", "value": banked},
            {"algorithm": "pdq", "value": flipped(banked, 5)},
        )
    assert [len(r) for r in results] == [0, 0, 1, 1]


@pytest.mark.parametrize("algorithm", ["pdq", "md5"])
async def test_a_false_positive_report_whose_content_is_the_victims_banked_hash_is_refused(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore, algorithm: str
) -> None:
    """F10: a platform reports the victim's own hash as its "false positive" content. It is
    refused at submission, nothing reaches the staff list, and the victim's hash still matches
    for every platform."""
    banked = random_pdq() if algorithm == "pdq" else random_md5()
    hashed = (
        pdq(banked)
        if algorithm == "pdq"
        else SubmittedHash(algorithm="md5", value=banked, media="image")
    )
    await bank_case(store, hashed)
    await hashmatch.caught_up()
    item = {"algorithm": algorithm, "value": banked}
    async with hashmatch.client(keys["platform"]) as platform:
        [[match]] = await lookup(platform, item)
        response = await platform.post(
            f"/v1/matches/{match['match_id']}/feedback",
            json={"verdict": "false_positive", "content": {**item, "value": banked.upper()}},
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("reported-content-is-banked-hash")
        assert "victim's image" in response.json()["detail"]
        await hashmatch.caught_up()
        async with hashmatch.client(keys["caseworker"]) as caseworker:
            listed = (await caseworker.get("/v1/false-positives")).json()["items"]
            assert match["match_id"] not in [m["match_id"] for m in listed]
            refused = await caseworker.post(
                f"/v1/false-positives/{match['match_id']}/confirm",
                json={"target": "reported_content", "near_banked_hash_reviewed": True},
            )
            assert refused.status_code == 409  # no content on record: nothing to confirm
        assert len((await lookup(platform, item))[0]) == 1
    async with hashmatch.client(keys["other_platform"]) as other:
        assert len((await lookup(other, item))[0]) == 1


async def test_confirming_a_banked_hash_as_false_positive_takes_it_out_of_matching_and_the_feed(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore, case_store: EventStore
) -> None:
    banked = random_pdq()
    case_id, _ = await bank_case(store, pdq(banked))
    await hashmatch.caught_up()
    async with hashmatch.client(keys["platform"]) as platform:
        start = await feed_end(platform)
        [[match]] = await lookup(platform, {"algorithm": "pdq", "value": banked})
        response = await platform.post(
            f"/v1/matches/{match['match_id']}/feedback", json={"verdict": "false_positive"}
        )
        assert response.status_code == 200
        async with hashmatch.client(keys["caseworker"]) as caseworker:
            response = await caseworker.post(f"/v1/false-positives/{match['match_id']}/confirm")
            assert response.status_code == 200, response.text
        await hashmatch.caught_up()
        assert (await lookup(platform, {"algorithm": "pdq", "value": banked}))[0] == []
        assert (await lookup(platform, {"algorithm": "pdq", "value": flipped(banked, 8)}))[0] == []
        changes = await feed_since(platform, start)
    assert [(c["change"], c["value"]) for c in changes if c["id"] == match["match_id"]] == [
        ("remove", None)
    ]
    history = await case_store.read_case(case_id)
    assert [r.event.verdict for r in history if isinstance(r.event, MatchFeedbackReceived)] == [
        "false_positive"
    ]
    withdrawn = [r.event for r in history if isinstance(r.event, HashesWithdrawn)]
    assert [w.reason for w in withdrawn] == ["false_positive"]


# -- interop with HMA ------------------------------------------------------------------------------


async def test_a_list_imported_in_hmas_plain_format_exports_the_same_and_round_trips(
    hashmatch: Hashmatch, keys: dict[str, str]
) -> None:
    pdqs = [random_pdq() for _ in range(5)]
    md5s = [random_md5() for _ in range(3)]
    text = "\n".join(
        [
            "# exported from HMA",
            *(f"pdq {v.upper()}" for v in pdqs[:2]),
            "",
            *(f"pdq {v}" for v in pdqs[2:]),
            *(f"video_md5 {v}" for v in md5s),
            f"pdq {pdqs[0]}",  # listed twice
        ]
    )
    expected = sorted([*(f"pdq {v}" for v in pdqs), *(f"video_md5 {v}" for v in md5s)])
    first, second = (f"LIST_{uuid.uuid4().hex[:8].upper()}" for _ in range(2))
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        response = await caseworker.post(
            f"/v1/banks/{first}/import", content=text, headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["hashes"] == 8 and response.json()["duplicate_lines"] == 1
        await hashmatch.caught_up()
        exported = await caseworker.get(f"/v1/banks/{first}/export")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/plain")
        assert sorted(exported.text.splitlines()) == expected
        response = await caseworker.post(f"/v1/banks/{second}/import", content=exported.text)
        assert response.status_code == 200
        await hashmatch.caught_up()
        assert (
            sorted((await caseworker.get(f"/v1/banks/{second}/export")).text.splitlines())
            == expected
        )
    async with hashmatch.client(keys["platform"]) as platform:
        results = await lookup(
            platform,
            {"algorithm": "pdq", "value": flipped(pdqs[3], 7)},
            {"algorithm": "md5", "value": md5s[1]},
        )
    assert [len(r) for r in results] == [2, 2]  # one entry in each bank


async def test_a_case_banks_victims_hashes_are_exported_to_a_case_worker_never_to_an_admin(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore, make_key: MakeKey
) -> None:
    value = random_pdq()
    organisation = f"ngo-{uuid.uuid4().hex[:6]}"
    await bank_case(store, pdq(value), organisation=organisation)
    await hashmatch.caught_up()
    bank = case_bank_name(organisation)
    admin = await make_key("centre", "admin")
    await hashmatch.caught_up()
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        exported = await caseworker.get(f"/v1/banks/{bank}/export")
    assert exported.status_code == 200 and f"pdq {value}" in exported.text.splitlines()
    async with hashmatch.client(admin) as client:
        refused = await client.get(f"/v1/banks/{bank}/export")
        listed = await client.get("/v1/banks")
    assert refused.status_code == 403 and "case worker" in refused.json()["detail"]
    assert value not in refused.text
    assert listed.status_code == 200  # the banks' settings and counts are not personal


async def test_a_list_with_bad_lines_is_refused_whole_naming_each_bad_line(
    hashmatch: Hashmatch, keys: dict[str, str]
) -> None:
    bank = f"LIST_{uuid.uuid4().hex[:8].upper()}"
    text = (
        f"pdq {random_pdq()}\nphotodna abc\n\npdq 1234\n"
        f"video_md5 {random_md5()}\npdq{random_pdq()}\n"
    )
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        response = await caseworker.post(f"/v1/banks/{bank}/import", content=text)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["line 2", "line 4", "line 6"]
        await hashmatch.caught_up()
        assert (await caseworker.get(f"/v1/banks/{bank}/export")).status_code == 404
        for name in ("ORG_SOMEONE", "lower", "NEGATIVE"):
            response = await caseworker.post(
                f"/v1/banks/{name}/import", content=f"pdq {random_pdq()}"
            )
            assert response.status_code == 422, name


async def test_the_delta_feed_pages_additions_and_replacing_a_list_shows_removals(
    hashmatch: Hashmatch, keys: dict[str, str]
) -> None:
    bank = f"LIST_{uuid.uuid4().hex[:8].upper()}"
    values = [random_pdq() for _ in range(7)]
    async with hashmatch.client(keys["platform"]) as platform:
        start = await feed_end(platform)
        async with hashmatch.client(keys["caseworker"]) as caseworker:
            text = "\n".join(f"pdq {v}" for v in values)
            assert (
                await caseworker.post(f"/v1/banks/{bank}/import", content=text)
            ).status_code == 200
            await hashmatch.caught_up()
            added = await feed_since(platform, start, limit=3)
            middle = await feed_end(platform)
            kept = "\n".join(f"pdq {v}" for v in values[:2])
            response = await caseworker.post(
                f"/v1/banks/{bank}/import", params={"mode": "replace"}, content=kept
            )
            assert response.status_code == 200
            assert response.json()["already_in_bank"] == 2
            await hashmatch.caught_up()
            removed = await feed_since(platform, middle, limit=2)
        assert [(c["change"], c["value"]) for c in added if c["value"] in values] == [
            ("add", v) for v in values
        ]
        ids = {c["id"]: c["value"] for c in added}
        assert sorted((c["change"], ids[c["id"]]) for c in removed) == sorted(
            ("remove", v) for v in values[2:]
        )
        results = await lookup(platform, *({"algorithm": "pdq", "value": v} for v in values))
    assert [len(r) for r in results] == [1, 1, 0, 0, 0, 0, 0]


async def test_a_sighting_of_an_imported_lists_hash_is_recorded_without_the_url(
    hashmatch: Hashmatch, keys: dict[str, str], nc: NATS
) -> None:
    value = random_pdq()
    bank = f"LIST_{uuid.uuid4().hex[:8].upper()}"
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        assert (
            await caseworker.post(f"/v1/banks/{bank}/import", content=f"pdq {value}")
        ).status_code == 200
    await hashmatch.caught_up()
    sighting = {
        "hash": {"algorithm": "pdq", "value": value},
        "url": "https://images.example.net/i/42",
        "seen_at": ago(minutes=3),
    }
    async with hashmatch.client(keys["platform"]) as platform:
        response = await platform.post("/v1/sightings", json=sighting)
    assert response.status_code == 201, response.text
    sighting_id = response.json()["sighting_id"]
    reference = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE)
    found = [
        r.event
        for r in await reference.read_case(REFERENCE_CASE)
        if isinstance(r.event, MatchFound) and r.event.sighting_id == sighting_id
    ]
    assert len(found) == 1
    assert found[0].url is None and found[0].url_withheld and found[0].bank == bank


# -- who may do what -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("partner", "POST", "/v1/lookups", {"items": [{"algorithm": "md5", "value": "0" * 32}]}),
        ("caseworker", "POST", "/v1/lookups", {"items": [{"algorithm": "md5", "value": "0" * 32}]}),
        ("partner", "GET", "/v1/hashes/changes", None),
        ("platform", "GET", "/v1/banks", None),
        ("platform", "PUT", "/v1/banks/LIST_X", {"enabled": False}),
        ("platform", "POST", "/v1/banks/LIST_X/import", None),
        ("platform", "GET", "/v1/banks/LIST_X/export", None),
        ("platform", "GET", "/v1/false-positives", None),
        ("platform", "POST", "/v1/false-positives/m_x/confirm", None),
        ("partner", "POST", "/v1/matches/m_x/feedback", {"verdict": "blocked"}),
    ],
)
async def test_each_role_gets_403_outside_its_endpoints(
    hashmatch: Hashmatch,
    keys: dict[str, str],
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    async with hashmatch.client(keys[role]) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    async with hashmatch.client() as anonymous:
        assert (await anonymous.request(method, path, json=body)).status_code == 401


async def test_a_match_id_works_only_for_the_platform_it_was_given_to(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    banked = random_pdq()
    await bank_case(store, pdq(banked))
    await hashmatch.caught_up()
    item = {"algorithm": "pdq", "value": banked}
    async with (
        hashmatch.client(keys["platform"]) as one,
        hashmatch.client(keys["other_platform"]) as other,
    ):
        [[mine]] = await lookup(one, item)
        [[theirs]] = await lookup(other, item)
        assert mine["match_id"] != theirs["match_id"] and mine["bank"] == theirs["bank"]
        assert [m["match_id"] for m in (await lookup(one, item))[0]] == [mine["match_id"]]
        response = await other.post(
            f"/v1/matches/{mine['match_id']}/feedback", json={"verdict": "blocked"}
        )
        assert response.status_code == 404
        forged = mine["match_id"][:-4] + "AAAA"
        response = await one.post(f"/v1/matches/{forged}/feedback", json={"verdict": "blocked"})
        assert response.status_code == 404
        response = await one.post(
            f"/v1/matches/{mine['match_id']}/feedback", json={"verdict": "blocked"}
        )
        assert response.status_code == 200


# -- restart ---------------------------------------------------------------------------------------


async def test_a_restart_restores_the_index_from_the_bank_and_withdrawn_cases_stay_out(
    hashmatch: Hashmatch, keys: dict[str, str], store: EventStore
) -> None:
    kept, withdrawn = random_pdq(), random_pdq()
    await bank_case(store, pdq(kept))
    case_id, version = await bank_case(store, pdq(withdrawn))
    await store.append(
        AggregateRef(case_id, "case", case_id),
        [CaseWithdrawn(withdrawn_by="victim")],
        expected=version,
        cause=PARTNER,
    )
    await hashmatch.caught_up()
    hashmatch.restart()
    await hashmatch.caught_up()
    async with hashmatch.client(keys["caseworker"]) as caseworker:
        status = (await caseworker.get("/v1/matcher/status")).json()
    assert status["restored_rows"] >= 1 and status["pending_changes"] == 0
    async with hashmatch.client(keys["platform"]) as platform:
        results = await lookup(
            platform, {"algorithm": "pdq", "value": kept}, {"algorithm": "pdq", "value": withdrawn}
        )
    assert [len(r) for r in results] == [1, 0]


async def test_the_service_documents_its_endpoints_and_the_events_it_emits_and_consumes(
    hashmatch: Hashmatch,
) -> None:
    async with hashmatch.client() as client:
        openapi = (await client.get("/openapi.json")).json()
        asyncapi = (await client.get("/asyncapi")).json()
    for path in (
        "/v1/lookups",
        "/v1/sightings",
        "/v1/hashes/changes",
        "/v1/matches/{match_id}/feedback",
        "/v1/banks/{name}/import",
        "/v1/false-positives/{match_id}/confirm",
    ):
        assert path in openapi["paths"], path
    channels = asyncapi["channels"]
    for event in ("MatchFound", "HashesBanked", "HashesWithdrawn", "HashesSubmitted", "CaseErased"):
        assert event in asyncapi["components"]["messages"], event
    assert (
        channels["NCII.MatchFound"]["address"] == "ncii.{case_id}.match.{aggregate_id}.MatchFound"
    )
    assert channels["NCII_REF.MatchFound"]["address"] == "nciiref.match.{aggregate_id}.MatchFound"
    assert (
        channels["NCII_REF.BankConfigured"]["address"]
        == "nciiref.bank.{aggregate_id}.BankConfigured"
    )
    assert channels["NCII.HashesBanked"]["address"] == (
        "ncii.{case_id}.banking.{aggregate_id}.HashesBanked"
    )
    actions = {op["channel"]["$ref"]: op["action"] for op in asyncapi["operations"].values()}
    assert actions["#/channels/NCII.HashesBanked"] == "send"
    assert actions["#/channels/NCII_REF.MatchFound"] == "send"
    assert actions["#/channels/NCII.HashesSubmitted"] == "receive"
    assert actions["#/channels/NCII.CaseErased"] == "receive"
    assert actions["#/channels/NCII_REF.PrincipalCreated"] == "receive"
    assert "url" in asyncapi["components"]["messages"]["MatchFound"]["payload"]["properties"]


# -- erasure (decision 26) -------------------------------------------------------------------------


async def raw_case_messages(nc: NATS, case_id: str) -> list[bytes]:
    """Every stored message of the case, as the log holds it (JetStream direct get)."""
    js = nc.jetstream()
    out: list[bytes] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(
                "NCII", seq=seq, subject=f"ncii.{case_id}.>", next=True, direct=True
            )
        except NotFoundError:
            return out
        assert msg.data is not None and msg.seq is not None
        out.append(msg.data)
        seq = msg.seq + 1


def files_holding(folder: Path, needles: list[bytes]) -> list[str]:
    return sorted(
        f"{path.name}: {needle.decode()[:8]}"
        for path in folder.rglob("*")
        if path.is_file()
        for needle in needles
        if needle in path.read_bytes()
    )


async def test_after_erasure_no_hash_or_place_name_is_left_in_the_log_the_bank_or_a_new_feed(
    hashmatch: Hashmatch, intake: RunningService, keys: dict[str, str], nc: NATS
) -> None:
    mark = uuid.uuid4().hex[:8].upper()
    forum, app, authority, file_no = (
        f"Forum ERASE{mark}",
        f"Chat ERASE{mark}",
        f"Authority ERASE{mark}",
        f"FILE-ERASE{mark}",
    )
    rotations = [random_pdq() for _ in range(8)]
    md5 = random_md5()
    hashes = [*rotations, md5]
    async with hashmatch.client(keys["platform"]) as platform:
        start = await feed_end(platform)
    await caught_up(intake)
    async with intake.client(keys["partner"]) as partner:
        body = case_body(age_group="minor", channels=[{"kind": "messaging_app", "platform": app}])
        case_id = (await partner.post("/v1/cases", json=body)).json()["case_id"]
        writes = [
            (
                "locations",
                {"url": "https://f.example/t/1", "platform": forum, "channel_kind": "forum"},
            ),
            (
                # a station's name and a file number (the art. 7 report, which held them before,
                # is the referral service's now: decision 34)
                "police-report",
                {"station": authority, "report_number": file_no, "seizure_requested": True},
            ),
            (
                "hashes",
                {
                    "hashes": [
                        {
                            "algorithm": "pdq",
                            "value": rotations[0],
                            "quality": 90,
                            "media": "image",
                            "dihedral": rotations,
                        },
                        {"algorithm": "md5", "value": md5, "media": "video"},
                    ]
                },
            ),
        ]
        for route, json in writes:
            response = await partner.post(f"/v1/cases/{case_id}/{route}", json=json)
            assert response.status_code == 200, response.text
        await hashmatch.caught_up()
        async with hashmatch.client(keys["platform"]) as platform:  # an old platform
            added, after_add = await feed_read(platform, start)
            ids = {c["id"] for c in added if c["value"] in hashes}
            assert len(ids) == 2
            async with intake.client(keys["caseworker"]) as caseworker:
                erased = await caseworker.post(
                    f"/v1/cases/{case_id}/erase", json={"reason": "victim_request"}
                )
            assert erased.status_code == 200, erased.text
            await caught_up(intake)
            await hashmatch.caught_up()
            removed = await feed_read(platform, after_add)
    # the old platform learns to remove what it had, by id: no hash in the removals
    assert sorted((c["change"], c["value"]) for c in removed[0] if c["id"] in ids) == [
        ("remove", None),
        ("remove", None),
    ]
    assert not [c for c in removed[0] if c["value"] in hashes]
    # a platform reading the whole feed after the erasure never gets the hashes
    async with hashmatch.client(keys["other_platform"]) as newcomer:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            response = await newcomer.get("/v1/hashes/changes", params=params)
            seen.append(response.text)
            cursor = response.json()["next_cursor"]
            if not response.json()["has_more"]:
                break
    assert not [h for h in hashes if any(h in text for text in seen)]
    # the log keeps ciphertext only: no hash, no place or authority name in any message
    needles = [*hashes, forum, app, authority, file_no]
    raw = await raw_case_messages(nc, case_id)
    assert len(raw) >= 6  # opened, location, report, hashes, banked, erased, withdrawn
    assert [n for n in needles if any(n.encode() in m for m in raw)] == []
    # nor any file of either service (their SQLite databases, -wal files, logs)
    assert files_holding(Path(intake.env["NCII_VAR_DIR"]), [n.encode() for n in needles]) == []
    hashmatch.stop()  # so SQLite folds its -wal file into the database
    try:
        assert files_holding(hashmatch.args[2], [n.encode() for n in needles]) == []
    finally:
        hashmatch.service = start_service(*hashmatch.args, extra_env=hashmatch.ENV)
        await hashmatch.caught_up()


# -- retries without a key (decision 0057) -------------------------------------------------------


async def test_a_list_import_needs_a_key_and_the_same_bank_settings_again_are_no_news(
    hashmatch: Hashmatch, keys: dict[str, str], nc: NATS
) -> None:
    bank = f"LIST_{uuid.uuid4().hex[:8].upper()}"
    text = f"pdq {random_pdq()}\n"
    ref_log = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE)
    async with hashmatch.client(keys["caseworker"], keyed=False) as caseworker:
        refused = await caseworker.post(f"/v1/banks/{bank}/import", content=text)
        assert refused.status_code == 428, refused.text
        assert refused.json()["type"].endswith("/idempotency-key-required")
        await hashmatch.caught_up()
        listed = (await caseworker.get("/v1/banks")).json()["items"]
        assert bank not in {b["name"] for b in listed}  # nothing imported
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await caseworker.post(f"/v1/banks/{bank}/import", content=text, headers=key)
        again = await caseworker.post(f"/v1/banks/{bank}/import", content=text, headers=key)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json()
        imported = await ref_log.load(
            AggregateRef(REFERENCE_CASE, "hash_list", first.json()["import_id"])
        )
        assert [e.envelope.type for e in imported] == ["HashListImported"]
        for _ in range(2):  # a PUT retried without a key
            put = await caseworker.put(f"/v1/banks/{bank}", json={"pdq_threshold": 20})
            assert put.status_code == 200, put.text
    settings = await ref_log.load(AggregateRef(REFERENCE_CASE, "bank", bank))
    assert [e.envelope.type for e in settings] == ["BankConfigured"]
