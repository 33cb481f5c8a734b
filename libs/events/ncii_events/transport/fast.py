"""The fast transport: the one module that uses nats-py's private API (pinned nats-py 2.16.0).

nats-py spends more per message than the rest of an append or a read: each inbound message
becomes a ``Msg`` with its headers parsed into a dict, goes through a queue to a task per
subscription and then to an ``async`` callback; each publish validates and re-encodes its
headers; each request costs a random token, a timer and ``wait_for``. ``NciiNatsClient`` keeps
nats-py for everything else (connecting, authentication, reconnection and re-subscription, pings,
flushing) and adds:

- ``subscribe_direct``: a subscription whose messages go straight from the protocol parser to a
  plain function, with the raw header block (most callers need one or two header values);
- ``publish_raw``: a publish whose header block the caller built once (``header_block``).

``FastTransport`` is the store's ``Transport`` on top of them. The header parser override keeps
nats-py's rules (names are ASCII tokens without white space; values decoded as UTF-8 with
replacement). Tests compare both parsers, and both publish paths, byte for byte.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import weakref
from collections.abc import Callable

from nats import errors
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, NoStreamResponseError
from nats.protocol.parser import Parser

from ncii_events.transport import MAX_BATCHES_IN_FLIGHT, OnStored
from ncii_events.transport.headers import (
    header_block,
    header_value,
    parse_header_lines,
    status_description,
    status_of,
)

log = logging.getLogger("ncii.nats")

_NOT_IN_SUBJECT = re.compile(r"\s")

DirectHandler = Callable[[bytes, bytes, bytes | None, bytes], None]
"""Called with the subject, the reply subject (``b""`` when none), the raw header block (``None``
when there is none) and the data."""


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
    """``nc`` as an ``NciiNatsClient`` (for code that needs its direct paths)."""
    if not isinstance(nc, NciiNatsClient):
        raise TypeError("connect with NCII_NATS_TRANSPORT=fast (an NciiNatsClient)")
    return nc


ReplyHandler = Callable[[bytes | None, bytes], None]
"""Called with a reply's raw header block (``None`` when it has none) and its data."""
_ReplyFuture = asyncio.Future[tuple[bytes | None, bytes]]


