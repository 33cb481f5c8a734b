"""The deliverer's lean HTTP/1.1 client against real local servers: keep-alive reuse, a
connection the receiver closed while idle, chunked and close-delimited answers, refusals and
timeouts as short reasons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from ncii_takedown.webhook_client import WebhookClient, WebhookError

Answer = Callable[[int], Awaitable[bytes | None]]


@dataclass
class Server:
    url: str
    connections: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


async def _serve(answer: Answer) -> tuple[asyncio.Server, Server]:
    state = Server(url="")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                state.requests.append((headers, body))
                reply = await answer(len(state.requests))
                if reply is None:  # hang up without answering
                    return
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/hook?x=1"
    return server, state


@pytest.fixture
async def served() -> AsyncIterator[Callable[[Answer], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> Server:
        server, state = await _serve(answer)
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def no_content(_: int) -> bytes:
    return b"HTTP/1.1 204 No Content\r\n\r\n"


async def test_posts_reuse_one_kept_alive_connection_and_carry_body_and_headers(
    served: Callable[[Answer], Awaitable[Server]],
) -> None:
    server = await served(no_content)
    client = WebhookClient(5)
    try:
        for i in range(3):
            status = await client.post(server.url, b'{"n":%d}' % i, {"webhook-id": f"n{i}"})
            assert status == 204
    finally:
        await client.aclose()
    assert server.connections == 1
    assert [h["webhook-id"] for h, _ in server.requests] == ["n0", "n1", "n2"]
    assert server.requests[2][1] == b'{"n":2}'
    assert server.requests[0][0]["host"].startswith("127.0.0.1:")


async def test_a_connection_closed_while_idle_is_replaced_and_the_post_goes_through(
    served: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def once_then_close(n: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"

    server = await served(once_then_close)
    client = WebhookClient(5)
    try:
        assert await client.post(server.url, b"{}", {}) == 200
        assert await client.post(server.url, b"{}", {}) == 200
    finally:
        await client.aclose()
    assert server.connections == 2 and len(server.requests) == 2


async def test_chunked_answers_are_read_whole_and_the_connection_kept(
    served: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def chunked(_: int) -> bytes:
        return (
            b"HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n"
        )

    server = await served(chunked)
    client = WebhookClient(5)
    try:
        assert [await client.post(server.url, b"{}", {}) for _ in range(2)] == [202, 202]
    finally:
        await client.aclose()
    assert server.connections == 1


async def test_refusals_are_statuses_and_failures_short_reasons(
    served: Callable[[Answer], Awaitable[Server]],
) -> None:
    async def unavailable(_: int) -> bytes:
        return b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy"

    async def hang_up(_: int) -> None:
        return None

    async def never(_: int) -> bytes:
        await asyncio.Event().wait()  # a receiver that never answers
        return b""

    client = WebhookClient(0.3)  # the client's own deadline is what is tested
    try:
        assert await client.post((await served(unavailable)).url, b"{}", {}) == 503
        with pytest.raises(WebhookError, match="RemoteProtocolError"):
            await client.post((await served(hang_up)).url, b"{}", {})
        with pytest.raises(WebhookError, match="Timeout"):
            await client.post((await served(never)).url, b"{}", {})
        url = (await served(no_content)).url
        with pytest.raises(WebhookError, match="ConnectError"):
            await client.post("http://127.0.0.1:9/hook", b"{}", {})
        with pytest.raises(WebhookError, match="InvalidURL"):
            await client.post("ftp://127.0.0.1/hook", b"{}", {})
        assert await client.post(url, b"{}", {}) == 204
    finally:
        await client.aclose()
