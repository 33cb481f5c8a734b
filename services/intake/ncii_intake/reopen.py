"""What intake does by itself (decision 35).

A re-upload reopens a closed case: a reactor on hashmatch's published ``MatchFound``. The
projection queues each match of a case (ids and times only, nothing personal) in the
transaction that moves its checkpoint; the worker lets the case decide
(``Case.reopen_on_match``: only a case closed before the content was seen again reopens) and
appends under an id derived from the match event, so a replay, a rebuild or a second replica
reopens once. And a victim's own erasure request takes effect once its delay has passed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from ncii_contracts.hashmatch import MatchFound
from ncii_contracts.streams import CASES, REFERENCE_CASE
from ncii_events import tracing
from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from ncii_events.worker import LoopWorker, Worker
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    false,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_intake.app import SERVICE, CaseNotFoundError, Decision, IntakeApp
from ncii_intake.domain import format_time, parse_time
from ncii_intake.read_models import queries

METADATA = MetaData()
"""Its own metadata: a rebuild of this queue must not drop the cases table (``reset``)."""
REOPEN_QUEUE = Table(
    "reopen_queue",
    METADATA,
    Column("match_event_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False),
    Column("match_id", String(200), nullable=False),
    Column("seen_at", String(40), nullable=False),
    Column("done", Boolean, nullable=False, server_default=false(), index=True),
    Column("traceparent", String(55)),  # the reopening continues the match's trace (dec. 55)
)
BATCH = 50


class ReopenQueueProjection(Projection):
    name: ClassVar[str] = "reopen_queue"
    metadata: ClassVar[MetaData] = METADATA
    subjects: ClassVar[tuple[str, ...]] = (f"{CASES.prefix}.*.match.*.MatchFound",)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if not isinstance(ev, MatchFound) or event.case_id == REFERENCE_CASE:
            return
        seen = conn.execute(
            select(REOPEN_QUEUE.c.match_event_id).where(
                REOPEN_QUEUE.c.match_event_id == event.envelope.event_id
            )
        ).first()
        if seen is None:
            conn.execute(
                REOPEN_QUEUE.insert().values(
                    match_event_id=event.envelope.event_id,
                    case_id=event.case_id,
                    match_id=ev.match_id,
                    seen_at=event.envelope.occurred_at,
                    done=False,
                    traceparent=tracing.caused_by(
                        event.envelope.event_id, event.envelope.traceparent
                    ),
                )
            )


class Reopener(LoopWorker):
    """Works the queue: each match once, in the order it was recorded."""

    name = "reopen-on-match"

    def __init__(self, app: IntakeApp, engine: AsyncEngine) -> None:
        super().__init__()
        self.app = app
        self.engine = engine

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(REOPEN_QUEUE).where(REOPEN_QUEUE.c.done.is_(False))
            )
            return int(count or 0)

    async def step(self) -> int:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(REOPEN_QUEUE)
                    .where(REOPEN_QUEUE.c.done.is_(False))
                    .order_by(REOPEN_QUEUE.c.seen_at)
                    .limit(BATCH)
                )
            ).all()
        for row in rows:
            decide = _reopen(str(row.match_id), parse_time(row.seen_at))
            with tracing.work_span(
                "ncii.work reopen-on-match",
                parent=row.traceparent,
                attributes={"ncii.handler": self.name, "ncii.case_id": row.case_id},
            ):
                try:
                    await self.app.change(
                        row.case_id,
                        None,
                        decide,
                        actor_principal=SERVICE,
                        idempotency_key=f"reopen/{row.match_event_id}",
                    )
                except CaseNotFoundError:
                    pass  # a match of no case intake opened: nothing to reopen
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(REOPEN_QUEUE)
                    .where(REOPEN_QUEUE.c.match_event_id == row.match_event_id)
                    .values(done=True)
                )
        return len(rows)


def _reopen(match_id: str, seen_at: datetime) -> Decision:
    return lambda case: case.reopen_on_match(match_id, seen_at)


class ErasureSweeper(LoopWorker):
    """Erases the cases whose victim asked for it once the stated delay has passed (decision
    35); the case decides (``Case.erasure_due``) with the app's clock."""

    name = "victim-erasure"
    interval = 60.0

    def __init__(self, app: IntakeApp, engine: AsyncEngine) -> None:
        super().__init__()
        self.app = app
        self.engine = engine

    async def pending(self) -> int:
        return len(await queries.erasures_due(self.engine, format_time(self.app.clock())))

    async def step(self) -> int:
        due = await queries.erasures_due(self.engine, format_time(self.app.clock()))
        erased = 0
        for case_id in due:
            # the clock's work: a trace of its own (the request it carries out is days old)
            with tracing.work_span(
                "ncii.sweep victim-erasure",
                attributes={"ncii.handler": self.name, "ncii.case_id": case_id},
            ):
                erased += await self.app.erase_if_due(case_id)
        return erased


def workers(app: IntakeApp) -> Sequence[Worker]:
    """The re-upload reactor and the victim's erasure sweeper (decision 35)."""
    if app.engine is None:
        return ()
    return (Reopener(app, app.engine), ErasureSweeper(app, app.engine))
