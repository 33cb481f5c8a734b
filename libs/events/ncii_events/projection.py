"""Projections: SQL read models fed by durable pull consumers of the log.

A batch of events is applied in one SQL transaction together with the projection's checkpoint
(the last stream sequence applied), and acknowledged only after the commit, by one ack of its
last event (the consumer acknowledges all up to it). A redelivered or replayed event at or below
the checkpoint is skipped, so each event is applied exactly once.

The checkpoint is a high-water mark, so events must be applied in log order: an event applied
after a later one would be skipped as "applied before". Hence:

- A failing event is retried in place, after ``retry_delay``, until it has failed
  ``max_deliver`` times, while the rest of its batch waits (a nak would let the server deliver
  later events first). Then it becomes a dead letter (a row naming the event, the error type and
  where it was raised, never the data) and the projection moves on. ``ncii deadletters retry``
  applies it again later. The server's max-deliveries advisory is recorded too, for a message
  that never reached the handler (for instance because the process crashed on it each time).
- Messages delivered and never settled (a crashed or stopped runner, a message lost with a
  connection) come back only after the ack wait, while newer ones flow. When the runner starts
  with such messages outstanding, or sees a gap in the consumer's delivery sequence, it holds
  what it has until the server reports nothing else outstanding, and applies it in order.
  This relies on one runner per durable consumer (one applier per checkpoint): two runners
  sharing one checkpoint could not apply in order anyway.

Messages are pulled with one pull request at a time (``no_wait`` with ``expires``: what is there
now, or the first to arrive); the next batch is requested, and decoded, while the current one is
applied.
Projections can apply a whole batch at once (``apply_batch``, e.g. one ``executemany``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError
from opentelemetry import trace
from sqlalchemy import Connection, MetaData, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_events.connection import (
    NciiNatsClient,
    status_description,
    status_of,
    wire,
)
from ncii_events.db import RUNTIME_METADATA, migrate_runtime, write_transaction
from ncii_events.envelope import utc_now
from ncii_events.runtime_tables import define_runtime_tables
from ncii_events.store import EventStore, RecordedEvent

define_runtime_tables()
CHECKPOINTS = RUNTIME_METADATA.tables["projection_checkpoints"]
DEAD_LETTERS = RUNTIME_METADATA.tables["dead_letters"]

log = logging.getLogger("ncii.projection")
_tracer = trace.get_tracer("ncii.events")

PULL_WAIT = 0.5
"""How long one pull request waits for new events when there are none."""


class Projection:
    """A read model. Subclasses set ``name`` and ``metadata`` and implement ``apply``.

    ``apply`` is synchronous and runs inside the batch's transaction on a plain SQLAlchemy
    connection: no I/O other than that connection, so a batch is one round trip to the thread
    that talks to the database.
    """

    name: ClassVar[str]
    metadata: ClassVar[MetaData]
    subjects: ClassVar[Sequence[str]] = ("ncii.>",)
    decrypt: ClassVar[bool] = False
    """Read models hold no personal data by default: it stays encrypted in the log."""

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        raise NotImplementedError

    def apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        """Apply several events, in order, in one transaction (by default one ``apply`` each).

        Override to write a batch at once (for instance one ``conn.execute(insert(t), rows)``,
        an ``executemany``): a statement per event costs far more than the rest of the runner.
        A failing batch is retried one event at a time, each through this method.
        """
        for event in events:
            self.apply(conn, event)

    def reset(self, conn: Connection) -> None:
        """Drop and recreate this projection's tables (rebuild)."""
        self.metadata.drop_all(conn)
        self.metadata.create_all(conn)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    projection: str
    stream_seq: int
    event_id: str | None
    event_type: str | None
    error_type: str
    error_where: str
    attempts: int
    status: str
    failed_at: str
    resolved_at: str | None