class _Inbox:
    """Replies to this connection's requests, through one wildcard subscription.

    nats-py's ``request`` spends more per call than the rest of an append: a random token from
    the OS, a timer handle and ``wait_for`` per request, then a ``Msg`` through a queue and a
    task. Here a request is a counter, a handler in a dict and one publish; replies go from the
    parser straight to the handler (``subscribe_direct``), and one sweep every quarter second
    ends the requests whose time is up.
    """

    _SWEEP_EVERY = 0.25

    def __init__(self, nc: NciiNatsClient) -> None:
        # Weakly: the connection keeps this alive through its subscription, not the reverse.
        self._nc = weakref.ref(nc)
        self._prefix = ""
        self._prefix_len = 0
        self._starting: asyncio.Lock | None = None
        self._open: dict[
            bytes, tuple[ReplyHandler | _ReplyFuture, Callable[[], None] | None, float]
        ] = {}
        self._tokens = itertools.count(1)
        self._sweep: asyncio.TimerHandle | None = None

    def client(self) -> NciiNatsClient:
        nc = self._nc()
        if nc is None:  # pragma: no cover - the caller holds the connection
            raise RuntimeError("the NATS connection is gone")
        return nc

    async def _start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if not self._prefix:
                prefix = self.client().new_inbox() + "."
                # nats-py re-subscribes after a reconnect; the subscription lives as long as nc.
                await self.client().subscribe_direct(prefix + "*", self._on_reply)
                self._prefix_len = len(prefix)
                self._prefix = prefix

    def _register(
        self,
        target: ReplyHandler | _ReplyFuture,
        on_expiry: Callable[[], None] | None,
        timeout: float,
    ) -> tuple[str, bytes]:
        token = str(next(self._tokens))
        key = token.encode()
        loop = asyncio.get_running_loop()
        self._open[key] = (target, on_expiry, loop.time() + timeout)
        if self._sweep is None:
            self._sweep = loop.call_later(self._SWEEP_EVERY, self._expire)
        return self._prefix + token, key

    async def open(
        self, on_reply: ReplyHandler, on_expiry: Callable[[], None], timeout: float
    ) -> tuple[str, bytes]:
        """A reply subject routed to ``on_reply`` until ``close``; ``on_expiry`` after
        ``timeout`` seconds if still open."""
        if not self._prefix:
            await self._start()
        return self._register(on_reply, on_expiry, timeout)

    def close(self, key: bytes) -> None:
        self._open.pop(key, None)

    async def request(
        self, subject: str, data: bytes, headers: bytes, timeout: float
    ) -> tuple[bytes | None, bytes]:
        """One reply's raw headers and data (nats-py's ``TimeoutError`` when none comes)."""
        if not self._prefix:
            await self._start()
        future: _ReplyFuture = asyncio.get_running_loop().create_future()
        reply_to, key = self._register(future, None, timeout)  # the future itself: no closures
        try:
            await self.client().publish_raw(subject, data, reply=reply_to, headers=headers)
            reply = await future
        finally:
            self.close(key)
        if status_of(reply[0]) == "503":
            raise NoStreamResponseError  # as nats-py's js.publish: no stream takes this subject
        return reply

    def _on_reply(self, subject: bytes, _reply: bytes, headers: bytes | None, data: bytes) -> None:
        entry = self._open.get(subject[self._prefix_len :])
        if entry is None:
            return
        target = entry[0]
        if isinstance(target, asyncio.Future):
            if not target.done():
                target.set_result((headers, data))
        else:
            target(headers, data)

    def _expire(self) -> None:
        self._sweep = None
        if not self._open:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for key, (target, on_expiry, deadline) in list(self._open.items()):
            if deadline <= now:
                self._open.pop(key, None)
                if on_expiry is not None:
                    on_expiry()
                elif isinstance(target, asyncio.Future) and not target.done():
                    target.set_exception(NatsTimeoutError())
        self._sweep = loop.call_later(self._SWEEP_EVERY, self._expire)


class FastTransport:
    """The store's ``Transport`` on ``NciiNatsClient``'s direct paths and one ``_Inbox``."""

    def __init__(self, nc: Client) -> None:
        self.inbox = _Inbox(wire(nc))
        self.batch_slot = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)

    def _client(self) -> NciiNatsClient:
        return self.inbox.client()

    async def request(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float
    ) -> bytes:
        _, reply = await self.inbox.request(subject, data, header_block(headers.items()), timeout)
        return reply

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        await self._client().publish_raw(subject, data, headers=header_block(headers.items()))

    async def direct_get(
        self, stream: str, request: bytes, on_stored: OnStored, timeout: float
    ) -> int:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        last_headers = b""

        def on_reply(headers: bytes | None, data: bytes) -> None:
            nonlocal last_headers
            if done.done():
                return
            status = status_of(headers)
            if status is not None:
                if status in ("204", "404", "408"):
                    done.set_result(None)
                else:
                    done.set_exception(APIError(description=status_description(headers)))
                return
            assert headers is not None  # a stored message always comes with its headers
            on_stored(int(header_value(headers, b"Nats-Sequence") or 0), data)
            last_headers = headers

        def on_expiry() -> None:
            if not done.done():
                done.set_exception(NatsTimeoutError())

        reply_to, key = await self.inbox.open(on_reply, on_expiry, timeout)
        try:
            await self._client().publish_raw(
                f"$JS.API.DIRECT.GET.{stream}", request, reply=reply_to
            )
            await done
        finally:
            self.inbox.close(key)
        pending = header_value(last_headers, b"Nats-Num-Pending") if last_headers else None
        return int(pending or 0)
