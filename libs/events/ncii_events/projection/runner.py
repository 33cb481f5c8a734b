"""The projection runner: reads the log from the projection's SQL checkpoint, its only position,
and applies each batch in one transaction that starts by moving the checkpoint with a
compare-and-set. Replicas may run the same projection: one wins each batch, the others roll
back, read the checkpoint again and go on, so no event is applied twice.

* Pages are read by batched Direct Get (``EventStore.read_from``) up to the log's last sequence
  as read before the page, so a page that comes back short means "everything up to there":
  the checkpoint then moves to that sequence even when the last events were not this
  projection's. The next page is
  read and decoded while the current one commits.
* A failing batch is applied one event at a time; a failing event is retried in place (the log's
  order is kept), then recorded as a dead letter, and the projection moves on.
* A database or NATS outage is not the event's fault: the round is retried with backoff for as
  long as the runner runs, and ``health`` says so (readiness reports it).
* Idle, it wakes on a core NATS subscription to its subjects (a doorbell), on a nudge, and at
  least every ``interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence

from nats.aio.client import Client as NATS
from opentelemetry import trace
from sqlalchemy import Connection, delete
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_events import tracing
from ncii_events.db import migrate_runtime, write_transaction
from ncii_events.projection import checkpoints, dead_letters
from ncii_events.projection.base import Projection, subject_matches
from ncii_events.store import EventStore, RecordedEvent, UndecodableEventError
from ncii_events.worker import LoopWorker

log = logging.getLogger("ncii.projection")
_tracer = trace.get_tracer("ncii.events")

EVENT_SPANS = 256
"""At most this many per-event spans per batch (a catch-up of a million traced events would
otherwise fill the exporter's queue; the batch's span still counts them all)."""

_OUTAGES = (OperationalError, InterfaceError, OSError, TimeoutError)
"""Errors of the database or the network, retried for ever; not the event's fault."""

Page = tuple[list[RecordedEvent], int, bool]
"""Events read, the log position the read covers (the next page starts after it), and whether
the page was full (more may follow at once)."""


