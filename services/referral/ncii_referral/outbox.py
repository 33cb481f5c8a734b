"""The reactor's outbox (decision 0033, the shape of takedown's, decision 0030): events the cases
projection decides on (a minor's ``MandatoryReportDue``) are written as ``rf_outbox`` rows in
the transaction that moves its checkpoint, then appended to the log by ``OutboxPublisher``.

No row holds personal data: a report's region (personal: it locates the victim) is left out of
the row and read from the case's own ``CaseOpened`` (decrypted) when the event is appended.

Every event id is derived from what caused it, so a replay, a rebuild or a second replica
writes each event once (``append_once`` skips ids the aggregate holds; the log drops duplicate
message ids). The application's commands and the overdue sweeper append the same way.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import CaseOpened
from ncii_contracts.referral import MandatoryReportDue
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
from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_referral.read_models.schema import OUTBOX

SERVICE_ACTOR = Actor(organisation="ncii", principal="referral", role="service")
IDS = uuid.UUID("6a1d0f52-93c4-4b7e-8d25-0f4e9c1b7a38")
log = logging.getLogger(__name__)


def derived_id(*parts: str) -> str:
    """A deterministic id (report and event ids derive from what caused them)."""
    return str(derived_uuid(IDS, *parts))


def minor_report_id(case_id: str) -> str:
    return derived_id(case_id, "victim_minor")


def suspect_report_id(case_id: str) -> str:
    return derived_id(case_id, "known_suspect")


def report_ref(case_id: str, report_id: str) -> AggregateRef:
    return AggregateRef(case_id, "mandatory_report", report_id)


def referral_ref(case_id: str, referral_id: str) -> AggregateRef:
    return AggregateRef(case_id, "referral", referral_id)


def case_ref(case_id: str) -> AggregateRef:
    """Intake's case aggregate (read only here)."""
    return AggregateRef(case_id, "case", case_id)


async def case_opened(store: EventStore, case_id: str) -> CaseOpened | None:
    """The case's CaseOpened, decrypted (its personal fields None once erased)."""
    for recorded in await store.load(case_ref(case_id)):
        if isinstance(recorded.event, CaseOpened):
            return recorded.event
    return None


async def holds(store: EventStore, ref: AggregateRef, event_id: str) -> bool:
    """Whether the aggregate already holds ``event_id`` (read without decrypting)."""
    return any(r.envelope.event_id == event_id for r in await store.load(ref, decrypt=False))


class OutboxStuckError(RuntimeError):
    """Nothing could be appended this round: the worker backs off and tries again."""


def write_outbox(
    conn: Connection,
    source: RecordedEvent,
    *,
    aggregate: str,
    aggregate_id: str,
    event: DomainEvent,
    event_id: str,
) -> None:
    """Record ``event`` for the publisher, once per id."""
    exists = conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.event_id == event_id)).first()
    if exists is not None:
        return
    conn.execute(
        insert(OUTBOX).values(
            event_id=event_id,
            case_id=source.case_id,
            aggregate=aggregate,
            aggregate_id=aggregate_id,
            event_type=event.event_type,
            payload=json.dumps(event.model_dump(mode="json", exclude={"region"})),
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
        stuck: set[tuple[str, str, str]] = set()
        for row in rows:
            if self._stopping.is_set():
                break
            ref = AggregateRef(row.case_id, row.aggregate, row.aggregate_id)
            key = (row.case_id, row.aggregate, row.aggregate_id)
            if key in stuck:
                continue  # an aggregate's events go in the order decided, after the stuck one
            try:
                await self._publish(row, ref)
            except Exception as exc:
                # one row that cannot be appended now (an outage, a case being erased) holds up
                # its own aggregate only, never every report after it; it is retried next round
                stuck.add(key)
                log.warning("outbox row %s not appended yet (%s)", row.id, type(exc).__name__)
                continue
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    update(OUTBOX).where(OUTBOX.c.id == row.id).values(published_at=utc_now())
                )
            done += 1
        if stuck and not done:
            raise OutboxStuckError(f"{len(stuck)} aggregates wait for an append")
        return done

    async def _publish(self, row: Row[Any], ref: AggregateRef) -> None:
        if await holds(self.store, ref, row.event_id):
            return  # a replica, a replay or a rebuild: written already, nothing to decrypt
        event_class = self.registry.event_class(row.event_type)
        event = self.registry.decode(row.event_type, event_class.version, json.loads(row.payload))
        if isinstance(event, MandatoryReportDue):
            opened = await case_opened(self.store, row.case_id)
            region = opened.region if opened is not None else None
            event = event.model_copy(update={"region": region})
        cause = Cause(SERVICE_ACTOR, row.correlation_id, row.causation_id)
        await append_once(self.store, ref, event, row.event_id, cause)

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).where(OUTBOX.c.published_at.is_(None))
            return int((await conn.execute(query)).scalar_one())
