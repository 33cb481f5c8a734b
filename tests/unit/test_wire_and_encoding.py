"""The event log's hot paths against what they replace: the fast NATS parser and raw publish
against nats-py, canonical JSON (orjson) against ``json``, pooled ids and timestamps."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from nats import errors
from nats.aio.client import Client
from nats.protocol.command import hpub_cmd, pub_cmd
from nats.protocol.parser import Parser
from ncii_events.connection import (
    NciiNatsClient,
    _Parser,
    header_block,
    header_value,
    parse_header_lines,
    status_description,
    status_of,
    wire,
)
from ncii_events.envelope import NotCanonicalError, canonical_event_json, canonical_json, utc_now
from ncii_events.ids import random_bytes, uuid7, uuid7_str

DIRECT_SID = 7


class FakeClient:
    """What the parsers call on a client, recorded in order."""

    def __init__(self, direct_sid: int | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._direct: dict[int, Any] = {}
        self.stats = {"in_msgs": 0, "in_bytes": 0}
        if direct_sid is not None:
            self._direct[direct_sid] = self.on_direct

    def on_direct(self, subject: bytes, reply: bytes, headers: bytes | None, data: bytes) -> None:
        self.calls.append(("direct", subject, reply, headers, data))

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        if len(self.calls) > 1000:
            raise RuntimeError("the parser keeps dispatching: it is looping")
        self.calls.append(("msg", sid, subject, reply, data, headers))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.calls.append(("info", info))

    async def _process_err(self, err: str) -> None:
        self.calls.append(("err", err))


def _msg(subject: str, sid: int, payload: bytes, reply: str = "") -> bytes:
    args = f"{subject} {sid} {reply} {len(payload)}" if reply else f"{subject} {sid} {len(payload)}"
    return f"MSG {args}\r\n".encode() + payload + b"\r\n"


def _hmsg(subject: str, sid: int, headers: bytes, payload: bytes, reply: str = "") -> bytes:
    sizes = f"{len(headers)} {len(headers) + len(payload)}"
    args = f"{subject} {sid} {reply} {sizes}" if reply else f"{subject} {sid} {sizes}"
    return f"HMSG {args}\r\n".encode() + headers + payload + b"\r\n"


INFO = {"server_id": "S1", "version": "2.10.0", "headers": True, "max_payload": 1048576}
STREAM = b"".join(
    [
        b"INFO " + json.dumps(INFO).encode() + b"\r\n",
        b"+OK\r\n",
        _msg("a.b", 1, b"hello"),
        _msg("a.b", 2, b"abc", reply="_INBOX.x.y"),
        b"PING\r\n",
        _hmsg("c.d", 3, b"NATS/1.0\r\nA: 1\r\nB:  two \r\n\r\n", b"{}"),
        _hmsg("_INBOX.r.1", 4, b"NATS/1.0 404 No Messages\r\n\r\n", b"", reply="x.y"),
        _msg("a.b", DIRECT_SID, b"x\r\nMSG a.b 1 2\r\nhi\r\nPING\r\n"),
        b"PONG\r\n",
        _hmsg("e", DIRECT_SID, b"NATS/1.0 408 Request Timeout\r\nN: 1\r\n\r\n", b"", reply="r"),
        _msg("e.f", DIRECT_SID, b"", reply="_INBOX.z"),
        _hmsg("e.f", DIRECT_SID, b"NATS/1.0\r\nNats-Sequence: 9\r\n\r\n", b"\r\nHMSG x 1 2 3\r\n"),
        b"-ERR 'Permissions Violation for Publish to \"x\"'\r\n",
        _msg("big", 5, bytes(range(256)) * 17),
        _msg("empty", 6, b""),
        b"PING\r\n",
    ]
)


def _chunkings(data: bytes) -> list[list[bytes]]:
    out = [[data], [data[i : i + 1] for i in range(len(data))]]
    for seed in range(60):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 40)))
        out.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return out


async def _feed(parser: Parser, chunks: list[bytes]) -> None:
    for chunk in chunks:
        await parser.parse(chunk)


def _as_direct(call: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``_process_msg`` call as the direct handler of ``DIRECT_SID`` receives it."""
    if call[0] == "msg" and call[1] == DIRECT_SID:
        _, _, subject, reply, data, headers = call
        return ("direct", subject, reply, headers, data)
    return call


