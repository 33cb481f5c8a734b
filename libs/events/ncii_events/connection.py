"""One way to connect to NATS, with a lighter path for the event log's hot loops.

nats-py 2.16 (pinned) spends more per message than the rest of an append or a read: each inbound
message becomes a ``Msg`` with its headers parsed into a dict, goes through a queue to a task per
subscription and then to an ``async`` callback; each publish validates and re-encodes its
headers. ``NciiNatsClient`` keeps nats-py for everything else (connecting, authentication,
reconnection and re-subscription, pings, flushing) and adds:

- ``subscribe_direct``: a subscription whose messages go straight from the protocol parser to a
  plain function, with the raw header block (most callers need one or two header values);
- ``publish_raw``: a publish whose header block the caller built once (``header_block``).

The header parser override keeps nats-py's rules (names are ASCII tokens without white space;
values decoded as UTF-8 with replacement). Unit tests compare both parsers, and both publish
paths, byte for byte.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from nats import errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol.parser import Parser

log = logging.getLogger("ncii.nats")

# One C-level pass over the block: a line whose name is an ASCII token (no white space, no
# colon) followed by ``:``; other lines are skipped, as nats-py skips them.
_HEADER_LINE = re.compile(rb"^([!-9;-~]*):([^\r\n]*)", re.MULTILINE)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_IN_SUBJECT = re.compile(r"\s")
_STATUS = re.compile(rb"NATS/1\.0 (\d{3})")

DirectHandler = Callable[[bytes, bytes, bytes | None, bytes], None]
"""Called with the subject, the reply subject (``b""`` when none), the raw header block (``None``
when there is none) and the data."""


def parse_header_lines(raw: bytes) -> dict[str, str]:
    return {
        name.decode("ascii"): value.strip(b" \t").decode("utf-8", "replace")
        for name, value in _HEADER_LINE.findall(raw)
    }


def header_value_is_safe(value: str) -> bool:
    """One line without surrounding white space: what nats-py would neither refuse nor change."""
    return "\r" not in value and "\n" not in value and value == value.strip()


def header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """The wire form of message headers (``NATS/1.0`` and one ``Name: value`` line each).

    Refuses what nats-py refuses or would silently change: a name that is not a token, a value
    with a line break or surrounding white space.
    """
    lines = [b"NATS/1.0"]
    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise errors.BadHeaderError(name)
        if not header_value_is_safe(value):
            raise errors.BadHeaderError(f"{name}: the value must be one line without padding")
        lines.append(f"{name}: {value}".encode())
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def status_of(raw_headers: bytes | None) -> str | None:
    """The status code of a message (``"404"``, ``"503"``...), or ``None`` for a plain one."""
    if not raw_headers:
        return None
    found = _STATUS.match(raw_headers)
    return found.group(1).decode() if found else None


def status_description(raw_headers: bytes | None) -> str:
    """The text after a status code (``No Messages``...), or ``""``."""
    if status_of(raw_headers) is None:
        return ""
    assert raw_headers is not None
    return raw_headers[12:].split(b"\r\n", 1)[0].strip().decode("utf-8", "replace")


def header_value(raw_headers: bytes, name: bytes) -> str | None:
    """One header's value from the raw block, without parsing the rest."""
    at = raw_headers.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    end = raw_headers.find(b"\r\n", start)
    return raw_headers[start:end].strip(b" \t").decode("utf-8", "replace")