def _where(exc: BaseException) -> str:
    """Where it failed, as file:line in function; never values, which may be personal."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    return " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames)


def _checkpoint_row(conn: Connection, name: str) -> int | None:
    """The last sequence applied, or None before the first event."""
    row = conn.execute(select(CHECKPOINTS.c.last_seq).where(CHECKPOINTS.c.projection == name))
    value = row.scalar_one_or_none()
    return int(value) if value is not None else None


def _checkpoint(conn: Connection, name: str) -> int:
    return _checkpoint_row(conn, name) or 0


def _set_checkpoint(conn: Connection, name: str, seq: int, had_row: bool) -> None:
    if had_row:
        conn.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.projection == name)
            .values(last_seq=seq, updated_at=utc_now())
        )
    else:
        conn.execute(
            insert(CHECKPOINTS).values(projection=name, last_seq=seq, updated_at=utc_now())
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message of the consumer, with what the runner needs of it (nats-py's ``Msg`` and its
    metadata cost more than applying the event)."""

    nc: NciiNatsClient
    reply: str
    data: bytes
    stream_seq: int
    consumer_seq: int
    delivered: int

    @classmethod
    def of(cls, nc: NciiNatsClient, reply: bytes, data: bytes) -> Delivery:
        """From the reply subject: ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.
        <ts>.<pending>``, or the longer form with a domain and account (nats-py parses that)."""
        subject = reply.decode()
        tokens = subject.split(".")
        if len(tokens) != 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
            tokens = Msg.Metadata._get_metadata_fields(subject)
        return cls(nc, subject, data, int(tokens[5]), int(tokens[6]), int(tokens[4]))

    async def ack(self) -> None:
        """Acknowledge this delivery and, the consumer acknowledging all, every earlier one."""
        await self.nc.publish_raw(self.reply, b"+ACK")

    async def nak(self) -> None:
        await self.nc.publish_raw(self.reply, b"-NAK")

    async def in_progress(self) -> None:
        await self.nc.publish_raw(self.reply, b"+WPI")


class _Pull:
    """Messages of one durable pull consumer, through one direct subscription.

    nats-py's ``fetch`` spends ~50 µs a message (a task, a uuid and a ``wait_for`` each); here a
    message is a list append, straight from the protocol parser. At most one pull request is
    open; it asks for ``no_wait`` with ``expires``, so the server sends what it has at once (then
    a 404 when that is less than asked), or, when it has nothing, waits up to ``expires`` for the
    first events. A request ends with its full count or a status message: nothing waits for a
    batch to fill.
    """

    def __init__(self, nc: NciiNatsClient, stream: str, durable: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._prefix = ""
        self._sub: Any = None
        self._tokens = itertools.count(1)
        self._buffer: list[Delivery] = []
        self._token: str | None = None  # the open request
        self._open_subject = b""
        self._left = 0  # messages it may still bring
        self._deadline = 0.0
        self._ended = asyncio.Event()
        self._error: BaseException | None = None

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe_direct(self._prefix + "*", self._on_msg)

    def _on_msg(self, subject: bytes, reply: bytes, headers: bytes | None, data: bytes) -> None:
        status = status_of(headers)
        if status is None:
            self._buffer.append(Delivery.of(self._nc, reply, data))
            self._left -= 1
            if self._left <= 0:
                self._end()
            return
        if status == "100" or subject != self._open_subject:
            return  # a heartbeat, or the end of a request given up on
        if status not in ("404", "408"):  # 409: consumer deleted, leadership change, limits
            self._error = APIError(code=int(status), description=status_description(headers))
        self._end()

    def _end(self) -> None:
        self._token = None
        self._open_subject = b""
        self._ended.set()

    async def request(self, batch: int, wait: float) -> None:
        """Open a pull request unless one is open (the next batch travels while this one is
        applied)."""
        if self._token is not None:
            return
        token = str(next(self._tokens))
        self._token, self._left = token, batch
        self._open_subject = (self._prefix + token).encode()
        self._deadline = asyncio.get_running_loop().time() + wait + 5.0
        self._ended.clear()
        body = {"batch": batch, "expires": int(wait * 1e9), "no_wait": True}
        try:
            await self._nc.publish_raw(self._next, orjson.dumps(body), reply=self._prefix + token)
        except BaseException:
            self._end()
            raise

    async def fetch(self, batch: int, wait: float) -> list[Delivery]:
        """Delivered messages: those already here, else the next request's (maybe none)."""
        if not self._buffer:
            await self.request(batch, wait)
            await self.settle()
        if self._error is not None and not self._buffer:
            error, self._error = self._error, None
            raise error
        out, self._buffer = self._buffer, []
        return out

    async def settle(self) -> None:
        """Wait until the open request (if any) has ended, or is given up on as lost."""
        while self._token is not None:
            left = self._deadline - asyncio.get_running_loop().time()
            if left <= 0:
                self._token = None  # lost (e.g. with a reconnection): the gap check covers it
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), left)

    async def close(self) -> list[Delivery]:
        """Stop: let the open request end, unsubscribe, and return what was never handed out."""
        with contextlib.suppress(Exception):
            await self.settle()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        out, self._buffer = self._buffer, []
        return out


