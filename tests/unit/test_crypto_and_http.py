"""Field encryption, the header parser, the auth throttle and problem details: no I/O."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from nats.aio.client import Client
from ncii_events.auth import FailedAuthThrottle, key_sha256, new_api_key
from ncii_events.crypto import MasterKey, decrypt_field, encrypt_field
from ncii_events.http import Problem, decode_cursor, encode_cursor
from ncii_events.transport.headers import parse_header_lines


def test_an_encrypted_field_round_trips_and_is_bound_to_its_case_event_and_field() -> None:
    key = b"k" * 32
    token = encrypt_field(key, "case-1", "event-1", "phone", "+886912345678")
    assert "912345678" not in token and token.startswith("enc:v1:")
    assert decrypt_field(key, "case-1", "event-1", "phone", token) == "+886912345678"
    for case, event, field in [
        ("case-2", "event-1", "phone"),
        ("case-1", "e2", "phone"),
        ("case-1", "event-1", "email"),
    ]:
        with pytest.raises(InvalidTag):
            decrypt_field(key, case, event, field, token)


def test_the_master_key_wraps_case_keys_and_refuses_a_key_wrapped_by_another() -> None:
    master = MasterKey(b"m" * 32)
    record = master.wrap("case-1", b"d" * 32)
    assert master.unwrap("case-1", record) == b"d" * 32
    with pytest.raises(ValueError, match="another master key"):
        MasterKey(b"n" * 32).unwrap("case-1", record)
    with pytest.raises(InvalidTag):
        master.unwrap("case-2", record)
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey.from_base64(base64.b64encode(b"short").decode())
    assert master.derive("a") != master.derive("b") and len(master.derive("a")) == 32


@pytest.mark.parametrize(
    "raw",
    [
        b"Nats-Stream: D\r\nNats-Subject: d.a.b\r\nBad Name: x\r\n"
        b"Nats-Sequence:1\r\nX:\t v \r\n\r\n",
        "A: é\r\n".encode() + b"B: \xff\r\n",
        b"",
        b"K: v: w\r\nNoColon\r\n: empty\r\n",
        b"Nats-Msg-Id: 0196-abc\r\nNats-Expected-Last-Subject-Sequence: 12\r\n",
    ],
)
def test_the_fast_header_parser_gives_what_nats_py_gives(raw: bytes) -> None:
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_api_keys_are_recognisable_and_stored_only_as_sha256() -> None:
    key = new_api_key()
    assert key.startswith("ncii_live_") and len(key) > 40
    assert len(key_sha256(key)) == 64 and key not in key_sha256(key)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_authentications_are_throttled_per_client_and_drain_one_per_window_share() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(limit=3, window=0.3, clock=clock)
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
    with pytest.raises(Problem) as refused:
        throttle.check("10.0.0.1")
    assert refused.value.status == 429 and "Retry-After" in refused.value.headers
    throttle.check("10.0.0.2")  # others are not affected
    clock.now += 0.09
    with pytest.raises(Problem):
        throttle.check("10.0.0.1")  # not one failure's share of the window yet (0.1 s)
    clock.now += 0.02
    throttle.check("10.0.0.1")  # one more try (decision 25: at most 3 per 0.3 s in the run)
    throttle.failed("10.0.0.1")
    with pytest.raises(Problem):
        throttle.check("10.0.0.1")


def test_the_retry_after_of_a_throttled_client_counts_down_with_the_window() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(limit=1, window=60, clock=clock)
    throttle.failed("10.0.0.1")
    clock.now += 45
    with pytest.raises(Problem) as refused:
        throttle.check("10.0.0.1")
    assert refused.value.headers["Retry-After"] == "16"


async def test_a_valid_key_is_remembered_for_two_seconds_so_a_revocation_holds_after_that() -> None:
    from ncii_events.auth import PRINCIPALS, PRINCIPALS_METADATA, Authenticator
    from sqlalchemy import insert, update
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import StaticPool

    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)  # in memory
    async with engine.begin() as conn:
        await conn.run_sync(PRINCIPALS_METADATA.create_all)
    key = new_api_key()
    row = {
        "principal_id": "p-1",
        "organisation": "ngo",
        "role": "partner",
        "key_sha256": key_sha256(key),
        "key_hint": key[:14],
        "label": "",
        "revoked": False,
        "created_at": "2026-11-29T20:00:00.000000Z",
    }
    async with engine.begin() as conn:
        await conn.execute(insert(PRINCIPALS).values(**row))
    clock = FakeClock()
    authenticate = Authenticator(engine, clock=clock)
    request = _request(key)
    try:
        assert (await authenticate(request)).principal_id == "p-1"
        async with engine.begin() as conn:
            await conn.execute(update(PRINCIPALS).values(revoked=True))
        clock.now += 1.9
        assert (await authenticate(request)).principal_id == "p-1"  # remembered
        clock.now += 0.2
        with pytest.raises(Problem) as refused:
            await authenticate(request)
        assert refused.value.status == 401 and "revoked" in refused.value.detail
    finally:
        await engine.dispose()


def _request(key: str) -> Any:
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"authorization", f"Bearer {key}".encode())],
        "client": ("10.0.0.1", 1234),
    }
    return Request(scope)


def test_a_cursor_round_trips_and_a_forged_one_is_a_422() -> None:
    assert decode_cursor(encode_cursor({"o": "2026", "c": "x"})) == {"o": "2026", "c": "x"}
    with pytest.raises(Problem) as bad:
        decode_cursor("!!not-a-cursor")
    assert bad.value.status == 422


async def test_a_log_that_does_not_answer_is_a_503_that_says_to_retry_not_a_500() -> None:
    import httpx
    from fastapi import FastAPI
    from nats.errors import TimeoutError as NatsTimeoutError
    from ncii_events.http import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/cases")
    async def open_case() -> None:
        raise NatsTimeoutError  # as EventStore.append when no acknowledgement comes

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as client:
        response = await client.post("/v1/cases")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "same Idempotency-Key" in response.json()["detail"]


@pytest.mark.parametrize(
    "values",
    [
        {"c": 2**70, "r": 0},  # was a 500 (OverflowError on SQLite, DBAPIError on PostgreSQL)
        {"c": -(2**63) - 1, "r": 0},
        {"o": "2026\x00", "c": "x"},  # was a 500 on PostgreSQL
        {"o": "x" * 5000, "c": "x"},
        {"c": 1.5, "r": 0},
        {"c": True, "r": 0},
        {"c": [1], "r": 0},
    ],
)
def test_a_cursor_beyond_64_bits_with_nul_or_of_another_shape_is_a_422(
    values: dict[str, object],
) -> None:
    with pytest.raises(Problem) as bad:
        decode_cursor(encode_cursor(values))
    assert bad.value.status == 422


def test_a_cursor_at_the_64_bit_edges_still_decodes() -> None:
    values = {"c": 2**63 - 1, "r": -(2**63)}
    assert decode_cursor(encode_cursor(values)) == values
