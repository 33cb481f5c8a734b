"""Projections: SQL read models fed by durable pull consumers of the log.

A batch of events is applied in one SQL transaction together with the projection's checkpoint
(the last stream sequence applied), and acknowledged only after the commit. A redelivered or
replayed event at or below the checkpoint is skipped, so each event is applied exactly once.

A failing event is retried (nak with a delay) until it has been delivered ``max_deliver`` times;
then it becomes a dead letter (a row naming the event, the error type and where it was raised,
never the data) and the projection moves on. ``ncii deadletters retry`` applies it again later.
The server's max-deliveries advisory is recorded too, for a message that never reached the
handler (for instance because the process crashed on it each time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import trace
from sqlalchemy import Connection, MetaData, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_events.db import RUNTIME_METADATA, migrate_runtime
from ncii_events.envelope import utc_now
from ncii_events.runtime_tables import define_runtime_tables
from ncii_events.store import EventStore, RecordedEvent

define_runtime_tables()
CHECKPOINTS = RUNTIME_METADATA.tables["projection_checkpoints"]
DEAD_LETTERS = RUNTIME_METADATA.tables["dead_letters"]

log = logging.getLogger("ncii.projection")
_tracer = trace.get_tracer("ncii.events")


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


def _checkpoint(conn: Connection, name: str) -> int:
    row = conn.execute(select(CHECKPOINTS.c.last_seq).where(CHECKPOINTS.c.projection == name))
    value = row.scalar_one_or_none()
    return int(value) if value is not None else 0


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
        self.nc = nc
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
        self._psub: Any = None
        self._stopping = asyncio.Event()
        self.applied = 0
        self.last_seq = 0

    # -- set-up -------------------------------------------------------------------------------

    async def prepare(self) -> None:
        await migrate_runtime(self.engine)
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: self.projection.metadata.create_all(c))
            self.last_seq = await conn.run_sync(_checkpoint, self.projection.name)

    async def _consumer(self) -> Any:
        spec = self.store.spec
        subjects = list(self.projection.subjects)
        try:
            await self.js.consumer_info(spec.name, self.durable)
        except NotFoundError:
            start = self.last_seq + 1
            config = ConsumerConfig(
                durable_name=self.durable,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
                opt_start_seq=start if start > 1 else None,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait,
                max_deliver=self.max_deliver,
                max_ack_pending=self.batch_size * 2,
                filter_subject=subjects[0] if len(subjects) == 1 else None,
                filter_subjects=subjects if len(subjects) > 1 else None,
            )
            await self.js.add_consumer(spec.name, config)
        return await self.js.pull_subscribe_bind(
            durable=self.durable, stream=spec.name, pending_msgs_limit=self.batch_size * 4
        )

    async def start(self) -> None:
        await self.prepare()
        self._psub = await self._consumer()
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
        for sub in (self._psub, self._advisories):
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        self._psub = self._advisories = None

    async def pending(self) -> int:
        """Events not yet applied (for readiness: 0 means caught up)."""
        info = await self.js.consumer_info(self.store.spec.name, self.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.pending() > 0:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"projection {self.durable} did not catch up in {timeout}s")
            await asyncio.sleep(0.02)

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

        async with self.engine.begin() as conn:
            await conn.run_sync(reset)
        self.last_seq = 0
        await self.start()

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self._psub.fetch(self.batch_size, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("fetch failed for %s; retrying", self.durable)
                await asyncio.sleep(1)
                continue
            await self.handle(msgs)

    async def handle(self, msgs: Sequence[Msg]) -> None:
        decoded: list[tuple[Msg, RecordedEvent | BaseException]] = []
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            try:
                event: RecordedEvent | BaseException = await self.store.decode_message(
                    seq, msg.data, decrypt=self.projection.decrypt
                )
            except Exception as exc:  # an event this code cannot read is a poison event too
                event = exc
            decoded.append((msg, event))
        with _tracer.start_as_current_span(
            "ncii.projection.apply",
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "ncii.projection": self.durable,
                "messaging.batch.message_count": len(msgs),
            },
        ):
            if all(isinstance(e, RecordedEvent) for _, e in decoded):
                try:
                    events = [e for _, e in decoded if isinstance(e, RecordedEvent)]
                    async with self.engine.begin() as conn:
                        applied = await conn.run_sync(self._apply_batch, events)
                except Exception:
                    log.warning("batch failed in %s; applying one by one", self.durable)
                else:
                    for msg, _ in decoded:
                        await msg.ack()
                    self.applied += applied
                    return
            await self._one_by_one(decoded)

    def _apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> int:
        name = self.projection.name
        checkpoint = _checkpoint(conn, name)
        had_row = (
            checkpoint > 0
            or conn.execute(
                select(CHECKPOINTS.c.projection).where(CHECKPOINTS.c.projection == name)
            ).first()
            is not None
        )
        applied = 0
        top = checkpoint
        for event in events:
            if event.seq <= top:
                continue  # applied before: a redelivery or a replay
            self.projection.apply(conn, event)
            top = event.seq
            applied += 1
        if top != checkpoint:
            _set_checkpoint(conn, name, top, had_row)
            self.last_seq = top
        return applied

    async def _one_by_one(
        self, decoded: Sequence[tuple[Msg, RecordedEvent | BaseException]]
    ) -> None:
        for index, (msg, event) in enumerate(decoded):
            try:
                if isinstance(event, BaseException):
                    raise event
                async with self.engine.begin() as conn:
                    self.applied += await conn.run_sync(self._apply_batch, [event])
                await msg.ack()
                continue
            except Exception as exc:
                failure = exc
            attempts = msg.metadata.num_delivered or 1
            if attempts >= self.max_deliver:
                await self._dead_letter(msg, event, failure, attempts)
                await msg.ack()
                continue
            log.warning(
                "event at %s failed in %s (attempt %s of %s): %s",
                msg.metadata.sequence.stream,
                self.durable,
                attempts,
                self.max_deliver,
                type(failure).__name__,
            )
            # Keep the log's order: this event and every later one in the batch come back.
            for later, _ in decoded[index:]:
                await later.nak(delay=self.retry_delay)
            return

    async def _dead_letter(
        self, msg: Msg, event: RecordedEvent | BaseException, exc: BaseException, attempts: int
    ) -> None:
        seq = msg.metadata.sequence.stream
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
            checkpoint = _checkpoint(conn, name)
            if seq > checkpoint:
                had_row = (
                    conn.execute(
                        select(CHECKPOINTS.c.projection).where(CHECKPOINTS.c.projection == name)
                    ).first()
                    is not None
                )
                _set_checkpoint(conn, name, seq, had_row)

        async with self.engine.begin() as conn:
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

        async with self.engine.begin() as conn:
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

    async with engine.begin() as conn:
        await conn.run_sync(apply)
    return True
