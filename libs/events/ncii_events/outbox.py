"""An event outbox's publisher: the events a reactor decided on, written as rows in the
transaction that moved its checkpoint, appended to the log in the order they were decided (each
aggregate's, aggregates side by side, when the service sets ``concurrency``: decision 0053).

Hashmatch, takedown and referral each keep their own outbox table (their schemas differ in what
else a row says: the stream, the aggregate); every table has ``id``, ``event_id``, ``case_id``,
``event_type``, ``payload``, ``correlation_id``, ``causation_id``, ``traceparent`` and
``published_at``. Event ids are derived from what caused them, so a replay, a rebuild or a
second replica writes each event once (``append_once``). A row's ``traceparent`` is the span
that handled its cause (``cause_columns``): the event appended for it continues that trace,
whichever process appends it and whenever (decision 55).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ncii_contracts.base import DomainEvent
from sqlalchemy import Row, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_events import tracing
from ncii_events.db import write_transaction
from ncii_events.envelope import Actor, utc_now
from ncii_events.registry import EventRegistry
from ncii_events.store import (
    AggregateRef,
    Cause,
    Decide,
    EventStore,
    RecordedEvent,
    append_decided,
    append_once,
)
from ncii_events.worker import LoopWorker

log = logging.getLogger(__name__)


def cause_columns(source: RecordedEvent) -> dict[str, str | None]:
    """What an outbox row (or any row of work) says of the event that caused it: the
    correlation, the causation, and the trace to continue (``tracing.caused_by``)."""
    env = source.envelope
    return {
        "correlation_id": env.correlation_id,
        "causation_id": env.event_id,
        "traceparent": tracing.caused_by(env.event_id, env.traceparent),
    }


class OutboxStuckError(RuntimeError):
    """Nothing could be appended this round: the worker backs off and tries again."""


class OutboxPublisher(LoopWorker):
    """Appends a service's outbox rows. A service says where a row's event goes
    (``store_for``, ``ref_of``), may complete the event before it is appended (``complete``)
    and may have it decided again on its aggregate's history at append time (``decider``)."""

    name = "outbox"

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        *,
        registry: EventRegistry,
        actor: Actor,
        interval: float = 0.5,
        concurrency: int = 1,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.table = table
        self.registry = registry
        self.actor = actor
        self.interval = interval
        self.concurrency = concurrency
        """Aggregates appended to at once. 1: every row in the order decided; more: each
        aggregate's rows in the order decided, aggregates side by side (for a service whose
        aggregates' events do not depend on one another's order)."""
        self.published = 0

    def store_for(self, row: Row[Any]) -> EventStore:
        raise NotImplementedError

    def ref_of(self, row: Row[Any]) -> AggregateRef:
        raise NotImplementedError

    async def complete(self, row: Row[Any], event: DomainEvent) -> DomainEvent | None:
        """The event to append for ``row``; None when it needs no append."""
        return event

    def decider(self, row: Row[Any], event: DomainEvent) -> Decide | None:
        """For an event that holds only if the aggregate still allows it when appended (the
        reactor decided on an older state): the decision on the history read for the append
        (``append_decided``); None appends the event as it is."""
        return None

    async def step(self) -> int:
        return await self.publish_pending()

    async def publish_pending(self, limit: int = 200) -> int:
        table = self.table
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(table)
                    .where(table.c.published_at.is_(None))
                    .order_by(table.c.id)
                    .limit(limit)
                )
            ).all()
        lanes: list[list[Row[Any]]]
        if self.concurrency == 1:
            lanes = [list(rows)]
        else:
            by_aggregate: dict[AggregateRef, list[Row[Any]]] = {}
            for row in rows:
                by_aggregate.setdefault(self.ref_of(row), []).append(row)
            lanes = list(by_aggregate.values())
        published: list[int] = []
        stuck: set[AggregateRef] = set()
        gate = asyncio.Semaphore(self.concurrency)

        async def lane(rows: list[Row[Any]]) -> None:
            async with gate:
                for row in rows:
                    if self._stopping.is_set():
                        return
                    ref = self.ref_of(row)
                    if ref in stuck:
                        continue  # an aggregate's events go in the order decided
                    try:
                        await self._publish(row, ref)
                    except Exception as exc:
                        # one row that cannot be appended now (an outage, a case being
                        # erased) holds up its own aggregate only, never every row after it;
                        # it is retried next round
                        stuck.add(ref)
                        log.warning(
                            "outbox row %s not appended yet (%s)", row.id, type(exc).__name__
                        )
                        continue
                    published.append(row.id)

        try:
            await asyncio.gather(*(lane(rows) for rows in lanes))
        finally:
            # the round's rows marked in one transaction: a crash before it appends them again
            # next time, under the same event ids, which the aggregate already holds (a no-op)
            if published:
                async with write_transaction(self.engine) as conn:
                    await conn.execute(
                        update(table)
                        .where(table.c.id == bindparam("row_id"))
                        .values(published_at=utc_now()),
                        [{"row_id": row_id} for row_id in published],
                    )
        done = len(published)
        self.published += done
        if stuck and not done:
            raise OutboxStuckError(f"{len(stuck)} aggregates wait for an append")
        return done

    async def _publish(self, row: Row[Any], ref: AggregateRef) -> None:
        event_class = self.registry.event_class(row.event_type)
        decoded = self.registry.decode(row.event_type, event_class.version, json.loads(row.payload))
        event = await self.complete(row, decoded)
        if event is None:
            return
        cause = Cause(self.actor, row.correlation_id, row.causation_id)
        # A child of the span that handled the event which caused the row (its traceparent,
        # kept in the row: decision 55): the appended event's traceparent goes on with it.
        with tracing.work_span(
            f"ncii.outbox.publish {row.event_type}",
            parent=row.traceparent,
            attributes={
                "ncii.handler": self.name,
                "ncii.event_type": row.event_type,
                "ncii.event_id": row.event_id,
                "ncii.case_id": ref.case_id,
            },
        ):
            await self._append(row, ref, event, cause)

    async def _append(
        self, row: Row[Any], ref: AggregateRef, event: DomainEvent, cause: Cause
    ) -> None:
        decide = self.decider(row, event)
        if decide is None:
            await append_once(self.store_for(row), ref, event, row.event_id, cause)
        else:
            await append_decided(self.store_for(row), ref, decide, row.event_id, cause)

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).where(self.table.c.published_at.is_(None))
            return int((await conn.execute(query)).scalar_one())
