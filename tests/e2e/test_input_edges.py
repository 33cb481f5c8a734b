"""Inputs at the edges (security review F15): each is refused with a 4xx saying what to fix
before anything is written, and every request the API accepts produces events the cases
projection applies (no dead letters)."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from urllib.parse import quote

import httpx
import pytest
from ncii_contracts.intake import (
    AgeGroup,
    ChannelKind,
    HarmCategory,
    IntakeChannel,
    PoliceReportDecision,
    SpreadStatus,
)
from ncii_events.http import encode_cursor
from ncii_events.http.fields import EARLIEST

from tests.e2e.conftest import RunningService, caught_up
from tests.e2e.test_intake_api import HASHES, case_body

MakeKey = Callable[[str, str], Awaitable[str]]


@pytest.fixture(scope="module")
async def partner(intake: RunningService, make_key: MakeKey) -> str:
    key = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    return key


def dead_letters(service: RunningService) -> list[tuple[str, str]]:
    """The service's open dead letters (projection, error type), read from its SQLite file."""
    path = service.env["NCII_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT projection, error_type FROM dead_letters WHERE status = 'open'"
        ).fetchall()
    return [(str(p), str(e)) for p, e in rows]


async def case_count(client: httpx.AsyncClient) -> int:
    response = await client.get("/v1/cases", params={"limit": 200})
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


EDGE_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "1999-12-31T23:59:59Z",
    "2000-01-01T09:59:59+14:00",  # 1999-12-31T19:59:59Z
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
]


@pytest.mark.parametrize("when", EDGE_TIMES)
async def test_a_learned_at_before_2000_or_far_ahead_is_a_422_and_nothing_is_written(
    intake: RunningService, partner: str, when: str
) -> None:
    async with intake.client(partner) as client:
        before = await case_count(client)
        response = await client.post("/v1/cases", json=case_body(learned_at=when))
        assert response.status_code == 422, response.text
        problem = response.json()
        assert "learned_at" in [e["field"] for e in problem["errors"]], problem
        assert when not in response.text
        await caught_up(intake)
        assert await case_count(client) == before
    assert dead_letters(intake) == []


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00"])
async def test_case_writes_with_dates_out_of_range_are_a_422_and_the_case_is_unchanged(
    intake: RunningService, partner: str, when: str
) -> None:
    async with intake.client(partner) as client:
        opened = await client.post("/v1/cases", json=case_body())
        assert opened.status_code == 201, opened.text
        case_id = opened.json()["case_id"]
        writes = [
            ("non-consent", {"stated_at": when, "method": "written"}),
            (
                "locations",
                {
                    "url": "https://example.org/post/1",
                    "platform": "Example",
                    "channel_kind": "website",
                    "first_seen_at": when,
                },
            ),
            ("contacts", {"at": when, "channel": "phone", "direction": "outbound"}),
        ]
        for path, body in writes:
            response = await client.post(f"/v1/cases/{case_id}/{path}", json=body)
            assert response.status_code == 422, (path, response.text)
        await caught_up(intake)
        case = (await client.get(f"/v1/cases/{case_id}")).json()
        assert len(case["timeline"]) == 1, case
    assert dead_letters(intake) == []


SPELLINGS: dict[str, Callable[[str], str]] = {
    "braces": lambda i: "{" + i + "}",
    "urn": lambda i: "urn:uuid:" + i,
    "upper case": str.upper,
    "no hyphens": lambda i: i.replace("-", ""),
    "leading space": lambda i: " " + i,
    "trailing nul": lambda i: i + "\x00",
}


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_another_spelling_of_a_case_id_is_a_404_never_a_5xx(
    intake: RunningService, partner: str, spelling: str
) -> None:
    async with intake.client(partner) as client:
        opened = await client.post("/v1/cases", json=case_body())
        case_id = opened.json()["case_id"]
        for candidate in (case_id, str(uuid.uuid4())):
            written = "/v1/cases/" + quote(SPELLINGS[spelling](candidate), safe=":")
            response = await client.get(written)
            assert response.status_code == 404, (spelling, response.text)
            response = await client.post(f"{written}/withdraw", json={"reason": "other"})
            assert response.status_code == 404, (spelling, response.text)


async def test_a_cursor_beyond_64_bits_or_with_nul_is_a_422(
    intake: RunningService, partner: str
) -> None:
    async with intake.client(partner) as client:
        for cursor in (
            encode_cursor({"o": "2026-01-01T00:00:00Z", "c": 2**70}),
            encode_cursor({"o": "2026\x00", "c": "x"}),
        ):
            response = await client.get("/v1/cases", params={"cursor": cursor})
            assert response.status_code == 422, response.text