async def test_the_fast_parser_dispatches_what_nats_py_dispatches_however_reads_are_split() -> None:
    reference = FakeClient()
    await _feed(Parser(reference), [STREAM])
    expected_direct = [_as_direct(call) for call in reference.calls]
    assert [call[0] for call in reference.calls].count("msg") == 10  # the stream is as it seems
    direct_count = sum(1 for c in expected_direct if c[0] == "direct")
    direct_bytes = sum(len(c[4]) for c in expected_direct if c[0] == "direct")
    assert direct_count == 4

    for chunks in _chunkings(STREAM):
        original = FakeClient()
        await _feed(Parser(original), chunks)
        assert original.calls == reference.calls
        plain = FakeClient()
        await _feed(_Parser(cast(NciiNatsClient, plain)), chunks)
        assert plain.calls == reference.calls
        fast = FakeClient(direct_sid=DIRECT_SID)
        await _feed(_Parser(cast(NciiNatsClient, fast)), chunks)
        assert fast.calls == expected_direct
        assert fast.stats == {"in_msgs": direct_count, "in_bytes": direct_bytes}


@pytest.mark.parametrize(
    "line",
    [
        b"MSG foo\r\n",
        b"MSG foo bar 5\r\nhello\r\n",
        b"MSG foo 1 five\r\n",
        b"HMSG foo 1 x 5\r\nhello\r\n",
        b"HMSG foo\r\n",
        # nats-py refuses these too; each is a field missing, extra or not a decimal number
        b"MSG foo 5\r\nhello\r\n",
        b"MSG foo 1 reply extra 5\r\nhello\r\n",
        b"HMSG foo 1 2\r\nhi\r\n",
        b"MSG foo 1 +2\r\nhi\r\n",
        b"MSG foo 1 -2\r\nPING\r\n",
        b"MSG foo 1 0\r\n\r\nMSG foo 1 -32\r\n",  # a negative size would jump back
    ],
)
async def test_a_malformed_msg_line_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(errors.ProtocolError):
        await Parser(FakeClient()).parse(line)
    with pytest.raises(errors.ProtocolError):
        await _Parser(cast(NciiNatsClient, FakeClient())).parse(line)


def _offline(client: Client) -> list[bytes]:
    """Make ``client`` look connected and return the list its commands are written to."""
    sent: list[bytes] = []

    async def send(cmd: bytes, priority: bool = False) -> None:
        sent.append(bytes(cmd))

    client._send_command = send  # type: ignore[method-assign]
    client._status = Client.CONNECTED
    return sent


PUBLISHES = [
    ("a.b", "", None, b"hello"),
    ("a.b", "_INBOX.x", None, b""),
    ("ncii.c1.n.Added", "", {"Nats-Msg-Id": "0196-abc", "Nats-Expected-Stream": "E"}, b"{}"),
    ("a.b", "reply.to", {"X": "台北 a: b  c", "K": ""}, b"\r\nMSG x 1 2\r\n"),
    ("a.b", "", {"!#$%&'*+-.^_`|~09Az": "v"}, b"x"),
]


@pytest.mark.parametrize(("subject", "reply", "headers", "payload"), PUBLISHES)
async def test_publish_raw_and_header_block_write_the_bytes_nats_py_publish_writes(
    subject: str, reply: str, headers: dict[str, str] | None, payload: bytes
) -> None:
    ours, theirs = NciiNatsClient(), Client()
    ours_sent, theirs_sent = _offline(ours), _offline(theirs)
    block = header_block(headers.items()) if headers else b""
    await ours.publish_raw(subject, payload, reply=reply, headers=block)
    await theirs.publish(subject, payload, reply=reply, headers=headers)
    expected = (
        hpub_cmd(subject, reply, block, payload) if headers else pub_cmd(subject, reply, payload)
    )
    assert ours_sent == theirs_sent == [expected]
    assert ours.stats["out_msgs"] == theirs.stats["out_msgs"] == 1
    assert ours.stats["out_bytes"] == theirs.stats["out_bytes"] == len(payload)


