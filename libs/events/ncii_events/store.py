"""The event store: the JetStream stream is the log, and the only source of truth.

- ``append`` writes one or several events of one aggregate with an expected version (per-aggregate
  optimistic concurrency through ``Nats-Expected-Last-Subject-Sequence``), idempotent by event id
  (``Nats-Msg-Id``). Several events go in one atomic batch: all of them or none.
- ``load`` reads one aggregate, ``read_case`` a whole case across aggregates in log order,
  ``read_from`` everything from a stream position. Reads use batched Direct Get.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError
from opentelemetry import trace

from ncii_events import tracing
from ncii_events.connection import (
    NciiNatsClient,
    header_block,
    header_value,
    header_value_is_safe,
    status_description,
    status_of,
    wire,
)
from ncii_events.crypto import CaseKeys, decrypt_field, encrypt_field
from ncii_events.envelope import GENESIS, Actor, Envelope, canonical_event_json, utc_now
from ncii_events.ids import uuid7, uuid7_str
from ncii_events.registry import EVENTS, DomainEvent, EventRegistry, UnknownEventError
from ncii_events.stream import CASES, StreamSpec

WRONG_LAST_SEQUENCE = 10071
BATCH_DUPLICATE_MSG_ID = 10201
READ_BATCH = 1000
MAX_ATOMIC_BATCH = 1000
PUBLISH_TIMEOUT = 10.0
DIRECT_GET_TIMEOUT = 10.0
MAX_BATCHES_IN_FLIGHT = 32
"""Atomic batches this process keeps open at once: the server refuses more than 50 per stream."""

_tracer = trace.get_tracer("ncii.events")


class ConcurrencyError(Exception):
    """Another writer appended to the aggregate since it was read: reload and retry, or 409."""

    def __init__(self, ref: AggregateRef, expected: int, actual: int | None) -> None:
        super().__init__(f"{ref.aggregate} changed since version {expected} (now {actual})")
        self.ref = ref
        self.expected = expected
        self.actual = actual


class AppendError(RuntimeError):
    pass


_TOKEN = re.compile(r"[^.*>\s]+")


@dataclass(frozen=True)
class AggregateRef:
    case_id: str
    aggregate: str
    aggregate_id: str

    def __post_init__(self) -> None:
        # Each is one token of the subject: a dot or a wildcard would reach other aggregates.
        for value in (self.case_id, self.aggregate, self.aggregate_id):
            if not _TOKEN.fullmatch(value):
                raise ValueError("case, aggregate and aggregate ids are single subject tokens")


@dataclass(frozen=True)
class Version:
    """Where an aggregate stands: the stream sequence and hash of its last event."""

    seq: int = 0
    hash: str = GENESIS
    count: int = 0

    @classmethod
    def of(cls, events: Sequence[RecordedEvent]) -> Version:
        if not events:
            return NEW
        return cls(events[-1].seq, events[-1].envelope.hash, len(events))


NEW = Version()


@dataclass(frozen=True)
class Cause:
    """What a command or reaction carries into the events it produces."""

    actor: Actor
    correlation_id: str
    causation_id: str


_NO_FIELDS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    seq: int
    envelope: Envelope
    event: DomainEvent | None
    """The payload, upcast to the current version; ``None`` when the type is unknown here."""
    erased_fields: frozenset[str] = _NO_FIELDS
    """Personal fields whose case key was destroyed: they read as ``None`` for ever."""
    withheld_fields: frozenset[str] = _NO_FIELDS
    """Personal fields left encrypted because the reader did not ask to decrypt."""

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def case_id(self) -> str:
        return self.envelope.case_id


@dataclass(frozen=True, slots=True)
class _Encoded:
    """An envelope and its canonical bytes, as published."""

    envelope: Envelope
    data: bytes


_ACTOR_FIELDS = tuple(f.name for f in fields(Actor))
_HASH_BEFORE = b',"occurred_at":'


def _with_hash(unhashed: bytes, body: dict[str, Any], digest: str) -> bytes:
    """The canonical encoding of ``body`` plus ``hash``, from the encoding without it.

    Keys are sorted, so ``"hash"`` goes right before ``"occurred_at"``. Every top-level value
    before that key is a string or the actor's flat object of strings, in which a quote is always
    escaped: the first ``,"occurred_at":`` is the top-level key. Same bytes as
    ``canonical_event_json({**body, "hash": digest})``, without encoding the envelope a second time.
    """
    at = unhashed.find(_HASH_BEFORE)
    if at < 0:  # not the envelope shape this relies on: encode it again
        return canonical_event_json({**body, "hash": digest})
    return b"".join((unhashed[:at], b',"hash":"', digest.encode(), b'"', unhashed[at:]))


_PUBLISH_ONE_HEADERS = (
    b"NATS/1.0\r\nNats-Msg-Id: %b\r\nNats-Expected-Last-Subject-Sequence: %d\r\n"
    b"Nats-Expected-Last-Subject-Sequence-Subject: %b\r\n\r\n"
)
"""``header_block`` of an append of one event, as a template (it is built once per append)."""


def _header_safe(value: str) -> str:
    if not header_value_is_safe(value):
        raise AppendError("an event id must be one line without padding")
    return value


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
        self.batch_slot = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)

    @classmethod
    def of(cls, nc: NciiNatsClient) -> _Inbox:
        inbox = _INBOXES.get(nc)
        if inbox is None:
            inbox = _INBOXES[nc] = cls(nc)
        return inbox

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


_INBOXES: weakref.WeakKeyDictionary[NciiNatsClient, _Inbox] = weakref.WeakKeyDictionary()


class EventStore:
    def __init__(
        self,
        nc: NATS,
        keys: CaseKeys | None,
        *,
        registry: EventRegistry = EVENTS,
        spec: StreamSpec = CASES,
    ) -> None:
        self._nc = wire(nc)
        self._inbox = _Inbox.of(self._nc)
        self._js = nc.jetstream()
        self._keys = keys
        self._registry = registry
        self.spec = spec

    # -- writing -------------------------------------------------------------------------------

    async def append(
        self,
        ref: AggregateRef,
        events: Sequence[DomainEvent],
        *,
        expected: Version,
        cause: Cause,
        event_ids: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        if not events:
            return []
        if len(events) > MAX_ATOMIC_BATCH:
            raise AppendError(f"at most {MAX_ATOMIC_BATCH} events in one append")
        if event_ids is not None and len(event_ids) != len(events):
            raise AppendError("one event id per event")
        span = (
            _tracer.start_as_current_span(
                "ncii.events.append",
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "ncii.aggregate": ref.aggregate,
                    "ncii.event_types": ",".join(e.event_type for e in events),
                    "messaging.batch.message_count": len(events),
                },
            )
            if tracing.exporting()
            else contextlib.nullcontext()
        )
        with span:
            encoded = await self._encode(ref, events, expected, cause, event_ids)
            if len(encoded) == 1:
                seqs = [await self._publish_one(ref, encoded[0], expected)]
            else:
                seqs = await self._publish_batch(ref, encoded, expected)
            written = [s for s in seqs if s is not None]
            if len(written) != len(encoded):
                # An earlier attempt with the same event ids was already written: return that.
                return await self._already_written(ref, [e.envelope.event_id for e in encoded])
            return [
                RecordedEvent(seq=s, envelope=e.envelope, event=ev)
                for s, e, ev in zip(written, encoded, events, strict=True)
            ]

    async def _encode(
        self,
        ref: AggregateRef,
        events: Sequence[DomainEvent],
        expected: Version,
        cause: Cause,
        event_ids: Sequence[str] | None,
    ) -> list[_Encoded]:
        traceparent = _traceparent()
        actor = cause.actor
        actor_doc = {name: getattr(actor, name) for name in _ACTOR_FIELDS}  # asdict, minus copies
        prev = expected.hash
        out: list[_Encoded] = []
        for i, ev in enumerate(events):
            if not self._registry.is_known(ev.event_type):
                raise UnknownEventError(f"{ev.event_type} is not registered")
            if ev.aggregate != ref.aggregate:
                raise AppendError(f"{ev.event_type} belongs to {ev.aggregate}, not {ref.aggregate}")
            event_id = event_ids[i] if event_ids is not None else uuid7_str()
            payload = ev.model_dump(mode="json")
            for name in self._registry.personal_fields(ev.event_type):
                if payload.get(name) is not None:
                    if self._keys is None:
                        raise AppendError("this store has no case keys to encrypt personal data")
                    key = await self._keys.key_for_write(ref.case_id)
                    payload[name] = encrypt_field(key, ref.case_id, event_id, name, payload[name])
            occurred_at = utc_now()
            body: dict[str, Any] = {
                "event_id": event_id,
                "type": ev.event_type,
                "schema_version": ev.version,
                "case_id": ref.case_id,
                "aggregate": ref.aggregate,
                "aggregate_id": ref.aggregate_id,
                "occurred_at": occurred_at,
                "actor": actor_doc,
                "correlation_id": cause.correlation_id,
                "causation_id": cause.causation_id,
                "traceparent": traceparent,
                "payload": payload,
                "prev_hash": prev,
            }
            unhashed = canonical_event_json(body)
            digest = hashlib.sha256(unhashed).hexdigest()  # = envelope_hash(body)
            envelope = Envelope(
                event_id=event_id,
                type=ev.event_type,
                schema_version=ev.version,
                case_id=ref.case_id,
                aggregate=ref.aggregate,
                aggregate_id=ref.aggregate_id,
                occurred_at=occurred_at,
                actor=actor,
                correlation_id=cause.correlation_id,
                causation_id=cause.causation_id,
                traceparent=traceparent,
                payload=payload,
                prev_hash=prev,
                hash=digest,
            )
            out.append(_Encoded(envelope, _with_hash(unhashed, body, digest)))
            prev = digest
        return out

    def _subject(self, ref: AggregateRef, event_type: str) -> str:
        return self.spec.subject(ref.case_id, ref.aggregate, ref.aggregate_id, event_type)

    def _occ_headers(self, ref: AggregateRef, expected: Version) -> list[tuple[str, str]]:
        return [
            ("Nats-Expected-Last-Subject-Sequence", str(expected.seq)),
            (
                "Nats-Expected-Last-Subject-Sequence-Subject",
                self.spec.aggregate_filter(ref.case_id, ref.aggregate, ref.aggregate_id),
            ),
        ]

    async def _publish_one(self, ref: AggregateRef, enc: _Encoded, expected: Version) -> int | None:
        env = enc.envelope
        headers = _PUBLISH_ONE_HEADERS % (
            _header_safe(env.event_id).encode(),
            expected.seq,
            self.spec.aggregate_filter(ref.case_id, ref.aggregate, ref.aggregate_id).encode(),
        )
        _, data = await self._inbox.request(
            self._subject(ref, env.type), enc.data, headers, PUBLISH_TIMEOUT
        )
        ack = orjson.loads(data)
        error = ack.get("error")
        if error:
            try:
                APIError.from_error(error)  # raises the error nats-py's js.publish would raise
            except BadRequestError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    if await self._already_written(ref, [env.event_id], missing_ok=True):
                        return None
                    raise ConcurrencyError(
                        ref, expected.seq, _actual_seq(exc.description)
                    ) from None
                raise
        return None if ack.get("duplicate") else int(ack["seq"])

    async def _publish_batch(
        self, ref: AggregateRef, encoded: Sequence[_Encoded], expected: Version
    ) -> list[int | None]:
        async with self._inbox.batch_slot:
            return await self._publish_batch_now(ref, encoded, expected)

    async def _publish_batch_now(
        self, ref: AggregateRef, encoded: Sequence[_Encoded], expected: Version
    ) -> list[int | None]:
        batch_id = str(uuid7())
        last = len(encoded)
        for i, enc in enumerate(encoded, start=1):
            env = enc.envelope
            headers = [
                ("Nats-Batch-Id", batch_id),
                ("Nats-Batch-Sequence", str(i)),
                ("Nats-Msg-Id", env.event_id),
            ]
            if i == 1:
                headers += self._occ_headers(ref, expected)
            subject = self._subject(ref, env.type)
            if i < last:
                await self._nc.publish_raw(subject, enc.data, headers=header_block(headers))
                continue
            headers.append(("Nats-Batch-Commit", "1"))
            try:
                _, data = await self._inbox.request(
                    subject, enc.data, header_block(headers), PUBLISH_TIMEOUT
                )
            except NatsTimeoutError:
                raise AppendError("the log did not confirm the batch in time; retry") from None
        body = orjson.loads(data)
        error = body.get("error")
        if error:
            code = error.get("err_code")
            if code == BATCH_DUPLICATE_MSG_ID:
                return [None]
            if code == WRONG_LAST_SEQUENCE:
                envs = [e.envelope for e in encoded]
                if await self._already_written(ref, [e.event_id for e in envs], missing_ok=True):
                    return [None]
                raise ConcurrencyError(ref, expected.seq, _actual_seq(error.get("description")))
            raise AppendError(f"the log refused the batch: {error.get('description')}")
        end = int(body["seq"])
        return list(range(end - last + 1, end + 1))

    async def _already_written(
        self, ref: AggregateRef, event_ids: Sequence[str], *, missing_ok: bool = False
    ) -> list[RecordedEvent]:
        wanted = set(event_ids)
        found = [e for e in await self.load(ref) if e.envelope.event_id in wanted]
        if len(found) != len(wanted):
            if missing_ok:
                return []
            raise AppendError("the log reported a duplicate but the events are not in it")
        return found

    # -- reading -------------------------------------------------------------------------------

    async def load(self, ref: AggregateRef, *, decrypt: bool = True) -> list[RecordedEvent]:
        """Every event of one aggregate, oldest first."""
        filt = self.spec.aggregate_filter(ref.case_id, ref.aggregate, ref.aggregate_id)
        return await self._read(filt, 1, None, decrypt=decrypt, case_id=ref.case_id)

    async def read_case(
        self, case_id: str, *, decrypt: bool = True, up_to_seq: int | None = None
    ) -> list[RecordedEvent]:
        """Every event of a case across its aggregates, in log order."""
        if not _TOKEN.fullmatch(case_id):
            raise ValueError("a case id is a single subject token")
        return await self._read(
            self.spec.case_filter(case_id), 1, up_to_seq, decrypt=decrypt, case_id=case_id
        )

    async def read_from(
        self,
        seq: int,
        *,
        limit: int = READ_BATCH,
        decrypt: bool = False,
        subject: str | None = None,
        up_to_seq: int | None = None,
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events from position ``seq`` (up to ``up_to_seq``), of the whole
        stream or of the subjects ``subject`` matches."""
        subject_filter = subject or self.spec.all_subjects
        return await self._read(subject_filter, seq, up_to_seq, decrypt=decrypt, limit=limit)

    async def get(self, seq: int, *, decrypt: bool = True) -> RecordedEvent | None:
        events = await self._read(self.spec.all_subjects, seq, seq, decrypt=decrypt, limit=1)
        return events[0] if events and events[0].seq == seq else None

    async def last_sequence(self) -> int:
        info = await self._js.stream_info(self.spec.name)
        return int(info.state.last_seq)

    async def _read(
        self,
        subject_filter: str,
        start: int,
        up_to_seq: int | None,
        *,
        decrypt: bool,
        limit: int | None = None,
        case_id: str | None = None,
    ) -> list[RecordedEvent]:
        keys: dict[str, bytes | None] = {}
        if case_id is not None and decrypt and self._keys is not None and self.spec.per_case:
            keys[case_id] = await self._keys.key_for_read(case_id)

        def decode_now(seq: int, data: bytes) -> RecordedEvent | None:
            # Called as messages arrive, so decoding overlaps the server's sending. Whatever
            # cannot be decoded here (a key not fetched yet, an error) is decoded afterwards.
            try:
                return self._decoded(seq, Envelope.from_json(data), decrypt, keys)
            except Exception:
                return None

        got: list[tuple[int, bytes, RecordedEvent | None]] = []
        seq = start
        while limit is None or len(got) < limit:
            want = READ_BATCH if limit is None else min(READ_BATCH, limit - len(got))
            chunk, pending = await self._direct_batch(
                subject_filter, seq, want, up_to_seq, decode_now
            )
            got.extend(chunk)
            if not chunk or pending == 0:
                break
            seq = chunk[-1][0] + 1
        return [
            event if event is not None else await self._decode(s, data, decrypt, keys)
            for s, data, event in got
        ]

    async def decode_message(self, seq: int, data: bytes, *, decrypt: bool) -> RecordedEvent:
        """Decode one stored message (as a consumer receives it)."""
        return await self._decode(seq, data, decrypt, {})

    async def _direct_batch(
        self,
        subject_filter: str,
        seq: int,
        batch: int,
        up_to_seq: int | None,
        decode_now: Callable[[int, bytes], RecordedEvent | None],
    ) -> tuple[list[tuple[int, bytes, RecordedEvent | None]], int]:
        request: dict[str, Any] = {"seq": seq, "next_by_subj": subject_filter, "batch": batch}
        if up_to_seq is not None:
            request["up_to_seq"] = up_to_seq
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        out: list[tuple[int, bytes, RecordedEvent | None]] = []
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
            at = int(header_value(headers, b"Nats-Sequence") or 0)
            out.append((at, data, decode_now(at, data)))
            last_headers = headers

        def on_expiry() -> None:
            if not done.done():
                done.set_exception(NatsTimeoutError())

        reply_to, key = await self._inbox.open(on_reply, on_expiry, DIRECT_GET_TIMEOUT)
        try:
            await self._nc.publish_raw(
                f"$JS.API.DIRECT.GET.{self.spec.name}", orjson.dumps(request), reply=reply_to
            )
            await done
        finally:
            self._inbox.close(key)
        pending = header_value(last_headers, b"Nats-Num-Pending") if last_headers else None
        return out, int(pending or 0)

    async def _decode(
        self, seq: int, data: bytes, decrypt: bool, keys: dict[str, bytes | None]
    ) -> RecordedEvent:
        env = Envelope.from_json(data)
        recorded = self._decoded(seq, env, decrypt, keys)
        if recorded is None:  # the case's key is needed and not fetched yet
            assert self._keys is not None
            keys[env.case_id] = await self._keys.key_for_read(env.case_id)
            recorded = self._decoded(seq, env, decrypt, keys)
            assert recorded is not None
        return recorded

    def _decoded(
        self, seq: int, env: Envelope, decrypt: bool, keys: dict[str, bytes | None]
    ) -> RecordedEvent | None:
        """The event, or ``None`` when it needs a case key that is not in ``keys`` yet."""
        registry = self._registry
        if not registry.is_known(env.type):
            return RecordedEvent(seq=seq, envelope=env, event=None)
        payload = env.payload
        erased = withheld = _NO_FIELDS
        personal = registry.personal_fields(env.type)
        if personal:
            payload = dict(payload)  # the envelope keeps what was stored
            erased_names: set[str] = set()
            withheld_names: set[str] = set()
            for name in personal:
                token = payload.get(name)
                if token is None:
                    continue
                payload[name] = None
                if not decrypt or self._keys is None:
                    withheld_names.add(name)
                    continue
                if env.case_id not in keys:
                    return None
                key = keys[env.case_id]
                if key is None:
                    erased_names.add(name)
                else:
                    payload[name] = decrypt_field(key, env.case_id, env.event_id, name, token)
            if erased_names:
                erased = frozenset(erased_names)
            if withheld_names:
                withheld = frozenset(withheld_names)
        event = registry.decode(env.type, env.schema_version, payload)
        return RecordedEvent(
            seq=seq, envelope=env, event=event, erased_fields=erased, withheld_fields=withheld
        )


def _traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, as the propagator writes it (without the
    propagator's machinery: baggage is not stored in events)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def _actual_seq(description: str | None) -> int | None:
    if description and ":" in description:
        tail = description.rsplit(":", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    return None