# -- property: whatever the API accepts, the projection applies -----------------------------------

PSEUDONYMS = ["A", "Sparrow", "麻雀", "x" * 60, "O'Neil-Ünal", "🦜 bird", "  padded  "]
OFFSETS = ["Z", "+14:00", "-12:00", "+05:45", "-00:00", "+00:00"]


def one_of(kind: object) -> list[str]:
    """Every value of a ``Literal`` type of the contract, so new values are generated too."""
    return [str(v) for v in get_args(kind)]


def random_time(rng: random.Random, now: datetime) -> str:
    """A time the API may accept or refuse: about the 2000 floor, about now (the clock skew),
    or any day in between, in any offset from -12:00 to +14:00."""
    choice = rng.random()
    if choice < 0.05:
        return rng.choice(EDGE_TIMES)
    if choice < 0.3:
        moment = EARLIEST + timedelta(seconds=rng.randint(-60, 86_400))
    elif choice < 0.5:
        moment = now + timedelta(minutes=rng.uniform(-10, 10))
    else:
        moment = now - timedelta(days=rng.uniform(0, (now - EARLIEST).days))
    offset = rng.choice(OFFSETS)
    if offset in ("Z", "-00:00", "+00:00"):
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + offset
    sign = 1 if offset[0] == "+" else -1
    local = moment + sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return local.replace(tzinfo=None).isoformat() + offset


def random_case(rng: random.Random, now: datetime) -> dict[str, Any]:
    channels = [
        {"kind": rng.choice(one_of(ChannelKind)), "platform": "P" * rng.randint(1, 100)}
        for _ in range(rng.randint(0, 3))
    ]
    body = case_body(
        pseudonym=rng.choice(PSEUDONYMS),
        age_group=rng.choice(one_of(AgeGroup)),
        harm_categories=rng.sample(one_of(HarmCategory), rng.randint(1, 3)),
        spread_status=rng.choice(one_of(SpreadStatus)),
        intake_channel=rng.choice(one_of(IntakeChannel)),
        channels=channels,
        learned_at=random_time(rng, now),
    )
    if rng.random() < 0.3:
        body.pop("contact")
    return body


def random_writes(rng: random.Random, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Some of the case writes, in any order (some then refused as out of order: fine)."""
    writes: list[tuple[str, dict[str, Any]]] = [
        ("non-consent", {"stated_at": random_time(rng, now), "method": "written"}),
        (
            "locations",
            {
                "url": "https://example.org/p/" + "q" * rng.randint(1, 2000),
                "platform": "Example",
                "channel_kind": rng.choice(one_of(ChannelKind)),
                "first_seen_at": random_time(rng, now),
            },
        ),
        ("hashes", HASHES),
        (
            "police-report-decision",
            {"decision": rng.choice(one_of(PoliceReportDecision))},
        ),
        ("withdraw", {"reason": rng.choice(["victim_request", "resolved", "other"])}),
    ]
    return rng.sample(writes, rng.randint(0, len(writes)))


async def test_every_case_write_the_api_accepts_is_applied_by_the_cases_projection(
    intake: RunningService, partner: str
) -> None:
    rng = random.Random(20261129)
    now = datetime.now(UTC)
    accepted: list[str] = []
    async with intake.client(partner) as client:
        for _ in range(40):
            opened = await client.post("/v1/cases", json=random_case(rng, now))
            assert opened.status_code in (201, 422), opened.text
            if opened.status_code != 201:
                continue
            case_id = opened.json()["case_id"]
            accepted.append(case_id)
            for path, body in random_writes(rng, now):
                response = await client.post(f"/v1/cases/{case_id}/{path}", json=body)
                assert response.status_code < 500, (path, response.text)
        assert len(accepted) > 10
        await caught_up(intake)
        listed = (await client.get("/v1/cases", params={"limit": 200})).json()["items"]
        projected = {c["case_id"]: c for c in listed}
        for case_id in accepted:
            response = await client.get(f"/v1/cases/{case_id}")  # replayed from the log
            assert response.status_code == 200, response.text
            logged = response.json()
            assert (projected[case_id]["status"], projected[case_id]["learned_at"]) == (
                logged["status"],
                logged["learned_at"],
            )
    assert dead_letters(intake) == []