@pytest.mark.parametrize(
    ("subject", "reply"),
    [("a b", ""), ("a\r\nPUB x 1\r\n", ""), ("a\tb", ""), ("", ""), ("a", "r s"), ("a", "r\r\n")],
)
async def test_publish_raw_refuses_white_space_in_a_subject_and_sends_nothing(
    subject: str, reply: str
) -> None:
    client = NciiNatsClient()
    sent = _offline(client)
    with pytest.raises(errors.BadSubjectError):
        await client.publish_raw(subject, b"x", reply=reply, headers=header_block([("A", "b")]))
    assert sent == [] and client.stats["out_msgs"] == 0


async def test_a_raw_publish_reaches_a_nats_py_subscriber_with_its_headers(nc: Client) -> None:
    client = wire(nc)
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
    nc: Client,
) -> None:
    client = wire(nc)
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


def test_header_block_refuses_a_bad_name_a_line_break_or_padding() -> None:
    bad = [(name, "v") for name in ["Bad Name", "", "A:B", "é", "A\r\n"]]
    bad += [("A", value) for value in ["a\r\nB: c", "a\n", "a\rb", " a", "a ", "\ta"]]
    for name, value in bad:
        with pytest.raises(errors.BadHeaderError):
            header_block([("Ok", "fine"), (name, value)])


TIMEOUT = b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "status", "description"),
    [
        (b"NATS/1.0 404 No Messages\r\n\r\n", "404", "No Messages"),
        (TIMEOUT, "408", "Request Timeout"),
        (b"NATS/1.0 503\r\n\r\n", "503", ""),
        (b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n", "100", "Idle Heartbeat"),
        (b"NATS/1.0\r\nNats-Sequence: 3\r\n\r\n", None, None),
        (b"", None, ""),
        (None, None, ""),
    ],
)
async def test_status_of_and_its_description_are_what_nats_py_reports(
    raw: bytes | None, status: str | None, description: str | None
) -> None:
    assert status_of(raw) == status
    parsed = await Client()._process_headers(raw) or {}
    assert status_of(raw) == parsed.get("Status")
    if description is not None:
        assert status_description(raw) == description == parsed.get("Description", "")


def test_header_value_reads_one_header_as_the_full_parser_does() -> None:
    pairs = [("Nats-Stream", "EVENTS"), ("Nats-Sequence", "42"), ("Nats-Num-Pending", "0")]
    raw = header_block([*pairs, ("X", "台北")])
    full = parse_header_lines(raw)
    assert len(full) == 4
    for name in full:
        assert header_value(raw, name.encode()) == full[name]
    for absent in [b"Nats-Num", b"Missing", b"NATS/1.0"]:
        assert header_value(raw, absent) is None
    assert header_value(TIMEOUT, b"Nats-Pending-Messages") == "1"
    padded = b"NATS/1.0\r\nA:\t v \r\nB:w\r\n\r\n"
    assert (header_value(padded, b"A"), header_value(padded, b"B")) == ("v", "w")


