"""The outbox: events the bank's projections decide on (HashesBanked, HashesWithdrawn) are
written as ``hm_outbox`` rows in the transaction that moves the projection's checkpoint
(``write_outbox``), then appended to the log by a worker (``OutboxPublisher``), in the order
they were decided.

Every event id is derived from what caused it, so a retry or a second replica writes each event
once: ``append_once`` skips ids already in the aggregate and the log drops duplicate message ids.
The application's commands append their events the same way.
"""

from __future__ import annotations

import json
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.envelope import Actor, utc_now
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

from ncii_hashmatch.read_models.schema import OUTBOX

SERVICE_ACTOR = Actor(organisation="ncii", principal="hashmatch", role="service")


def write_outbox(
    conn: Connection,
    source: RecordedEvent,
    *,
    event_id: str,
    stream: str,
    case_id: str,
    aggregate_id: str,
    event: DomainEvent,
) -> None:
    """Record ``event`` for the publisher, caused by ``source`` (once per ``event_id``)."""
    exists = conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.event_id == event_id)).first()
    if exists is not None:
        return
    conn.execute(
        insert(OUTBOX).values(
            event_id=event_id,
            stream=stream,
            case_id=case_id,
            aggregate=event.aggregate,
            aggregate_id=aggregate_id,
            event_type=event.event_type,
            payload=json.dumps(event.model_dump(mode="json")),
            **cause_columns(source),
            created_at=utc_now(),
            published_at=None,
        )
    )


class OutboxPublisher(EventOutboxPublisher):
    """Appends the events the bank's projections decided on (outbox rows written in their
    checkpoint's transaction), in the order they were decided. Safe with several replicas:
    event ids are derived, so each event is written once."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        ref_store: EventStore,
        *,
        registry: EventRegistry,
        interval: float = 0.2,
    ) -> None:
        super().__init__(engine, OUTBOX, registry=registry, actor=SERVICE_ACTOR, interval=interval)
        self.stores = {"c": store, "r": ref_store}

    def store_for(self, row: Row[Any]) -> EventStore:
        return self.stores[row.stream]

    def ref_of(self, row: Row[Any]) -> AggregateRef:
        return AggregateRef(row.case_id, row.aggregate, row.aggregate_id)
