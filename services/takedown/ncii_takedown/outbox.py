"""The reactor's outbox: events the takedowns projection decides on (TakedownOpened,
TakedownRequested, TakedownCancelled) are written as ``td_outbox`` rows in the transaction that
moves its checkpoint (``write_outbox``), then appended to the log by ``OutboxPublisher`` in the
order they were decided. No row holds personal data: those events carry none.

Every event id is derived from the event that caused it, so a replay, a rebuild or a second
replica writes each event once (``append_once`` skips ids the aggregate holds; the log drops
duplicate message ids). The application's commands and the workers append the same way.
"""

from __future__ import annotations

import json
import uuid

from ncii_contracts.base import DomainEvent
from ncii_events.db import write_transaction
from ncii_events.envelope import Actor, utc_now
from ncii_events.ids import derived_uuid
from ncii_events.registry import EventRegistry
from ncii_events.store import (
    AggregateRef,
    Cause,
    EventStore,
    RecordedEvent,
    append_once,
)
from ncii_events.worker import LoopWorker
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_takedown.read_models.schema import OUTBOX

SERVICE_ACTOR = Actor(organisation="ncii", principal="takedown", role="service")
IDS = uuid.UUID("0c2f7a3e-5b14-4d8e-9a61-3e7b2d9c4f10")


def derived_id(*parts: str) -> str:
    """A deterministic id (takedown, notice and event ids derive from what caused them)."""
    return str(derived_uuid(IDS, *parts))


def takedown_ref(case_id: str, takedown_id: str) -> AggregateRef:
    return AggregateRef(case_id, "takedown", takedown_id)


def write_outbox(
    conn: Connection, source: RecordedEvent, *, case_id: str, event: DomainEvent, event_id: str
) -> None:
    """Record ``event`` (of the takedown named in it) for the publisher, once per id."""
    exists = conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.event_id == event_id)).first()
    if exists is not None:
        return
    aggregate_id = getattr(event, "takedown_id", None)
    assert isinstance(aggregate_id, str), "the outbox holds takedown events"
    conn.execute(
        insert(OUTBOX).values(
            event_id=event_id,
            case_id=case_id,
            aggregate_id=aggregate_id,
            event_type=event.event_type,
            payload=json.dumps(event.model_dump(mode="json")),
            correlation_id=source.envelope.correlation_id,
            causation_id=source.envelope.event_id,
            created_at=utc_now(),
            published_at=None,
        )
    )


class OutboxPublisher(LoopWorker):
    """Appends what the reactor decided, in the order it decided it."""

    name = "outbox"

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        *,
        registry: EventRegistry,
        interval: float = 0.5,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.store = store
        self.registry = registry
        self.interval = interval

    async def step(self) -> int:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(OUTBOX)
                    .where(OUTBOX.c.published_at.is_(None))
                    .order_by(OUTBOX.c.id)
                    .limit(200)
                )
            ).all()
        done = 0
        for row in rows:
            if self._stopping.is_set():
                break
            event_class = self.registry.event_class(row.event_type)
            event = self.registry.decode(
                row.event_type, event_class.version, json.loads(row.payload)
            )
            ref = takedown_ref(row.case_id, row.aggregate_id)
            cause = Cause(SERVICE_ACTOR, row.correlation_id, row.causation_id)
            await append_once(self.store, ref, event, row.event_id, cause)
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    update(OUTBOX).where(OUTBOX.c.id == row.id).values(published_at=utc_now())
                )
            done += 1
        return done

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).where(OUTBOX.c.published_at.is_(None))
            return int((await conn.execute(query)).scalar_one())