CHARS = list(
    'aZ09 "\\/\x00\x01\x08\x0c\n\r\t\x1f\x7f\x80é台北\u2028\u2029\ufeff\ue000\uffff😀\U0010ffff'
)
INTS = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63 - 1), -(2**63), 2**64 - 1]
BIG_INTS = [2**64, 2**64 + 5, -(2**63) - 1, -(2**64 + 5), 10**40]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        if rng.random() < 0.03:
            return rng.choice(BIG_INTS)
        return rng.choice([*INTS, rng.randint(-(2**63), 2**64 - 1), rng.randint(-999, 999)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4):
        return rng.choice(["", "Ab", "b", "B", "é", "台", "😀", "\ufeff", "a b"])
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _fits_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_fits_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return all(_fits_64_bits(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value <= 2**64 - 1
    return True


def test_canonical_json_is_byte_identical_to_sorted_compact_json_dumps() -> None:
    through_orjson = 0
    for seed in range(3000):
        value = _value(random.Random(seed))
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_json(value) == expected.encode(), value
        if _fits_64_bits(value):
            through_orjson += 1
            assert canonical_event_json(value) == expected.encode()
        else:
            with pytest.raises(NotCanonicalError):
                canonical_event_json(value)
    assert 2000 < through_orjson < 3000  # both paths were exercised


@pytest.mark.parametrize("big", [2**64, -(2**63) - 1, 2**64 + 5])
def test_canonical_event_json_refuses_integers_beyond_64_bits(big: int) -> None:
    value = {"b": [1, {"n": big}], "a": "x"}
    with pytest.raises(NotCanonicalError):
        canonical_event_json(value)
    assert canonical_json(value) == b'{"a":"x","b":[1,{"n":%d}]}' % big
    assert canonical_event_json({"n": 2**64 - 1}) == canonical_json({"n": 2**64 - 1})


UUID_V7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_uuid7_str_has_the_rfc_9562_v7_layout_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ids = [uuid7_str() for _ in range(500)]
    after = time.time_ns() // 1_000_000
    for text in ids:
        assert UUID_V7.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
        assert before <= int(text[:8] + text[9:13], 16) <= after
    assert len(set(ids)) == 500
    assert len({text[15:18] for text in ids}) > 300  # rand_a is random, not a counter or zero
    assert UUID_V7.fullmatch(str(uuid7()))


def test_uuid7_str_and_uuid7_are_ordered_a_millisecond_apart() -> None:
    ids = []
    for i in range(8):
        ids.append(uuid7_str() if i % 2 else str(uuid7()))
        time.sleep(0.0015)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_random_bytes_have_the_asked_length_across_pool_refills_and_do_not_repeat() -> None:
    sizes = [10, 12, 1, 0, 4000, 97, 12, 4096, 3, 2500, 2500]
    assert [len(random_bytes(n)) for n in sizes] == sizes
    chunks = [random_bytes(16) for _ in range(1000)]  # 16 000 bytes: several refills
    assert len(set(chunks)) == 1000


def test_random_bytes_larger_than_the_pool_are_still_the_asked_length() -> None:
    assert len(random_bytes(5000)) == 5000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_reuse_the_parents_pooled_random_bytes() -> None:
    random_bytes(4096)
    random_bytes(1)  # the pool now holds 4095 bytes that both processes could hand out
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write_end, random_bytes(32))
        finally:
            os._exit(0)
    os.close(write_end)
    child = b""
    while chunk := os.read(read_end, 64):
        child += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != random_bytes(32)


def test_utc_now_is_rfc_3339_utc_with_microseconds_and_is_now() -> None:
    first = utc_now()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", first), first
    parsed = datetime.strptime(first, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(parsed - datetime.now(UTC)) < timedelta(seconds=1)
    assert first <= utc_now()


def test_a_block_without_a_status_has_no_status_description() -> None:
    assert status_description(b"NATS/1.0\r\nNats-Sequence: 3\r\n\r\n") == ""
    assert status_description(None) == ""


async def test_a_failing_direct_handler_loses_its_message_but_not_the_connection(
    nc: Client,
) -> None:
    client = wire(nc)
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
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        assert seen == [b"one", b"two"]
        assert client.is_connected
    finally:
        await sub.unsubscribe()


def test_an_events_traceparent_is_what_the_w3c_propagator_writes() -> None:
    from ncii_events.store import _traceparent
    from opentelemetry import trace
    from opentelemetry.propagate import inject
    from opentelemetry.sdk.trace import TracerProvider

    assert _traceparent() is None  # no span: no traceparent, as the propagator writes none
    with TracerProvider().get_tracer("test").start_as_current_span("request"):
        carrier: dict[str, str] = {}
        inject(carrier)
        assert _traceparent() == carrier["traceparent"]
    assert trace.get_current_span().get_span_context().is_valid is False


async def test_a_request_nobody_answers_ends_with_a_timeout_and_leaves_nothing_open(
    nc: Client,
) -> None:
    from nats.errors import TimeoutError as NatsTimeoutError
    from ncii_events.store import _Inbox

    silent = await nc.subscribe("ncii_test.silent")  # takes it, never answers
    inbox = _Inbox.of(wire(nc))
    try:
        with pytest.raises(NatsTimeoutError):
            await inbox.request("ncii_test.silent", b"hello", b"", timeout=0.2)
        assert not inbox._open
    finally:
        await silent.unsubscribe()
