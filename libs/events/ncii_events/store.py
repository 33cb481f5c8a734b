"""The event store: the JetStream stream is the log, and the only source of truth.

- ``append`` writes one or several events of one aggregate with an expected version (per-aggregate
  optimistic concurrency through ``Nats-Expected-Last-Subject-Sequence``), idempotent by event id
  (``Nats-Msg-Id``). Several events go in one atomic batch: all of them or none.
- Every event is signed by the store's ``SigningKey`` (the service's, or the operator's for the
  CLI; decision 23): a store without one reads, but refuses to append.
- ``load`` reads one aggregate, ``read_case`` a whole case across aggregates in log order,
  ``read_from`` everything from a stream position. Reads use batched Direct Get; an aggregate or a
  case subject by subject, so that the server finds them through its subject index
  (``MULTI_LAST_BATCH``).

It talks to NATS through a ``Transport`` (``ncii_events.transport``), chosen by the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence

import orjson
from nats.aio.client import Client as NATS
from nats.errors import BadHeaderError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, BadRequestError
from ncii_contracts.base import DomainEvent
from opentelemetry import trace

from ncii_events import codec, metrics, tracing
from ncii_events.crypto import CaseKeys, encrypt_field
from ncii_events.envelope import Envelope
from ncii_events.ids import uuid7, uuid7_str
from ncii_events.model import (
    NEW,
    TOKEN,
    AggregateRef,
    AppendError,
    Cause,
    ConcurrencyError,
    RecordedEvent,
    UndecodableEventError,
    Version,
)
from ncii_events.registry import EventRegistry, UnknownEventError
from ncii_events.signing import SigningKey
from ncii_events.stream import CASES, StreamSpec
from ncii_events.transport import MAX_BATCHES_IN_FLIGHT, transport_for
from ncii_events.transport.headers import header_value_is_safe

__all__ = [
    "MAX_BATCHES_IN_FLIGHT",
    "NEW",
    "AggregateRef",
    "AppendError",
    "Cause",
    "ConcurrencyError",
    "Decide",
    "EventStore",
    "RecordedEvent",
    "UndecodableEventError",
    "Version",
    "append_decided",
    "append_once",
]

WRONG_LAST_SEQUENCE = 10071
BATCH_DUPLICATE_MSG_ID = 10201
READ_BATCH = 1000
MULTI_LAST_BATCH = 256
"""An aggregate or a case is read subject by subject (decision 0053): the stream's subjects
that its filter matches, with their counts, and each one's last event (``multi_last``), both
found through the server's subject index, at once; a subject holding more than one event is
then read with its literal subject. A batched Direct Get with a wildcard filter instead makes
the server count what is pending after the start, and a wildcard ``next_by_subj`` steps
through every message in between: both scan the log (4-8 ms of server CPU per read at 60,000
events, growing with the log). A filter matching more subjects than this is read in
batches, as before."""
MAX_ATOMIC_BATCH = 1000
PUBLISH_TIMEOUT = 10.0
DIRECT_GET_TIMEOUT = 10.0

_tracer = trace.get_tracer("ncii.events")


CONFLICT_ATTEMPTS = 5
"""How many times a command that lost a race on its aggregate is reloaded and decided again."""


async def after_conflict(attempt: int) -> None:
    """Pause before the next attempt of a command that lost a race (``ConcurrencyError``): a
    random share of a delay that doubles with each attempt, so writers that collided spread
    out instead of colliding again in step."""
    await asyncio.sleep(random.uniform(0.0, 0.01 * 2**attempt))


def _header_safe(value: str) -> str:
    if not header_value_is_safe(value):
        raise AppendError("an event id must be one line without padding")
    return value


class EventStore:
    def __init__(
        self,
        nc: NATS,
        keys: CaseKeys | None,
        *,
        registry: EventRegistry,
        spec: StreamSpec = CASES,
        signing: SigningKey | None = None,
    ) -> None:
        self._transport = transport_for(nc)
        self._js = nc.jetstream()
        self._keys = keys
        self._registry = registry
        self._signing = signing
        self.spec = spec

    @property
    def signing(self) -> SigningKey | None:
        """The key that signs what this store appends (``None``: it only reads)."""
        return self._signing

    @property
    def registry(self) -> EventRegistry:
        """The events this store decodes (built by the program from the contracts it reads)."""
        return self._registry

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
        if self._signing is None:
            raise AppendError("this store has no signing key: it reads the log, it cannot write")
        span = (
            _tracer.start_as_current_span(
                "ncii.events.append",
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "ncii.aggregate": ref.aggregate,
                    "ncii.case_id": ref.case_id,
                    "ncii.event_types": ",".join(e.event_type for e in events),
                    "messaging.batch.message_count": len(events),
                },
                # an exception's message may quote a value: neither recorded nor the status's
                record_exception=False,
                set_status_on_exception=False,
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
            if metrics.enabled():
                metrics.appended(
                    [e.envelope.type for n, e in zip(seqs, encoded, strict=True) if n is not None]
                )
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
    ) -> list[codec.Encoded]:
        traceparent = codec.traceparent()
        actor = cause.actor
        # asdict, minus the copies
        actor_doc = {name: getattr(actor, name) for name in codec.ACTOR_FIELDS}
        prev = expected.hash
        out: list[codec.Encoded] = []
        for i, ev in enumerate(events):
            if not self._registry.is_known(ev.event_type):
                raise UnknownEventError(f"{ev.event_type} is not registered")
            if ev.aggregate != ref.aggregate:
                raise AppendError(f"{ev.event_type} belongs to {ev.aggregate}, not {ref.aggregate}")
            if self.spec not in ev.streams:  # its contract (and the AsyncAPI) name its streams
                raise AppendError(f"{ev.event_type} is not published on stream {self.spec.name}")
            event_id = event_ids[i] if event_ids is not None else uuid7_str()
            payload = ev.model_dump(mode="json")
            for name in self._registry.personal_fields(ev.event_type):
                if payload.get(name) is not None:
                    if self._keys is None:
                        raise AppendError("this store has no case keys to encrypt personal data")
                    key = await self._keys.key_for_write(ref.case_id)
                    payload[name] = encrypt_field(key, ref.case_id, event_id, name, payload[name])
            encoded = codec.encode(
                ref,
                ev,
                payload,
                event_id=event_id,
                prev_hash=prev,
                cause=cause,
                actor_doc=actor_doc,
                traceparent=traceparent,
                signing=self._signing,
                stream=self.spec.name,
            )
            out.append(encoded)
            prev = encoded.envelope.hash
        return out

    def _subject(self, ref: AggregateRef, event_type: str) -> str:
        return self.spec.subject(ref.case_id, ref.aggregate, ref.aggregate_id, event_type)

    def _occ_headers(self, ref: AggregateRef, expected: Version) -> dict[str, str]:
        return {
            "Nats-Expected-Last-Subject-Sequence": str(expected.seq),
            "Nats-Expected-Last-Subject-Sequence-Subject": self.spec.aggregate_filter(
                ref.case_id, ref.aggregate, ref.aggregate_id
            ),
        }

    async def _publish_one(
        self, ref: AggregateRef, enc: codec.Encoded, expected: Version
    ) -> int | None:
        env = enc.envelope
        headers = {"Nats-Msg-Id": _header_safe(env.event_id), **self._occ_headers(ref, expected)}
        data = await self._transport.request(
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
                        ref, expected.seq, codec.actual_seq(exc.description)
                    ) from None
                raise
        return None if ack.get("duplicate") else int(ack["seq"])

    async def _publish_batch(
        self, ref: AggregateRef, encoded: Sequence[codec.Encoded], expected: Version
    ) -> list[int | None]:
        async with self._transport.batch_slot:
            return await self._publish_batch_now(ref, encoded, expected)

    async def _publish_batch_now(
        self, ref: AggregateRef, encoded: Sequence[codec.Encoded], expected: Version
    ) -> list[int | None]:
        for enc in encoded:
            # What header_block refuses; nats-py's publish would strip or rewrite it instead.
            if not header_value_is_safe(enc.envelope.event_id):
                raise BadHeaderError("Nats-Msg-Id: the value must be one line without padding")
        batch_id = str(uuid7())
        last = len(encoded)
        for i, enc in enumerate(encoded, start=1):
            env = enc.envelope
            headers = {
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(i),
                "Nats-Msg-Id": env.event_id,
            }
            if i == 1:
                headers.update(self._occ_headers(ref, expected))
            subject = self._subject(ref, env.type)
            if i < last:
                await self._transport.publish(subject, enc.data, headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            try:
                data = await self._transport.request(subject, enc.data, headers, PUBLISH_TIMEOUT)
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
                raise ConcurrencyError(
                    ref, expected.seq, codec.actual_seq(error.get("description"))
                )
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

    def _get_request(self, seq: int, subject_filter: str, batch: int) -> bytes:
        """A batched Direct Get from ``seq`` of what ``subject_filter`` matches. A filter that
        is the whole stream is left out: the server would count what it matches after ``seq``,
        a scan of the log (``MULTI_LAST_BATCH``)."""
        request: dict[str, object] = {"seq": seq, "batch": batch}
        if subject_filter != self.spec.all_subjects:
            request["next_by_subj"] = subject_filter
        return orjson.dumps(request)

    async def load(self, ref: AggregateRef, *, decrypt: bool = True) -> list[RecordedEvent]:
        """Every event of one aggregate, oldest first."""
        filt = self.spec.aggregate_filter(ref.case_id, ref.aggregate, ref.aggregate_id)
        return await self._read(filt, 1, None, decrypt=decrypt, case_id=ref.case_id)

    async def read_case(
        self, case_id: str, *, decrypt: bool = True, up_to_seq: int | None = None
    ) -> list[RecordedEvent]:
        """Every event of a case across its aggregates, in log order."""
        if not TOKEN.fullmatch(case_id):
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

    async def read_envelopes(
        self, seq: int, *, limit: int = READ_BATCH, case_id: str | None = None
    ) -> list[tuple[int, Envelope | None]]:
        """Up to ``limit`` stored envelopes from position ``seq`` (of one case, or the whole
        stream), not decoded: what an auditor verifies. A payload this program's contracts
        refuse is still checked; ``None`` where the bytes are not an envelope at all."""
        subject_filter = self.spec.case_filter(case_id) if case_id else self.spec.all_subjects
        got: list[tuple[int, Envelope | None]] = []

        def on_stored(stored_seq: int, data: bytes) -> None:
            try:
                got.append((stored_seq, Envelope.from_json(data)))
            except Exception:  # whatever the bytes are, the auditor is told where they are
                got.append((stored_seq, None))

        while len(got) < limit:
            want = min(READ_BATCH, limit - len(got))
            before = len(got)
            pending = await self._transport.direct_get(
                self.spec.name,
                self._get_request(seq, subject_filter, want),
                on_stored,
                DIRECT_GET_TIMEOUT,
            )
            if len(got) == before or pending == 0:
                break
            seq = got[-1][0] + 1
        return got

    async def read_stored(self, seq: int, *, limit: int = READ_BATCH) -> list[tuple[int, bytes]]:
        """Up to ``limit`` stored messages from position ``seq``, as bytes: what ``ncii audit
        verify`` hands to its worker processes (parsing there, not here)."""
        got: list[tuple[int, bytes]] = []

        def on_stored(stored_seq: int, data: bytes) -> None:
            got.append((stored_seq, bytes(data)))

        while len(got) < limit:
            want = min(READ_BATCH, limit - len(got))
            before = len(got)
            pending = await self._transport.direct_get(
                self.spec.name,
                self._get_request(seq, self.spec.all_subjects, want),
                on_stored,
                DIRECT_GET_TIMEOUT,
            )
            if len(got) == before or pending == 0:
                break
            seq = got[-1][0] + 1
        return got

    async def get(self, seq: int, *, decrypt: bool = True) -> RecordedEvent | None:
        events = await self._read(self.spec.all_subjects, seq, seq, decrypt=decrypt, limit=1)
        return events[0] if events and events[0].seq == seq else None

    async def last_sequence(self) -> int:
        """The stream's last sequence. Runners ask it once per wake-up, so the reply is read
        for that one number (nats-py's ``stream_info`` builds the whole configuration)."""
        data = await self._transport.request(
            f"$JS.API.STREAM.INFO.{self.spec.name}", b"", {}, DIRECT_GET_TIMEOUT
        )
        info = orjson.loads(data)
        if "error" in info:
            APIError.from_error(info["error"])  # raises the error nats-py would
        return int(info["state"]["last_seq"])

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
        have_keys = keys if self._keys is not None else None
        registry = self._registry
        got: list[tuple[int, bytes, RecordedEvent | None]] = []

        def on_stored(seq: int, data: bytes) -> None:
            if up_to_seq is not None and seq > up_to_seq:
                return  # the server bounds a batch by ``up_to_seq`` only with ``multi_last``
            # Decoded as messages arrive, so decoding overlaps the server's sending. Whatever
            # cannot be decoded here (a key not fetched yet, an error) is decoded afterwards.
            try:
                event = codec.decode(
                    registry, seq, Envelope.from_json(data), decrypt=decrypt, keys=have_keys
                )
            except Exception:
                event = None
            got.append((seq, data, event))

        if (
            case_id is not None
            and limit is None
            and await self._read_by_subject(subject_filter, start, up_to_seq, on_stored)
        ):
            got.sort(key=lambda item: item[0])  # the subjects' reads interleave
            got[:] = [item for i, item in enumerate(got) if i == 0 or got[i - 1][0] != item[0]]
        else:
            await self._read_batches(subject_filter, start, up_to_seq, limit, on_stored, got)
        return [
            event if event is not None else await self._decode_or_name(s, data, decrypt, keys)
            for s, data, event in got
        ]

    async def _read_batches(
        self,
        subject_filter: str,
        start: int,
        up_to_seq: int | None,
        limit: int | None,
        on_stored: Callable[[int, bytes], None],
        got: list[tuple[int, bytes, RecordedEvent | None]],
    ) -> None:
        seq = start
        while limit is None or len(got) < limit:
            want = READ_BATCH if limit is None else min(READ_BATCH, limit - len(got))
            if up_to_seq is not None:
                if seq > up_to_seq:
                    break
                want = min(want, up_to_seq - seq + 1)
            before = len(got)
            pending = await self._transport.direct_get(
                self.spec.name,
                self._get_request(seq, subject_filter, want),
                on_stored,
                DIRECT_GET_TIMEOUT,
            )
            if len(got) == before or pending == 0:
                break
            seq = got[-1][0] + 1

    async def _read_by_subject(
        self,
        subject_filter: str,
        start: int,
        up_to_seq: int | None,
        on_stored: Callable[[int, bytes], None],
    ) -> bool:
        """Every event ``subject_filter`` matches from ``start`` (up to ``up_to_seq``), handed
        to ``on_stored`` subject by subject (see ``MULTI_LAST_BATCH``); False, with nothing
        handed, when the filter matches too many subjects for one answer.

        Two requests at once: the stream's subjects with their counts and its last position
        (the read is the log as of that position: a subject made later is not in the list,
        and nothing after it is kept), and the last event of each subject. A subject that
        held one event then, and whose last event is within that position, is that event;
        any other subject is read on its own, with its literal subject, up to the position."""
        lasts: list[tuple[int, bytes]] = []
        request: dict[str, object] = {"multi_last": [subject_filter], "batch": MULTI_LAST_BATCH}
        if up_to_seq is not None:
            request["up_to_seq"] = up_to_seq
        try:
            _, state = await asyncio.gather(
                self._transport.direct_get(
                    self.spec.name,
                    orjson.dumps(request),
                    lambda seq, data: lasts.append((seq, bytes(data))),
                    DIRECT_GET_TIMEOUT,
                ),
                self._subject_state(subject_filter),
            )
        except APIError:
            return False  # too many subjects for the server's answer
        if state is None:
            return False
        counts, last_seq = state
        if len(lasts) >= MULTI_LAST_BATCH or len(counts) >= MULTI_LAST_BATCH:
            return False
        bound = last_seq if up_to_seq is None else min(up_to_seq, last_seq)
        last_of: dict[str, tuple[int, bytes]] = {}
        for seq, data in lasts:
            if seq > bound:
                continue
            # the store publishes each event on the subject its envelope names (``_subject``)
            try:
                doc = orjson.loads(data)
                subject = self.spec.subject(
                    doc["case_id"], doc["aggregate"], doc["aggregate_id"], doc["type"]
                )
            except Exception:  # not an envelope: whatever it is, the batches read it
                return False
            last_of[subject] = (seq, data)
        to_read: list[str] = []
        for subject, count in counts.items():
            known = last_of.get(subject)
            if count == 1 and known is not None:
                if known[0] >= start:
                    on_stored(*known)
            else:
                to_read.append(subject)

        async def read(subject: str) -> None:
            """The subject's events up to the bound (a literal filter: no scan)."""
            seen: list[int] = []

            def keep(stored_seq: int, data: bytes) -> None:
                if stored_seq <= bound:
                    seen.append(stored_seq)
                    on_stored(stored_seq, data)

            seq = start
            while seq <= bound:
                seen.clear()
                request = self._get_request(seq, subject, min(READ_BATCH, bound - seq + 1))
                pending = await self._transport.direct_get(
                    self.spec.name, request, keep, DIRECT_GET_TIMEOUT
                )
                if not seen or pending == 0:
                    return
                seq = seen[-1] + 1

        await asyncio.gather(*(read(subject) for subject in to_read))
        return True

    async def _subject_state(self, subject_filter: str) -> tuple[dict[str, int], int] | None:
        """Events per subject that ``subject_filter`` matches (the stream's own count, from its
        subject index) and the stream's last position, or None when the server does not say."""
        try:
            data = await self._transport.request(
                f"$JS.API.STREAM.INFO.{self.spec.name}",
                orjson.dumps({"subjects_filter": subject_filter}),
                {},
                DIRECT_GET_TIMEOUT,
            )
            state = orjson.loads(data)["state"]
            counts, last_seq = state.get("subjects") or {}, int(state["last_seq"])
        except (APIError, KeyError, TypeError, ValueError):
            return None
        return (counts, last_seq) if isinstance(counts, dict) else None

    async def _decode_or_name(
        self, seq: int, data: bytes, decrypt: bool, keys: dict[str, bytes | None]
    ) -> RecordedEvent:
        """Decode, or raise ``UndecodableEventError`` naming the event (a NATS or network error
        while fetching its case key is not the event's fault: it propagates as it is)."""
        try:
            return await self._decode(seq, data, decrypt, keys)
        except (NatsError, OSError, TimeoutError):
            raise
        except Exception as exc:
            event_id: str | None = None
            event_type: str | None = None
            with contextlib.suppress(Exception):  # the envelope itself may be what is broken
                env = Envelope.from_json(data)
                event_id, event_type = env.event_id, env.type
            raise UndecodableEventError(seq, event_id, event_type, exc) from exc

    async def decode_message(self, seq: int, data: bytes, *, decrypt: bool) -> RecordedEvent:
        """Decode one stored message (as a consumer receives it)."""
        return await self._decode(seq, data, decrypt, {})

    async def _decode(
        self, seq: int, data: bytes, decrypt: bool, keys: dict[str, bytes | None]
    ) -> RecordedEvent:
        env = Envelope.from_json(data)
        have_keys = keys if self._keys is not None else None
        recorded = codec.decode(self._registry, seq, env, decrypt=decrypt, keys=have_keys)
        if recorded is None:  # the case's key is needed and not fetched yet
            assert self._keys is not None
            keys[env.case_id] = await self._keys.key_for_read(env.case_id)
            recorded = codec.decode(self._registry, seq, env, decrypt=decrypt, keys=keys)
            assert recorded is not None
        return recorded


Decide = Callable[[list[RecordedEvent]], DomainEvent | None]
"""A decision on an aggregate's history (read without decrypting): the event, or None."""


async def append_decided(
    store: EventStore, ref: AggregateRef, decide: Decide, event_id: str, cause: Cause
) -> RecordedEvent | None:
    """Load the aggregate, let ``decide`` build the event, append it under ``event_id`` with
    the version read; the recorded event, or None when ``decide`` had nothing to add. When the
    aggregate already holds ``event_id`` (a retry), that event. When another writer got in
    between, reload and decide again (bounded, with jitter); ``ConcurrencyError`` after the
    last attempt."""
    for attempt in range(CONFLICT_ATTEMPTS):
        history = await store.load(ref, decrypt=False)
        for recorded in history:
            if recorded.envelope.event_id == event_id:
                return recorded
        event = decide(history)
        if event is None:
            return None
        try:
            written = await store.append(
                ref, [event], expected=Version.of(history), cause=cause, event_ids=[event_id]
            )
            return written[0]
        except ConcurrencyError:
            if attempt == CONFLICT_ATTEMPTS - 1:
                raise
            await after_conflict(attempt)
    raise AssertionError("unreachable")


async def append_once(
    store: EventStore, ref: AggregateRef, event: DomainEvent, event_id: str, cause: Cause
) -> RecordedEvent:
    """Append ``event`` under ``event_id`` unless the aggregate already holds it; reload and
    retry when another writer got in between."""
    recorded = await append_decided(store, ref, lambda _history: event, event_id, cause)
    assert recorded is not None
    return recorded
