"""Both transports against a real NATS server: the fast client's direct paths, and what the
store relies on from each transport (timeouts, statuses, nothing left open)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError
from ncii_events.transport import TRANSPORTS, TransportName, connect, transport_for
from ncii_events.transport.fast import FastTransport, NciiNatsClient
from ncii_events.transport.headers import header_block
from ncii_events.transport.stock import StockTransport

from tests.conftest import SuiteNats
from tests.support.eventually import eventually


@pytest.fixture(scope="module")
async def fast_nc(nats_server: SuiteNats) -> AsyncIterator[NciiNatsClient]:
    client = await connect(nats_server.url, name="tests-fast", transport="fast")
    assert isinstance(client, NciiNatsClient)
    yield client
    await client.close()


async def test_a_raw_publish_reaches_a_nats_py_subscriber_with_its_headers(
    fast_nc: NciiNatsClient,
) -> None:
    client = fast_nc
    subject = f"wiretest.{uuid.uuid4().hex}"
    sub = await client.subscribe(subject)
    headers = {"Nats-Msg-Id": "m-1", "X-Case": "台北"}
    block = header_block(headers.items())
    await client.publish_raw(subject, b"one\r\ntwo", reply="wiretest.reply", headers=block)
    await client.publish_raw(subject, b"")
    first, second = await sub.next_msg(timeout=2), await sub.next_msg(timeout=2)
    await sub.unsubscribe()
    assert (first.data, first.reply, first.headers) == (b"one\r\ntwo", "wiretest.reply", headers)
    assert (second.data, second.reply, second.headers) == (b"", "", None)


async def test_a_direct_subscription_gets_the_raw_block_and_ends_with_unsubscribe(
    fast_nc: NciiNatsClient,
) -> None:
    client = fast_nc
    subject = f"wiretest.{uuid.uuid4().hex}"
    got: list[tuple[bytes, bytes, bytes | None, bytes]] = []
    two = asyncio.Event()

    def handler(subject: bytes, reply: bytes, headers: bytes | None, data: bytes) -> None:
        got.append((subject, reply, headers, data))
        if len(got) == 2:
            two.set()

    sub = await client.subscribe_direct(subject, handler)
    await client.publish(subject, b"x", reply="r.1", headers={"A": "b"})
    await client.publish(subject, b"plain")
    await asyncio.wait_for(two.wait(), 2)
    await sub.unsubscribe()
    assert got == [
        (subject.encode(), b"r.1", b"NATS/1.0\r\nA: b\r\n\r\n", b"x"),
        (subject.encode(), b"", None, b"plain"),
    ]
    assert sub._id not in client._direct


async def test_a_failing_direct_handler_loses_its_message_but_not_the_connection(
    fast_nc: NciiNatsClient,
) -> None:
    client = fast_nc
    seen: list[bytes] = []

    def handler(subject: bytes, reply: bytes, headers: bytes | None, data: bytes) -> None:
        if data == b"bad":
            raise ValueError("this handler cannot read it")
        seen.append(data)

    sub = await client.subscribe_direct("ncii_test.failing_handler", handler)
    try:
        for data in (b"one", b"bad", b"two"):
            await client.publish_raw("ncii_test.failing_handler", data)
        await client.flush()
        await eventually(lambda: len(seen) == 2, what="the two good messages")
        assert seen == [b"one", b"two"]
        assert client.is_connected
    finally:
        await sub.unsubscribe()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_connect_makes_the_client_of_the_chosen_transport_and_the_store_follows_it(
    nats_server: SuiteNats, name: TransportName
) -> None:
    client = await connect(nats_server.url, name=f"tests-{name}", transport=name)
    try:
        assert isinstance(client, NciiNatsClient) == (name == "fast")
        transport = transport_for(client)
        assert isinstance(transport, FastTransport if name == "fast" else StockTransport)
        assert transport_for(client) is transport  # one per connection: it holds the inbox
    finally:
        await client.close()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_request_nobody_answers_ends_with_a_timeout_and_leaves_nothing_open(
    nats_server: SuiteNats, name: TransportName
) -> None:
    client = await connect(nats_server.url, name=f"tests-{name}", transport=name)
    silent = await client.subscribe("ncii_test.silent")  # takes it, never answers
    silent_stream = await client.subscribe("$JS.API.DIRECT.GET.NCIISILENT")
    transport = transport_for(client)
    try:
        with pytest.raises(NatsTimeoutError):
            await transport.request("ncii_test.silent", b"hello", {"A": "b"}, timeout=0.2)
        with pytest.raises(NatsTimeoutError):
            await transport.direct_get("NCIISILENT", b"{}", lambda seq, data: None, timeout=0.2)
        if isinstance(transport, FastTransport):
            assert not transport.inbox._open
        else:
            assert isinstance(transport, StockTransport)
            assert not transport._open
    finally:
        await silent.unsubscribe()
        await silent_stream.unsubscribe()
        await client.close()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_request_to_a_subject_no_stream_takes_is_a_no_stream_error(
    nats_server: SuiteNats, name: TransportName
) -> None:
    client = await connect(nats_server.url, name=f"tests-{name}", transport=name)
    try:
        with pytest.raises(NoStreamResponseError):
            await transport_for(client).request(
                f"ncii_test.nobody.{uuid.uuid4().hex}", b"x", {"A": "b"}, timeout=2
            )
    finally:
        await client.close()


@pytest.mark.parametrize("name", TRANSPORTS)
async def test_a_direct_get_the_server_refuses_is_an_api_error(
    nats_server: SuiteNats, name: TransportName
) -> None:
    client = await connect(nats_server.url, name=f"tests-{name}", transport=name)
    try:
        # no such stream: nobody answers the Direct Get subject, the server says 503
        with pytest.raises(APIError):
            await transport_for(client).direct_get(
                f"NOSTREAM{uuid.uuid4().hex}", b'{"seq": 1, "batch": 2}', lambda s, d: None, 2
            )
    finally:
        await client.close()
