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
import uuid
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import CaseOpened
from ncii_contracts.referral import MandatoryReportDue, ReferralRevoked, SuspectReportDue
from ncii_events.envelope import Actor, utc_now
from ncii_events.ids import derived_uuid
from ncii_events.outbox import OutboxPublisher as EventOutboxPublisher
from ncii_events.outbox import cause_columns
from ncii_events.registry import EventRegistry
from ncii_events.store import AggregateRef, Decide, EventStore, RecordedEvent
from ncii_events.stream import CASES
from sqlalchemy import Connection, Row, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_referral.domain import Referral, revoke_on_withdrawal
from ncii_referral.read_models.schema import OUTBOX

SERVICE_ACTOR = Actor(organisation="ncii", principal="referral", role="service")
IDS = uuid.UUID("6a1d0f52-93c4-4b7e-8d25-0f4e9c1b7a38")


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
    """The case's CaseOpened alone, decrypted (its personal fields None once erased): one
    direct get, so nothing else of the case (the offender's details, notes) is decrypted."""
    found = await store.read_from(
        1, limit=1, decrypt=True, subject=CASES.subject(case_id, "case", case_id, "CaseOpened")
    )
    first = found[0].event if found else None
    return first if isinstance(first, CaseOpened) else None


async def holds(store: EventStore, ref: AggregateRef, event_id: str) -> bool:
    """Whether the aggregate already holds ``event_id`` (read without decrypting)."""
    return any(r.envelope.event_id == event_id for r in await store.load(ref, decrypt=False))


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
            **cause_columns(source),
            created_at=utc_now(),
            published_at=None,
        )
    )


class OutboxPublisher(EventOutboxPublisher):
    """Appends what the reactor decided, in the order it decided it."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        *,
        registry: EventRegistry,
        interval: float = 0.5,
    ) -> None:
        super().__init__(engine, OUTBOX, registry=registry, actor=SERVICE_ACTOR, interval=interval)
        self.store = store

    def store_for(self, row: Row[Any]) -> EventStore:
        return self.store

    def ref_of(self, row: Row[Any]) -> AggregateRef:
        return AggregateRef(row.case_id, row.aggregate, row.aggregate_id)

    def decider(self, row: Row[Any], event: DomainEvent) -> Decide | None:
        if not isinstance(event, ReferralRevoked):
            return None
        revoked_at = event.revoked_at

        # the service's revocation on a withdrawn consent (decision 36): decided on the
        # referral's history at append time, so one a counsellor completed meanwhile stays so
        def decide(history: list[RecordedEvent]) -> DomainEvent | None:
            referral = Referral.replay(
                (r.event, r.envelope.occurred_at) for r in history if r.event is not None
            )
            if referral is None:
                return None
            found = revoke_on_withdrawal(referral, revoked_at)
            return found[0] if found else None

        return decide

    async def _minor_and_open(self, case_id: str) -> bool:
        """Read without decrypting: a minor's case, neither withdrawn nor erased."""
        history = await self.store.load(case_ref(case_id), decrypt=False)
        opened = next((r.event for r in history if isinstance(r.event, CaseOpened)), None)
        closed = any(r.type in ("CaseWithdrawn", "CaseErased") for r in history)
        return opened is not None and opened.age_group == "minor" and not closed

    async def complete(self, row: Row[Any], event: DomainEvent) -> DomainEvent | None:
        if isinstance(event, ReferralRevoked):
            return event  # nothing to complete: ``decider`` checks the referral's history
        if await holds(self.store, self.ref_of(row), row.event_id):
            return None  # a replica, a replay or a rebuild: written already, nothing to decrypt
        if isinstance(event, SuspectReportDue) and not await self._minor_and_open(row.case_id):
            return None  # the offender became known in an adult's case, or a closed one
        if isinstance(event, (MandatoryReportDue, SuspectReportDue)):
            opened = await case_opened(self.store, row.case_id)
            region = opened.region if opened is not None else None
            event = event.model_copy(update={"region": region})
        return event