class _Parser(Parser):
    """nats-py's parser, with messages taken in one pass over each read.

    The original matches up to two regular expressions per message and deletes each message from
    the front of a ``bytearray``; this one walks the bytes with ``find`` and slices, and hands
    every other operation (``PING``, ``INFO``, ``-ERR``...: one line each) to the original.
    """

    nc: NciiNatsClient

    def reset(self) -> None:
        super().reset()
        self.rest = bytearray()
        self.rest_needed = 0  # bytes the incomplete message at the start of ``rest`` needs

    async def parse(self, data: bytes = b"") -> None:
        rest = self.rest
        if rest:
            rest.extend(data)
            if len(rest) < self.rest_needed:
                return
            buf = bytes(rest)
            rest.clear()
        else:
            buf = data
        self.rest_needed = 0
        nc = self.nc
        direct = nc._direct
        size = len(buf)
        pos = 0
        while pos < size:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            with_headers = buf.startswith(b"HMSG ", pos)
            if not with_headers and not buf.startswith(b"MSG ", pos):
                await super().parse(buf[pos : eol + 2])  # one control line
                pos = eol + 2
                continue
            args = buf[pos + (5 if with_headers else 4) : eol].split()
            count = len(args) - with_headers  # subject, sid, [reply], [header size], size
            numbers = args[1:2] + args[count - 1 :]
            if count not in (3, 4) or not b"".join(numbers).isdigit():
                raise errors.ProtocolError("nats: malformed MSG")
            sid = int(args[1])
            total = int(args[-1])
            header_size = int(args[-2]) if with_headers else 0
            if header_size > total:
                raise errors.ProtocolError("nats: malformed MSG")
            has_reply = count == 4
            start = eol + 2
            end = start + total
            if end + 2 > size:
                self.rest_needed = end + 2 - pos
                break
            payload = buf[start + header_size : end]
            headers = buf[start : start + header_size] if header_size else None
            pos = end + 2
            reply = args[2] if has_reply else b""
            handler = direct.get(sid)
            if handler is not None:
                nc.stats["in_msgs"] += 1
                nc.stats["in_bytes"] += total - header_size
                try:
                    handler(args[0], reply, headers, payload)
                except Exception:  # one bad message must not end the connection's read loop
                    log.exception("a direct subscription (sid %s) failed on a message", sid)
            else:
                await nc._process_msg(sid, args[0], reply, payload, headers)  # type: ignore[arg-type]
        if pos < size:
            rest.extend(buf[pos:] if pos else buf)


async def _never_called(_msg: object) -> None:  # pragma: no cover - direct messages skip it
    raise AssertionError("a direct subscription's message went through the queue")


class NciiNatsClient(Client):
    _parse_header_lines = staticmethod(parse_header_lines)

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, DirectHandler] = {}
        self._ps = _Parser(self)

    async def subscribe_direct(self, subject: str, handler: DirectHandler) -> Subscription:
        """Subscribe ``handler`` (a plain function, called in the read loop: it must not block).

        The subscription is an ordinary nats-py one, so it is renewed after a reconnection and
        ``unsubscribe()`` ends it.
        """
        sub = await self.subscribe(subject, cb=_never_called)
        self._direct[sub._id] = handler
        return sub

    def _remove_sub(self, sid: int, max_msgs: int = 0) -> None:
        self._direct.pop(sid, None)
        super()._remove_sub(sid, max_msgs)

    async def publish_raw(
        self, subject: str, payload: bytes, *, reply: str = "", headers: bytes = b""
    ) -> None:
        """``publish`` with a header block from ``header_block`` (or none)."""
        if self.is_closed:
            raise errors.ConnectionClosedError
        if self.is_draining_pubs:
            raise errors.ConnectionDrainingError
        if not subject or _NOT_IN_SUBJECT.search(subject) or _NOT_IN_SUBJECT.search(reply):
            raise errors.BadSubjectError  # white space would end the command: an injection
        size = len(payload)
        if not self.is_connected and (
            self._max_pending_size <= 0 or size + self._pending_data_size > self._max_pending_size
        ):
            raise errors.OutboundBufferLimitError
        if size > self._max_payload:
            raise errors.MaxPayloadError
        if headers:
            command = b"HPUB %b %b %d %d\r\n%b%b\r\n" % (
                subject.encode(),
                reply.encode(),
                len(headers),
                len(headers) + size,
                headers,
                payload,
            )
        else:
            command = b"PUB %b %b %d\r\n%b\r\n" % (subject.encode(), reply.encode(), size, payload)
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += size
        await self._send_command(command)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()


def wire(nc: Client) -> NciiNatsClient:
    """``nc`` as an ``NciiNatsClient`` (the event log needs its direct paths)."""
    if not isinstance(nc, NciiNatsClient):
        raise TypeError("connect with ncii_events.connection.connect (an NciiNatsClient)")
    return nc


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
) -> NciiNatsClient:
    nc = NciiNatsClient()
    await nc.connect(
        servers=[url],
        name=name,
        user=user,
        password=password,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
    )
    return nc