class ProjectionRunner(LoopWorker):
    def __init__(
        self,
        nc: NATS | None,
        engine: AsyncEngine,
        store: EventStore,
        projection: Projection,
        *,
        batch_size: int = 2000,
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        interval: float = 0.5,
        linger: float = 0.005,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.nc = nc
        self.engine = engine
        self.store = store
        self.projection = projection
        self.name = projection.name
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.interval = interval
        self.linger = linger
        self.on_commit = on_commit
        subjects = list(projection.subjects)
        self._filter = subjects[0] if len(subjects) == 1 else None
        self._subjects = subjects
        self._doorbells: list[object] = []
        self._prefetch: tuple[int, asyncio.Task[Page | None]] | None = None
        self.checkpoint = 0
        self.applied = 0
        self._known_last = 0  # the log's last sequence when last asked
        self._unreadable: dict[int, int] = {}  # attempts at the event this code cannot read

    @property
    def last_seq(self) -> int:
        return self.checkpoint

    @property
    def lag(self) -> int:
        """Events of the log, as last seen, after the checkpoint (the ``ncii.projection.lag``
        gauge: no I/O, so the metrics exporter's thread can read it)."""
        return max(0, self._known_last - self.checkpoint)

    # -- set-up -------------------------------------------------------------------------------

    async def prepare(self) -> None:
        await migrate_runtime(self.engine)
        name = self.projection.name
        for _ in range(3):
            try:
                async with write_transaction(self.engine) as conn:
                    await conn.run_sync(lambda c: self.projection.metadata.create_all(c))
                    self.checkpoint = await conn.run_sync(checkpoints.ensure, name)
                break
            except IntegrityError:
                continue  # a replica created the row at the same moment
        if self.nc is not None and not self._doorbells:
            for subject in self._subjects:
                self._doorbells.append(await self.nc.subscribe(subject, cb=self._ring))

    async def _ring(self, _msg: object) -> None:
        self.nudge()

    async def stop(self) -> None:
        await super().stop()
        self._drop_prefetch()
        for sub in self._doorbells:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()  # type: ignore[attr-defined]
        self._doorbells = []

    async def rebuild(self) -> None:
        """Drop the projection's tables and replay the whole log into them."""
        await self.stop()
        await reset(self.engine, [self.projection])
        self.checkpoint = 0
        await self.start()

    # -- readiness ------------------------------------------------------------------------------

    async def pending(self) -> int:
        """0 when no event of the projection's subjects is after the checkpoint (events of other
        subjects do not count: the checkpoint passes them only when the runner next reads);
        else the stream's last sequence minus the checkpoint."""
        async with self.engine.connect() as conn:
            applied = await conn.run_sync(checkpoints.read, self.projection.name)
        for subject in self._subjects:
            if await self.store.read_from(applied + 1, limit=1, subject=subject):
                return max(1, await self.store.last_sequence() - applied)
        return 0

    async def target(self) -> object:
        return await self.store.last_sequence()

    async def reached(self, target: object) -> bool:
        assert isinstance(target, int)
        return self.checkpoint >= target

    # -- the loop -------------------------------------------------------------------------------

    async def step(self) -> int:
        start = self.checkpoint + 1
        try:
            page = await self._take_prefetch(start)
        except UndecodableEventError as exc:
            return await self._undecodable(start, exc)
        if page is None:
            return 0
        events, end, full = page
        if full:  # catching up: read and decode the next page while this one commits
            task = asyncio.create_task(self._read(end + 1))
            task.add_done_callback(_retrieve)  # a dropped read's error is read again later
            self._prefetch = (end + 1, task)
        if not await self._commit(events, end):
            self._drop_prefetch()
            async with self.engine.connect() as conn:
                self.checkpoint = await conn.run_sync(checkpoints.read, self.projection.name)
            self._committed()  # another replica changed the read model
            return 1
        # A short page reached the log's end as it was: the round ends here (a doorbell rung
        # meanwhile starts the next one), which saves asking the log's end again.
        return len(events) + 1 if full else 0

    async def _take_prefetch(self, start: int) -> Page | None:
        if self._prefetch is not None:
            at, task = self._prefetch
            self._prefetch = None
            if at == start:
                return await task
            task.cancel()
        return await self._read(start)

    def _drop_prefetch(self) -> None:
        if self._prefetch is not None:
            self._prefetch[1].cancel()
            self._prefetch = None

    async def _read(self, start: int) -> Page | None:
        """The next page from ``start``, or None when the log has nothing after it."""
        last = self._known_last
        if last < start:  # only then ask the server: while catching up, pages come back full
            last = self._known_last = await self.store.last_sequence()
            if last < start:
                return None
        events = await self.store.read_from(
            start,
            limit=self.batch_size,
            decrypt=self.projection.decrypt,
            subject=self._filter,
            up_to_seq=last,
        )
        # A full page covers the log up to its last event; a short one up to ``last``.
        full = len(events) >= self.batch_size
        end = events[-1].seq if full else last
        return self._own(events), end, full

    def _own(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The projection's events of a page (a single subject filter already chose them)."""
        if self._filter is not None:
            return events
        return [e for e in events if self._wants(e)]

    async def _undecodable(self, start: int, exc: UndecodableEventError) -> int:
        """An event this code cannot read: first the events before it; then it is retried in
        place (its case key may come back), and becomes a dead letter as any failing event."""
        if exc.seq > start:
            events = await self.store.read_from(
                start,
                limit=exc.seq - start,
                decrypt=self.projection.decrypt,
                subject=self._filter,
                up_to_seq=exc.seq - 1,
            )
            await self._commit(self._own(events), exc.seq - 1)
            return 1
        attempts = self._unreadable.get(exc.seq, 0) + 1
        self._unreadable = {exc.seq: attempts}
        if attempts < self.max_attempts:
            log.warning(
                "event at %s cannot be read in %s (attempt %s of %s): %s",
                exc.seq,
                self.projection.name,
                attempts,
                self.max_attempts,
                type(exc.cause).__name__,
            )
            await self._sleep(self.retry_delay)
            return 1
        if await self._dead_letter(exc, exc.cause, attempts):
            self.checkpoint = exc.seq
            self._committed()
        return 1

    async def _dead_letter(
        self, event: RecordedEvent | UndecodableEventError, failure: Exception, attempts: int
    ) -> bool:
        """Record the dead letter and move the checkpoint past it, in one transaction; False
        when another replica moved the checkpoint first."""
        letter = functools.partial(
            dead_letters.record,
            projection=self.projection.name,
            event=event,
            exc=failure,
            attempts=attempts,
        )
        won = await self._transaction([], event.seq, letter)
        log.error(
            "event at %s is a dead letter in %s after %s attempts (%s)",
            event.seq,
            self.projection.name,
            attempts,
            type(failure).__name__,
        )
        return won

    def _wants(self, event: RecordedEvent) -> bool:
        env = event.envelope
        subject = self.store.spec.subject(env.case_id, env.aggregate, env.aggregate_id, env.type)
        return any(subject_matches(pattern, subject) for pattern in self._subjects)

    def _committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit(self.checkpoint)

    async def _commit(self, events: list[RecordedEvent], end: int) -> bool:
        """Apply ``events`` and move the checkpoint to ``end``; False when another replica
        moved it first. One by one (retries, dead letters) when the batch fails."""
        if not tracing.exporting():
            return await self._commit_now(events, end)
        with _tracer.start_as_current_span(
            "ncii.projection.apply",
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "ncii.projection": self.projection.name,
                "messaging.batch.message_count": len(events),
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as batch:
            handled = self._event_spans(events, batch.get_span_context())
            try:
                won = await self._commit_now(events, end)
            except BaseException as exc:
                for span in (batch, *handled):
                    span.set_attribute("error.type", type(exc).__name__)
                    span.set_status(trace.StatusCode.ERROR)
                raise
            finally:
                for span in handled:
                    span.end()
            return won

    def _event_spans(
        self, events: list[RecordedEvent], batch: trace.SpanContext
    ) -> list[trace.Span]:
        """A span per event the batch handles (up to ``EVENT_SPANS``), each a child of the span
        that appended the event (its ``traceparent``) and linked to the batch's: the producer's
        trace goes on through this service. Each is remembered for the outbox publisher."""
        spans: list[trace.Span] = []
        for event in events:
            if len(spans) >= EVENT_SPANS:
                break
            env = event.envelope
            parent = tracing.parent_of(env.traceparent)
            if parent is None:
                continue
            span = _tracer.start_span(
                f"ncii.handle {env.type}",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "ncii.handler": self.projection.name,
                    "ncii.event_type": env.type,
                    "ncii.event_id": env.event_id,
                    "ncii.case_id": env.case_id,
                    "ncii.seq": event.seq,
                    "messaging.system": "nats",
                    "messaging.operation.type": "process",
                },
                links=[trace.Link(batch)],
                record_exception=False,
                set_status_on_exception=False,
            )
            tracing.remember(env.event_id, span.get_span_context())
            tracing.remember(
                tracing.position(self.store.spec.name, event.seq), span.get_span_context()
            )
            spans.append(span)
        return spans

    async def _commit_now(self, events: list[RecordedEvent], end: int) -> bool:
        try:
            won = await self._transaction(events, end)
        except _OUTAGES:
            raise
        except Exception:
            log.warning("batch failed in %s; applying one by one", self.projection.name)
            return await self._one_by_one(events, end)
        if won:
            self.applied += len(events)
            self.checkpoint = end
            self._committed()
        return won

    async def _transaction(
        self,
        events: Sequence[RecordedEvent],
        end: int,
        apply: Callable[[Connection], None] | None = None,
    ) -> bool:
        expected, name = self.checkpoint, self.projection.name

        def run(conn: Connection) -> bool:
            if not checkpoints.advance(conn, name, expected, end):
                return False
            if apply is not None:
                apply(conn)
            elif events:
                self.projection.apply_batch(conn, events)
            return True

        async with write_transaction(self.engine) as conn:
            won: bool = await conn.run_sync(run)  # lost: nothing was written
        return won

    async def _one_by_one(self, events: list[RecordedEvent], end: int) -> bool:
        for event in events:
            attempts = 0
            while True:
                attempts += 1
                try:
                    won = await self._transaction([event], event.seq)
                    break
                except _OUTAGES:
                    raise
                except Exception as exc:
                    failure = exc
                if attempts >= self.max_attempts:
                    won = await self._dead_letter(event, failure, attempts)
                    break
                log.warning(
                    "event at %s failed in %s (attempt %s of %s): %s",
                    event.seq,
                    self.projection.name,
                    attempts,
                    self.max_attempts,
                    type(failure).__name__,
                )
                await self._sleep(self.retry_delay)
                if self._stopping.is_set():
                    return True  # the checkpoint holds what was done; the rest comes next time
            if not won:
                return False
            self.applied += 1
            self.checkpoint = event.seq
            self._committed()
        if end > self.checkpoint:
            won = await self._transaction([], end)
            if won:
                self.checkpoint = end
        return True


def _retrieve(task: asyncio.Task[Page | None]) -> None:
    if not task.cancelled():
        task.exception()


async def reset(engine: AsyncEngine, projections: Sequence[Projection]) -> None:
    """Drop and recreate the projections' tables (once for tables they share), and set their
    checkpoints back to 0 and drop their dead letters, in one transaction."""
    await migrate_runtime(engine)

    def run(conn: Connection) -> None:
        done: set[int] = set()
        for projection in projections:
            if id(projection.metadata) not in done:
                projection.reset(conn)
                done.add(id(projection.metadata))
            checkpoints.reset(conn, projection.name)
            conn.execute(
                delete(dead_letters.DEAD_LETTERS).where(
                    dead_letters.DEAD_LETTERS.c.projection == projection.name
                )
            )

    async with write_transaction(engine) as conn:
        await conn.run_sync(run)