async def wait_caught_up(
    pending: Callable[[], Awaitable[int]], what: str, timeout: float = 30.0
) -> None:
    """Poll ``pending`` until it reports 0 (caught up), or raise ``TimeoutError``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await pending() > 0:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} did not catch up in {timeout}s")
        await asyncio.sleep(0.02)


class ProjectionRunner:
    def __init__(
        self,
        nc: NATS,
        engine: AsyncEngine,
        store: EventStore,
        projection: Projection,
        *,
        service: str,
        batch_size: int = 500,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        retry_delay: float = 0.5,
    ) -> None:
        self.nc = wire(nc)
        self.js = nc.jetstream()
        self.engine = engine
        self.store = store
        self.projection = projection
        self.durable = f"{service}_{projection.name}"
        self.batch_size = batch_size
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self._task: asyncio.Task[None] | None = None
        self._advisories: Any = None
        self._pull: _Pull | None = None
        self._stopping = asyncio.Event()
        self._last_delivery: int | None = None  # the consumer sequence of the last delivery seen
        self._held_back = False  # outstanding deliveries to wait for before applying
        self.applied = 0
        self.last_seq = 0

    # -- set-up -------------------------------------------------------------------------------

    async def prepare(self) -> None:
        await migrate_runtime(self.engine)
        async with write_transaction(self.engine) as conn:
            await conn.run_sync(lambda c: self.projection.metadata.create_all(c))
            self.last_seq = await conn.run_sync(_checkpoint, self.projection.name)

    async def _consumer(self) -> None:
        spec = self.store.spec
        subjects = list(self.projection.subjects)
        try:
            info = await self.js.consumer_info(spec.name, self.durable)
            if info.config.ack_policy != AckPolicy.ALL:
                # Made by an earlier version (an ack per event): the checkpoint in SQL is what
                # counts, so a new consumer from there loses nothing.
                await self.js.delete_consumer(spec.name, self.durable)
                raise NotFoundError
        except NotFoundError:
            start = self.last_seq + 1
            config = ConsumerConfig(
                durable_name=self.durable,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
                opt_start_seq=start if start > 1 else None,
                # Batches are applied in order and committed before the ack: one ack (of the
                # last event) settles a batch.
                ack_policy=AckPolicy.ALL,
                ack_wait=self.ack_wait,
                max_deliver=self.max_deliver,
                max_ack_pending=self.batch_size * 2,
                filter_subject=subjects[0] if len(subjects) == 1 else None,
                filter_subjects=subjects if len(subjects) > 1 else None,
            )
            info = await self.js.add_consumer(spec.name, config)
        # Deliveries a previous runner never settled come back after the ack wait, after newer
        # events: hold those until they are back (see the module docstring).
        self._held_back = bool(info.num_ack_pending)
        self._last_delivery = info.delivered.consumer_seq if info.delivered else None

    async def start(self) -> None:
        await self.prepare()
        await self._consumer()
        self._pull = _Pull(self.nc, self.store.spec.name, self.durable)
        await self._pull.start()
        advisory = (
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.store.spec.name}.{self.durable}"
        )
        self._advisories = await self.nc.subscribe(advisory, cb=self._on_max_deliveries)
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name=f"projection-{self.durable}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._pull is not None:
            # Delivered but not applied: hand them back now, so that they come first next time.
            for msg in await self._pull.close():
                with contextlib.suppress(Exception):
                    await msg.nak()
            self._pull = None
        if self._advisories is not None:
            with contextlib.suppress(Exception):
                await self._advisories.unsubscribe()
        self._advisories = None

    async def pending(self) -> int:
        """Events not yet applied (for readiness: 0 means caught up)."""
        info = await self.js.consumer_info(self.store.spec.name, self.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        await wait_caught_up(self.pending, f"projection {self.durable}", timeout)

    async def rebuild(self) -> None:
        """Drop the projection's tables and replay the whole log into them."""
        await self.stop()
        with contextlib.suppress(NotFoundError):
            await self.js.delete_consumer(self.store.spec.name, self.durable)
        name = self.projection.name

        def reset(conn: Connection) -> None:
            self.projection.reset(conn)
            conn.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.projection == name))
            conn.execute(delete(DEAD_LETTERS).where(DEAD_LETTERS.c.projection == name))

        async with write_transaction(self.engine) as conn:
            await conn.run_sync(reset)
        self.last_seq = 0
        await self.start()

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        committing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                msgs = await self._next_batch()
                if msgs:
                    # Decode this batch while the previous one commits (the database's round
                    # trips leave the loop idle); commits stay one at a time, in log order.
                    decoded = await self._decode_all(msgs)
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(self.commit(decoded))
        finally:
            if committing is not None:
                await committing

    async def _next_batch(self) -> list[Delivery]:
        pull = self._pull
        assert pull is not None
        while not self._stopping.is_set():
            try:
                msgs = await pull.fetch(self.batch_size, PULL_WAIT)
                if not msgs:
                    continue
                if len(msgs) >= self.batch_size:
                    await pull.request(self.batch_size, PULL_WAIT)  # catching up: ask ahead
                msgs = await self._in_order(msgs)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception:
                if self._stopping.is_set():
                    return []
                log.exception("fetch failed for %s; retrying", self.durable)
                await asyncio.sleep(1)
                continue
            if msgs:
                return msgs
        return []

    async def _in_order(self, msgs: list[Delivery]) -> list[Delivery]:
        """``msgs``, unless some earlier delivery is still outstanding: then wait for it."""
        for msg in msgs:
            delivery = msg.consumer_seq
            if self._last_delivery is not None and delivery != self._last_delivery + 1:
                self._held_back = True  # a delivery this runner never saw
            self._last_delivery = delivery
        if not self._held_back:
            return msgs
        return await self._hold_back(msgs)

    async def _hold_back(self, msgs: list[Delivery]) -> list[Delivery]:
        """Keep ``msgs`` (in progress) and take more until the server reports no delivery
        outstanding beyond those held, then return them all in log order. The missing ones come
        back within the ack wait; if they still have not after that, another runner holds them
        (a configuration error: one runner per consumer), and the runner goes on."""
        assert self._pull is not None
        held = {m.stream_seq: m for m in msgs}
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.ack_wait + 2 * PULL_WAIT
        while not self._stopping.is_set():
            info = await self.js.consumer_info(self.store.spec.name, self.durable)
            if int(info.num_ack_pending or 0) <= len(held):
                break
            if loop.time() > give_up:
                log.error(
                    "%s: deliveries outstanding for longer than the ack wait; is another runner "
                    "consuming it? Going on without them",
                    self.durable,
                )
                break
            for msg in held.values():
                await msg.in_progress()
            for msg in await self._pull.fetch(self.batch_size, PULL_WAIT):
                self._last_delivery = msg.consumer_seq
                held[msg.stream_seq] = msg  # a redelivery replaces the earlier delivery
        if self._stopping.is_set():  # still missing some: hand these back to come first later
            for msg in held.values():
                with contextlib.suppress(Exception):
                    await msg.nak()
            return []
        self._held_back = False
        return [held[seq] for seq in sorted(held)]

    async def _decode(self, msg: Delivery) -> RecordedEvent | BaseException:
        try:
            return await self.store.decode_message(
                msg.stream_seq, msg.data, decrypt=self.projection.decrypt
            )
        except Exception as exc:  # an event this code cannot read is a poison event too
            return exc

    async def _decode_all(
        self, msgs: Sequence[Delivery]
    ) -> list[tuple[Delivery, RecordedEvent | BaseException]]:
        return [(msg, await self._decode(msg)) for msg in msgs]

    async def commit(
        self, decoded: Sequence[tuple[Delivery, RecordedEvent | BaseException]]
    ) -> None:
        """Apply decoded deliveries in one transaction with the checkpoint, then acknowledge
        them; one by one (retries, dead letters) when the batch fails."""
        with _tracer.start_as_current_span(
            "ncii.projection.apply",
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "ncii.projection": self.durable,
                "messaging.batch.message_count": len(decoded),
            },
        ):
            events = [e for _, e in decoded if isinstance(e, RecordedEvent)]
            if len(events) == len(decoded):
                try:
                    async with write_transaction(self.engine) as conn:
                        applied = await conn.run_sync(self._apply_batch, events)
                except Exception:
                    log.warning("batch failed in %s; applying one by one", self.durable)
                else:
                    await decoded[-1][0].ack()  # acknowledges the whole batch
                    self.applied += applied
                    return
            await self._one_by_one(decoded)

    def _apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> int:
        name = self.projection.name
        stored = _checkpoint_row(conn, name)
        checkpoint = stored or 0
        fresh: list[RecordedEvent] = []
        top = checkpoint
        for event in events:
            if event.seq <= top:
                continue  # applied before: a redelivery or a replay
            fresh.append(event)
            top = event.seq
        if fresh:
            self.projection.apply_batch(conn, fresh)
            _set_checkpoint(conn, name, top, stored is not None)
            self.last_seq = top
        return len(fresh)

    async def _one_by_one(
        self, decoded: Sequence[tuple[Delivery, RecordedEvent | BaseException]]
    ) -> None:
        for index, (msg, first) in enumerate(decoded):
            event = first
            delivered = msg.delivered
            tries = 0
            while True:
                tries += 1
                try:
                    if isinstance(event, BaseException):
                        event = await self._decode(msg)  # the keys may be reachable again
                        if isinstance(event, BaseException):
                            raise event
                    async with write_transaction(self.engine) as conn:
                        self.applied += await conn.run_sync(self._apply_batch, [event])
                    await msg.ack()
                    break
                except Exception as exc:
                    failure = exc
                attempts = delivered - 1 + tries
                if attempts >= self.max_deliver:
                    await self._dead_letter(msg, event, failure, attempts)
                    await msg.ack()
                    break
                log.warning(
                    "event at %s failed in %s (attempt %s of %s): %s",
                    msg.stream_seq,
                    self.durable,
                    attempts,
                    self.max_deliver,
                    type(failure).__name__,
                )
                # Keep the log's order: retry here while the rest of the batch waits (a nak
                # would let the server deliver later events before this one).
                for later, _ in decoded[index:]:
                    await later.in_progress()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.retry_delay)
                if self._stopping.is_set():
                    # Stopping: hand this event and the later ones back, to come first next time.
                    for later, _ in decoded[index:]:
                        with contextlib.suppress(Exception):
                            await later.nak()
                    return

    async def _dead_letter(
        self,
        msg: Delivery,
        event: RecordedEvent | BaseException,
        exc: BaseException,
        attempts: int,
    ) -> None:
        seq = msg.stream_seq
        name = self.projection.name
        row = {
            "projection": name,
            "stream_seq": seq,
            "event_id": event.envelope.event_id if isinstance(event, RecordedEvent) else None,
            "event_type": event.type if isinstance(event, RecordedEvent) else None,
            "error_type": type(exc).__name__,
            "error_where": _where(exc),
            "attempts": attempts,
            "status": "open",
            "failed_at": utc_now(),
        }

        def record(conn: Connection) -> None:
            exists = conn.execute(
                select(DEAD_LETTERS.c.id).where(
                    DEAD_LETTERS.c.projection == name, DEAD_LETTERS.c.stream_seq == seq
                )
            ).first()
            if exists is None:
                conn.execute(insert(DEAD_LETTERS).values(**row))
            stored = _checkpoint_row(conn, name)
            if seq > (stored or 0):
                _set_checkpoint(conn, name, seq, stored is not None)

        async with write_transaction(self.engine) as conn:
            await conn.run_sync(record)
        log.error(
            "event at %s is a dead letter in %s after %s attempts (%s)",
            seq,
            self.durable,
            attempts,
            type(exc).__name__,
        )

    async def _on_max_deliveries(self, msg: Msg) -> None:
        """The server gave up on a message the handler never settled (e.g. repeated crashes)."""
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
        except (ValueError, KeyError):
            return
        name = self.projection.name

        def record(conn: Connection) -> None:
            if seq <= _checkpoint(conn, name):
                return
            exists = conn.execute(
                select(DEAD_LETTERS.c.id).where(
                    DEAD_LETTERS.c.projection == name, DEAD_LETTERS.c.stream_seq == seq
                )
            ).first()
            if exists is None:
                conn.execute(
                    insert(DEAD_LETTERS).values(
                        projection=name,
                        stream_seq=seq,
                        event_id=None,
                        event_type=None,
                        error_type="MaxDeliveriesExceeded",
                        error_where="nats-server advisory",
                        attempts=int(advisory.get("deliveries", self.max_deliver)),
                        status="open",
                        failed_at=utc_now(),
                    )
                )

        async with write_transaction(self.engine) as conn:
            await conn.run_sync(record)


