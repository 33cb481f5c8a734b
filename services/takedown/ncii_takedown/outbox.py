"""The reactor's outbox: events the takedowns projection decides on (TakedownOpened,
TakedownRequested, TakedownCancelled) are written as ``td_outbox`` rows in the transaction that
moves its checkpoint (``write_outbox``), then appended to the log by ``OutboxPublisher``: each
takedown's in the order they were decided, different takedowns side by side (decision 0053). No
row holds personal data: those events carry none.

Every event id is derived from the event that caused it, so a replay, a rebuild or a second
replica writes each event once (``append_once`` skips ids the aggregate holds; the log drops
duplicate message ids). The application's commands and the workers append the same way.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.envelope import Actor, utc_now
from ncii_events.ids import derived_uuid
from ncii_events.outbox import OutboxPublisher as EventOutboxPublisher
from ncii_events.outbox import cause_columns
from ncii_events.registry import EventRegistry
from ncii_events.store import (
    AggregateRef,
    EventStore,
    RecordedEvent,
)
from sqlalchemy import Connection, Row, insert, select
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
            **cause_columns(source),
            created_at=utc_now(),
            published_at=None,
        )
    )


class OutboxPublisher(EventOutboxPublisher):
    """Appends what the reactor decided, each takedown's in the order it decided it."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        *,
        registry: EventRegistry,
        interval: float = 0.5,
    ) -> None:
        # a takedown's events depend on that takedown's alone: takedowns go side by side
        super().__init__(
            engine,
            OUTBOX,
            registry=registry,
            actor=SERVICE_ACTOR,
            interval=interval,
            concurrency=32,
        )
        self.store = store

    def store_for(self, row: Row[Any]) -> EventStore:
        return self.store

    def ref_of(self, row: Row[Any]) -> AggregateRef:
        return takedown_ref(row.case_id, row.aggregate_id)
