"""Hostile clients against real service processes (security review F4, F5; decision 21): bodies
are limited per route and refused before they are read, keys are checked before bodies are
parsed, and clients that trickle their headers are cut off while health checks still answer."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.support.eventually import STUCK_AFTER, eventually

MakeKey = Callable[[str, str], Awaitable[str]]
HUNDRED_MB = 100 * 1024 * 1024
HEADER_TIMEOUT = 1.0
"""Short, so that the slow-loris test takes a few seconds."""


@pytest.fixture(scope="module")
def intake(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    # its own process: the header timeout is short, and its failed-auth throttle is its own
    service = start_service(
        "intake",
        nats_server,
        tmp_path_factory.mktemp("intake-hostile"),
        master_key_file,
        # the tests are the proxy: their X-Forwarded-For gives each its own address
        extra_env={
            "NCII_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "NCII_TRUSTED_PROXIES": "127.0.0.1",
        },
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
def hashmatch(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service(
        "hashmatch",
        nats_server,
        tmp_path_factory.mktemp("hashmatch-hostile"),
        master_key_file,
        extra_env={"NCII_TRUSTED_PROXIES": "127.0.0.1"},
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
async def keys(
    intake: RunningService, hashmatch: RunningService, make_key: MakeKey
) -> dict[str, str]:
    org = f"ngo-{uuid.uuid4().hex[:6]}"
    made = {
        "partner": await make_key(org, "partner"),
        "caseworker": await make_key("centre", "caseworker"),
        "platform": await make_key(f"plat-{uuid.uuid4().hex[:6]}", "platform"),
    }
    await caught_up(intake)
    await caught_up(hashmatch)
    return made


async def head_only(
    service: RunningService, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    """Send a request's headers and none of the body it declares; the answer must come anyway
    (the server never waits for the body), within the stuck bound."""
    url = urlsplit(service.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STUCK_AFTER)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), STUCK_AFTER))
        return status, body
    finally:
        writer.close()


def declared(size: int, key: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Content-Length": str(size)}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return headers


# -- F4: body limits, and the key before the body ------------------------------------------------


async def test_a_declared_100_mb_body_without_a_key_gets_401_without_being_read(
    intake: RunningService, hashmatch: RunningService
) -> None:
    for service, path in [
        (intake, "/v1/cases"),
        (intake, f"/v1/cases/{uuid.uuid4()}/hashes"),
        (hashmatch, "/v1/lookups"),
        (hashmatch, "/v1/banks/LIST_A/import"),
    ]:
        status, body = await head_only(
            service, "POST", path, {**declared(HUNDRED_MB), "X-Forwarded-For": "192.0.2.1"}
        )
        assert status == 401, (path, body)
        assert body["status"] == 401


async def test_a_declared_body_over_the_route_limit_gets_413_naming_the_limit_without_being_read(
    intake: RunningService, hashmatch: RunningService, keys: dict[str, str]
) -> None:
    cases = [
        (intake, f"/v1/cases/{uuid.uuid4()}/hashes", keys["partner"], "768 KB"),
        (intake, f"/v1/cases/{uuid.uuid4()}/locations", keys["partner"], "16 KB"),
        (intake, "/v1/cases", keys["partner"], "64 KB"),
        (intake, "/v1/victim/status", None, "2 KB"),
        (hashmatch, "/v1/lookups", keys["platform"], "4 MB"),
        (hashmatch, "/v1/sightings", keys["platform"], "3 MB"),
        (hashmatch, "/v1/banks/LIST_A/import", keys["caseworker"], "96 MB"),
    ]
    for service, path, key, limit in cases:
        status, body = await head_only(service, "POST", path, declared(HUNDRED_MB, key))
        assert status == 413, (path, body)
        assert body["type"].endswith("/body-too-large")
        assert limit in str(body["detail"]), (path, body["detail"])


async def test_a_chunked_body_is_cut_off_with_413_once_it_passes_the_limit(
    intake: RunningService,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        # far more than the victim routes take (2 KB); no Content-Length, so it is counted
        nonlocal sent
        for _ in range(64):
            sent += 1024
            yield b" " * 1024

    async with intake.client() as client:
        response = await client.post(
            "/v1/victim/status", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert "2 KB" in response.json()["detail"]


async def test_a_vpdq_submission_too_big_for_one_event_gets_413_not_503_retry(
    intake: RunningService, keys: dict[str, str]
) -> None:
    # 20,000 frames (about 2.2 MB, two hours and more): its event would not fit in one NATS
    # message; the answer says how much fits instead of "retry", which could never succeed
    frames = [{"value": "a" * 64, "quality": 90, "timestamp": float(i)} for i in range(20_000)]
    body = {"hashes": [{"algorithm": "vpdq", "media": "video", "frames": frames}]}
    async with intake.client(keys["partner"]) as client:
        response = await client.post(f"/v1/cases/{uuid.uuid4()}/hashes", json=body)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "768 KB" in response.json()["detail"]
    assert "retry" not in response.json()["detail"].split(";")[0]


async def test_a_malformed_body_without_a_key_is_401_and_counts_toward_the_failed_auth_throttle(
    intake: RunningService,
) -> None:
    # the intake above trusts X-Forwarded-For from the tests (NCII_TRUSTED_PROXIES): an
    # address of its own for this test, so the throttle it fills touches no other test
    address = {"X-Forwarded-For": "198.51.100.7", "Content-Type": "application/json"}
    async with intake.client() as client:
        for _ in range(20):
            response = await client.post("/v1/cases", content=b"{not json", headers=address)
            assert response.status_code == 401
        response = await client.post("/v1/cases", content=b"{not json", headers=address)
    assert response.status_code == 429


async def test_a_body_within_its_limit_still_works(
    intake: RunningService, keys: dict[str, str]
) -> None:
    async with intake.client(keys["partner"]) as client:
        response = await client.post("/v1/cases", json={"pseudonym": "x"})
    # read, parsed and validated as before: 422 names the missing fields
    assert response.status_code == 422
    assert any(e["field"] == "age_group" for e in response.json()["errors"])


# -- F5: slow clients ------------------------------------------------------------------------


async def test_clients_trickling_headers_are_cut_off_and_healthz_answers_meanwhile(
    intake: RunningService,
) -> None:
    url = urlsplit(intake.url)
    request = f"POST /v1/victim/status HTTP/1.1\r\nHost: {url.netloc}\r\nX-Pad: ".encode()
    closed_by_server: list[bytes] = []

    async def trickle() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            # one byte at a time, never ending the headers; self-stopping after a bounded
            # number of bytes (well past the stuck bound) if the server never cuts it off
            for i in range(int(STUCK_AFTER * 10)):
                writer.write(request[i : i + 1] if i < len(request) else b"a")
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(), 0.1)
                except TimeoutError:
                    continue  # the pace of the attack, not a wait for a condition
                closed_by_server.append(answer)
                return
        except ConnectionError:
            closed_by_server.append(b"")
        finally:
            writer.close()

    tricklers = [asyncio.create_task(trickle()) for _ in range(200)]
    try:
        async with httpx.AsyncClient(base_url=intake.url, timeout=STUCK_AFTER) as client:
            # while 200 connections hold their headers open, the process still answers
            for _ in range(5):
                assert (await client.get("/healthz")).status_code == 200

            await eventually(
                lambda: len(closed_by_server) == len(tricklers),
                what="the server cutting off every trickling connection",
            )
            assert (await client.get("/healthz")).status_code == 200
        assert all(a.startswith(b"HTTP/1.1 408") or a == b"" for a in closed_by_server)
        assert any(a.startswith(b"HTTP/1.1 408") for a in closed_by_server)
    finally:
        for task in tricklers:
            task.cancel()
        await asyncio.gather(*tricklers, return_exceptions=True)


async def test_an_idle_keep_alive_connection_is_closed_without_a_408_a_next_request_would_misread(
    intake: RunningService,
) -> None:
    url = urlsplit(intake.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        await reader.readexactly(length)
        # idle past the header deadline: the keep-alive timeout closes it, and nothing is said
        # (a 408 here would be read by the client's next request as its answer)
        assert await reader.read() == b""
    finally:
        writer.close()