async def list_dead_letters(
    engine: AsyncEngine, *, include_resolved: bool = False
) -> list[DeadLetter]:
    await migrate_runtime(engine)
    query = select(DEAD_LETTERS).order_by(DEAD_LETTERS.c.id)
    if not include_resolved:
        query = query.where(DEAD_LETTERS.c.status == "open")
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [DeadLetter(**dict(r)) for r in rows]


async def retry_dead_letter(
    engine: AsyncEngine, store: EventStore, projection: Projection, dead_letter_id: int
) -> bool:
    """Apply a dead-lettered event again (after a fix). True when it now applies."""
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(DEAD_LETTERS).where(DEAD_LETTERS.c.id == dead_letter_id)))
            .mappings()
            .first()
        )
    if row is None or row["projection"] != projection.name or row["status"] != "open":
        return False
    event = await store.get(int(row["stream_seq"]), decrypt=projection.decrypt)
    if event is None:
        return False

    def apply(conn: Connection) -> None:
        projection.apply(conn, event)
        conn.execute(
            update(DEAD_LETTERS)
            .where(DEAD_LETTERS.c.id == dead_letter_id)
            .values(status="retried", resolved_at=utc_now())
        )

    async with write_transaction(engine) as conn:
        await conn.run_sync(apply)
    return True
