"""The fast transport's parser and raw publish against nats-py's own, byte for byte (no server)."""

from __future__ import annotations

import json
import random
from typing import Any, cast

import pytest
from nats import errors
from nats.aio.client import Client
from nats.protocol.command import hpub_cmd, pub_cmd
from nats.protocol.parser import Parser
from ncii_events.transport.fast import NciiNatsClient, _Parser
from ncii_events.transport.headers import header_block

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
