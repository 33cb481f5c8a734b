"""How the log becomes takedown's read models, and the reactor (decision 0030).

``PlatformsProjection`` follows the reference stream (the registry). ``TakedownsProjection``
follows the cases' stream: intake's case facts, hashmatch's sightings (``MatchFound``) and
takedown's own events. Its effects besides rows are outbox rows (``ncii_takedown.outbox``) and
delivery rows, written in the checkpoint's transaction:

* a reported location or a sighting of a case that consents to takedowns opens a takedown
  (TakedownOpened; a sighting of content an earlier takedown removed links to it);
* once a takedown has its evidence, its platform and its case's legal ground (a minor, or an
  adult's statement), its notice is requested (TakedownRequested), and applying that queues the
  notice for delivery (webhook) or for a case worker (web form, e-mail);
* a withdrawn or erased case cancels every takedown not yet ended (TakedownCancelled), and
  applying that queues a cancellation for a platform that was told; withdrawing the consent to
  takedowns cancels the removals alone (decision 0044);
* a takedown that ends (removed, refused, fulfilled, cancelled) has its evidence kept 180 days
  (EvidenceRetentionScheduled, decision 0032): the retention sweeper erases it when due.

Every decided event's id derives from the event that caused it, so a replay is a no-op. The
projection reads decrypted events (``LocationReported.platform`` may be personal) and stores
nothing personal: a location's platform name becomes a registered platform's id, or nothing.
The two projections share their tables, so they are rebuilt together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

from ncii_contracts.hashmatch import MatchFound
from ncii_contracts.intake import (
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    ConsentsChanged,
    LocationReported,
    NonConsentRecorded,
)
from ncii_contracts.takedown import (
    CancelReason,
    ContentRemoved,
    EscalationSent,
    EvidenceErased,
    EvidencePreserved,
    EvidenceRetentionScheduled,
    NoticeSent,
    PlatformRegistered,
    RequestFulfilled,
    TakedownAcknowledged,
    TakedownCancelled,
    TakedownEscalated,
    TakedownOpened,
    TakedownOverdue,
    TakedownPlatformAssigned,
    TakedownRefused,
    TakedownRequested,
)
from ncii_events import tracing
from ncii_events.db import upsert
from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from ncii_events.stream import CASES, REFERENCE, REFERENCE_CASE, StreamSpec
from sqlalchemy import Connection, MetaData, bindparam, insert, or_, select, update

from ncii_takedown import domain
from ncii_takedown.outbox import derived_id, write_outbox
from ncii_takedown.read_models.schema import CASES as CASE_ROWS
from ncii_takedown.read_models.schema import (
    DELIVERIES,
    METADATA,
    PLATFORMS,
    TAKEDOWNS,
)

AUTHORITY = "authority"
"""The registry's kind for an authority (escalations go to it; it takes no notices)."""


def name_key(name: str) -> str:
    """How a platform's name is compared: case and spacing do not matter."""
    return " ".join(name.split()).casefold()[:100]


def location_takedown_id(case_id: str, location_id: str) -> str:
    return derived_id(case_id, "location", location_id)


def match_takedown_id(case_id: str, source_event_id: str) -> str:
    return derived_id(case_id, "match", source_event_id)


def notice_id_of(takedown_id: str) -> str:
    return derived_id(takedown_id, "notice")


class PlatformsProjection(Projection):
    name: ClassVar[str] = "platforms"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = REFERENCE
    subjects: ClassVar[tuple[str, ...]] = (f"{REFERENCE.prefix}.platform.>",)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if not isinstance(ev, PlatformRegistered):  # PlatformUpdated is one too
            return
        existing = conn.execute(
            select(PLATFORMS.c.registered_at).where(PLATFORMS.c.platform_id == ev.platform_id)
        ).first()
        at = event.envelope.occurred_at
        upsert(
            conn,
            PLATFORMS,
            {
                "platform_id": ev.platform_id,
                "name": ev.name,
                "name_key": name_key(ev.name),
                "kind": ev.kind,
                "jurisdiction": ev.jurisdiction,
                "regimes": ",".join(ev.regimes),
                "channel": ev.channel,
                "webhook_url": ev.webhook_url,
                "email": ev.email,
                "form_url": ev.form_url,
                "api_organisation": ev.api_organisation,
                "takes_hash_lists": ev.takes_hash_lists,
                "trusted_flagger": ev.trusted_flagger,
                "secret_version": ev.secret_version,
                "registered_at": existing[0] if existing is not None else at,
                "updated_at": at,
            },
            ["platform_id"],
        )


# ``NoticeSent``, one per delivered notice: applied a run at a time with these statements,
# built once (an executemany each), never reading the row (decision 0053)
_SENT = (
    update(TAKEDOWNS)
    .where(TAKEDOWNS.c.takedown_id == bindparam("t_id"))
    .values(
        status="sent",
        sent_at=bindparam("t_sent_at"),
        deadline_at=bindparam("t_deadline_at"),
        updated_at=bindparam("t_at"),
    )
)
_SENT_DELIVERED = (
    update(DELIVERIES)
    .where(
        DELIVERIES.c.delivery_id == bindparam("d_id"),
        # pending, manual or dead: as ``_settle`` (an executemany takes no IN list)
        or_(
            DELIVERIES.c.status == "pending",
            DELIVERIES.c.status == "manual",
            DELIVERIES.c.status == "dead",
        ),
    )
    .values(status="delivered", delivered_at=bindparam("d_at"))
)


def _case_facts(row: Any) -> domain.CaseFacts:
    return domain.CaseFacts(
        organisation=row.organisation,
        age_group=row.age_group,
        consents_takedown=row.consents_takedown,
        statement_recorded=row.statement_recorded,
        closed=row.closed is not None,
    )


class TakedownsProjection(Projection):
    name: ClassVar[str] = "takedowns"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = CASES
    decrypt: ClassVar[bool] = True
    subjects: ClassVar[tuple[str, ...]] = (
        f"{CASES.prefix}.*.case.*.CaseOpened",
        f"{CASES.prefix}.*.case.*.ConsentsChanged",
        f"{CASES.prefix}.*.case.*.NonConsentRecorded",
        f"{CASES.prefix}.*.case.*.LocationReported",
        f"{CASES.prefix}.*.case.*.CaseWithdrawn",
        f"{CASES.prefix}.*.case.*.CaseErased",
        f"{CASES.prefix}.*.match.*.MatchFound",
        f"{CASES.prefix}.*.takedown.>",
    )

    def apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        """Each run of ``NoticeSent`` in two statements; every other event as it comes, after
        the runs before it (the log's order)."""
        sent: list[RecordedEvent] = []
        for event in events:
            if isinstance(event.event, NoticeSent):
                sent.append(event)
                continue
            if sent:
                self._sent(conn, sent)
                sent = []
            self.apply(conn, event)
        if sent:
            self._sent(conn, sent)

    def _sent(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        rows, settled = [], []
        for event in events:
            ev = event.event
            assert isinstance(ev, NoticeSent)
            at = event.envelope.occurred_at
            rows.append(
                {
                    "t_id": ev.takedown_id,
                    "t_sent_at": ev.sent_at,
                    "t_deadline_at": ev.deadline_at,
                    "t_at": at,
                }
            )
            settled.append({"d_id": ev.notice_id, "d_at": at})
        conn.execute(_SENT, rows)
        conn.execute(_SENT_DELIVERED, settled)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        case_id = event.case_id
        if isinstance(ev, NoticeSent):  # the hot path: see ``apply_batch``
            self._sent(conn, [event])
        elif isinstance(ev, CaseOpened):
            upsert(
                conn,
                CASE_ROWS,
                {
                    "case_id": case_id,
                    "organisation": ev.organisation,
                    "age_group": ev.age_group,
                    "consents_takedown": ev.consents.takedown,
                    "statement_recorded": False,
                    "closed": None,
                },
                ["case_id"],
            )
        elif isinstance(ev, ConsentsChanged):
            # new locations and sightings follow the current consent; withdrawing it cancels
            # the removals not yet ended (freeze and preserve notices stay: decision 0044)
            if ev.takedown is not None:
                conn.execute(
                    update(CASE_ROWS)
                    .where(CASE_ROWS.c.case_id == case_id)
                    .values(consents_takedown=ev.takedown)
                )
            if ev.takedown is False:
                for row in conn.execute(
                    select(TAKEDOWNS).where(
                        TAKEDOWNS.c.case_id == case_id, TAKEDOWNS.c.purpose == "removal"
                    )
                ).all():
                    self._cancel(conn, event, row, "consent_withdrawn")
        elif isinstance(ev, NonConsentRecorded):
            conn.execute(
                update(CASE_ROWS)
                .where(CASE_ROWS.c.case_id == case_id)
                .values(statement_recorded=True)
            )
            for row in conn.execute(
                select(TAKEDOWNS).where(
                    TAKEDOWNS.c.case_id == case_id, TAKEDOWNS.c.status == "opened"
                )
            ).all():
                self._maybe_request(conn, event, row)
        elif isinstance(ev, LocationReported):
            self._open_for_location(conn, event, ev)
        elif isinstance(ev, MatchFound):
            if case_id != REFERENCE_CASE and not ev.url_withheld:
                self._open_for_match(conn, event, ev)
        elif isinstance(ev, (CaseWithdrawn, CaseErased)):
            reason = "case_withdrawn" if isinstance(ev, CaseWithdrawn) else "case_erased"
            self._close_case(conn, event, reason)
        elif ev is not None and ev.aggregate == "takedown":
            self._apply_own(conn, event)

    # -- the reactor's decisions ---------------------------------------------------------------

    def _case(self, conn: Connection, case_id: str) -> Any:
        return conn.execute(select(CASE_ROWS).where(CASE_ROWS.c.case_id == case_id)).first()

    def _open(
        self, conn: Connection, cause: RecordedEvent, takedown_id: str, **fields: Any
    ) -> None:
        case = self._case(conn, cause.case_id)
        if case is None or not domain.opens_takedown(_case_facts(case)):
            return
        (event,) = domain.Takedown.open(
            takedown_id, source_event_id=cause.envelope.event_id, **fields
        )
        write_outbox(
            conn,
            cause,
            case_id=cause.case_id,
            event=event,
            event_id=derived_id(takedown_id, "opened"),
        )

    def _open_for_location(
        self, conn: Connection, source: RecordedEvent, ev: LocationReported
    ) -> None:
        platform_id = None
        if ev.platform:  # None once erased, or when the name is withheld
            row = conn.execute(
                select(PLATFORMS.c.platform_id)
                .where(PLATFORMS.c.name_key == name_key(ev.platform), PLATFORMS.c.kind != AUTHORITY)
                .order_by(PLATFORMS.c.registered_at)
            ).first()
            platform_id = row[0] if row is not None else None
        self._open(
            conn,
            source,
            location_takedown_id(source.case_id, ev.location_id),
            source="location",
            location_id=ev.location_id,
            platform_id=platform_id,
        )

    def _open_for_match(self, conn: Connection, source: RecordedEvent, ev: MatchFound) -> None:
        row = conn.execute(
            select(PLATFORMS.c.platform_id)
            .where(PLATFORMS.c.api_organisation == ev.platform, PLATFORMS.c.kind != AUTHORITY)
            .order_by(PLATFORMS.c.registered_at)
        ).first()
        prior = conn.execute(
            select(TAKEDOWNS.c.takedown_id, TAKEDOWNS.c.entry_key, TAKEDOWNS.c.status)
            .where(TAKEDOWNS.c.case_id == source.case_id)
            .order_by(TAKEDOWNS.c.opened_at, TAKEDOWNS.c.takedown_id)
        ).all()
        self._open(
            conn,
            source,
            match_takedown_id(source.case_id, source.envelope.event_id),
            source="match",
            match_id=ev.match_id,
            entry_key=ev.entry_key,
            platform_id=row[0] if row is not None else None,
            previous_takedown_id=domain.previous_removed(
                ((r[0], r[1], r[2]) for r in prior), ev.entry_key
            ),
        )

    def _maybe_request(self, conn: Connection, source: RecordedEvent, takedown: Any) -> None:
        case = self._case(conn, takedown.case_id)
        if case is None:
            return
        missing = domain.missing_for_notice(
            status=takedown.status,
            has_evidence=takedown.evidence > 0,
            has_platform=takedown.platform_id is not None,
            case=_case_facts(case),
        )
        if missing is not None:
            return
        platform = conn.execute(
            select(PLATFORMS).where(PLATFORMS.c.platform_id == takedown.platform_id)
        ).first()
        if platform is None:
            return  # not in this replica's registry yet (a rebuild): the log holds the decision
        event = domain.notice_requested(
            takedown_id=takedown.takedown_id,
            notice_id=notice_id_of(takedown.takedown_id),
            platform_id=platform.platform_id,
            channel=platform.channel,
            regimes=platform.regimes.split(","),
            trusted_flagger=platform.trusted_flagger,
            age_group=case.age_group,
        )
        write_outbox(
            conn,
            source,
            case_id=takedown.case_id,
            event=event,
            event_id=derived_id(takedown.takedown_id, "requested"),
        )

    def _close_case(self, conn: Connection, source: RecordedEvent, reason: str) -> None:
        case_id = source.case_id
        conn.execute(
            update(CASE_ROWS)
            .where(CASE_ROWS.c.case_id == case_id, CASE_ROWS.c.closed.is_(None))
            .values(closed=reason)
        )
        for row in conn.execute(select(TAKEDOWNS).where(TAKEDOWNS.c.case_id == case_id)).all():
            self._cancel(conn, source, row, reason)

    def _cancel(self, conn: Connection, source: RecordedEvent, takedown: Any, reason: str) -> None:
        if takedown.status in domain.FINAL:
            return
        cancelled = TakedownCancelled(
            takedown_id=takedown.takedown_id,
            notice_id=takedown.notice_id,
            reason=cast(CancelReason, reason),
        )
        write_outbox(
            conn,
            source,
            case_id=takedown.case_id,
            event=cancelled,
            event_id=derived_id(takedown.takedown_id, "cancelled"),
        )

    # -- takedown's own events -----------------------------------------------------------------

    def _apply_own(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        at = event.envelope.occurred_at
        if isinstance(ev, TakedownOpened):
            exists = conn.execute(
                select(TAKEDOWNS.c.takedown_id).where(TAKEDOWNS.c.takedown_id == ev.takedown_id)
            ).first()
            if exists is None:
                conn.execute(
                    insert(TAKEDOWNS).values(
                        takedown_id=ev.takedown_id,
                        case_id=event.case_id,
                        source=ev.source,
                        location_id=ev.location_id,
                        match_id=ev.match_id,
                        entry_key=ev.entry_key,
                        platform_id=ev.platform_id,
                        previous_takedown_id=ev.previous_takedown_id,
                        status="opened",
                        evidence=0,
                        opened_at=at,
                        updated_at=at,
                        purpose=ev.purpose,
                    )
                )
            case = self._case(conn, event.case_id)
            row = self._row(conn, ev.takedown_id)
            if case is not None and case.closed is not None:
                # the case closed while this opening waited in the outbox
                self._cancel(conn, event, row, case.closed)
            elif case is not None and not case.consents_takedown and ev.purpose == "removal":
                # the victim withdrew her consent while this opening waited in the outbox
                self._cancel(conn, event, row, "consent_withdrawn")
            return
        assert ev is not None
        takedown_id = getattr(ev, "takedown_id", "")
        values: dict[str, Any] = {"updated_at": at}
        if isinstance(ev, TakedownPlatformAssigned):
            values["platform_id"] = ev.platform_id
        elif isinstance(ev, EvidencePreserved):
            values["evidence"] = TAKEDOWNS.c.evidence + 1
        elif isinstance(ev, TakedownRequested):
            values.update(
                status="requested",
                notice_id=ev.notice_id,
                platform_id=ev.platform_id,
                channel=ev.channel,
                deadline_regime=ev.deadline_regime,
                deadline_hours=ev.deadline_hours,
                legal=ev.legal,
            )
        elif isinstance(ev, TakedownAcknowledged):
            values["acknowledged_at"] = ev.acknowledged_at
        elif isinstance(ev, ContentRemoved):
            values.update(status="removed", removed_at=ev.removed_at, ended_at=at)
        elif isinstance(ev, TakedownRefused):
            values.update(status="refused", refused_reason=ev.reason, ended_at=at)
        elif isinstance(ev, TakedownOverdue):
            values["status"] = "overdue"
        elif isinstance(ev, TakedownEscalated):
            values["status"] = "escalated"
        elif isinstance(ev, TakedownCancelled):
            values.update(status="cancelled", ended_at=at)
        elif isinstance(ev, RequestFulfilled):
            values.update(status="fulfilled", ended_at=at)
        elif isinstance(ev, EvidenceRetentionScheduled):
            values["erase_at"] = ev.erase_at
        elif isinstance(ev, EvidenceErased):
            values["evidence_erased_at"] = ev.erased_at
        elif isinstance(ev, EscalationSent):
            self._settle(conn, f"{ev.notice_id}:escalation", "delivered", at)
        before = self._row(conn, takedown_id)
        if before is None:
            return
        if isinstance(ev, TakedownAcknowledged) and before.status == "sent":
            values["status"] = "acknowledged"
        conn.execute(
            update(TAKEDOWNS).where(TAKEDOWNS.c.takedown_id == takedown_id).values(**values)
        )
        after = self._row(conn, takedown_id)
        if isinstance(ev, (TakedownPlatformAssigned, EvidencePreserved)):
            self._maybe_request(conn, event, after)
        elif isinstance(ev, TakedownRequested):
            self._queue(conn, event, after, "notice", at)
        elif isinstance(ev, TakedownEscalated):
            # to the authority registered for the notice's regime (the deliverer finds it)
            self._queue(conn, event, after, "escalation", at)
        elif isinstance(ev, TakedownCancelled):
            self._settle(conn, after.notice_id, "cancelled", at)
            if before.sent_at is not None:  # the platform was told: tell it the notice ended
                self._queue(conn, event, after, "cancellation", at, cancel_reason=ev.reason)
        if (
            isinstance(ev, (ContentRemoved, TakedownRefused, TakedownCancelled, RequestFulfilled))
            and before.status not in domain.FINAL
        ):
            self._schedule_retention(conn, event, after, at)

    def _schedule_retention(
        self, conn: Connection, source: RecordedEvent, takedown: Any, ended_at: str
    ) -> None:
        """The takedown ended: its evidence is kept 180 days from then (decision 0032)."""
        if takedown.erase_at is not None:
            return
        write_outbox(
            conn,
            source,
            case_id=takedown.case_id,
            event=EvidenceRetentionScheduled(
                takedown_id=takedown.takedown_id,
                ended_at=ended_at,
                erase_at=domain.retention_erase_at(ended_at),
            ),
            event_id=derived_id(takedown.takedown_id, "retention"),
        )

    def _row(self, conn: Connection, takedown_id: str) -> Any:
        return conn.execute(select(TAKEDOWNS).where(TAKEDOWNS.c.takedown_id == takedown_id)).first()

    def _queue(
        self,
        conn: Connection,
        source: RecordedEvent,
        takedown: Any,
        kind: str,
        at: str,
        *,
        cancel_reason: str | None = None,
    ) -> None:
        suffix = {"notice": "", "cancellation": ":cancel", "escalation": ":escalation"}[kind]
        delivery_id = f"{takedown.notice_id}{suffix}"
        exists = conn.execute(
            select(DELIVERIES.c.id).where(DELIVERIES.c.delivery_id == delivery_id)
        ).first()
        if exists is not None:
            return
        conn.execute(
            insert(DELIVERIES).values(
                delivery_id=delivery_id,
                kind=kind,
                takedown_id=takedown.takedown_id,
                case_id=takedown.case_id,
                notice_id=takedown.notice_id,
                platform_id=takedown.platform_id,
                channel=takedown.channel,
                cancel_reason=cancel_reason,
                # e-mail too: the deliverer hands it to a case worker when no server is set
                status="pending"
                if kind == "escalation" or takedown.channel in ("webhook", "email")
                else "manual",
                attempts=0,
                next_attempt_at=None,
                created_at=at,
                # the deliverer's span continues the trace of what queued it (decision 55)
                traceparent=tracing.caused_by(
                    source.envelope.event_id, source.envelope.traceparent
                ),
            )
        )

    def _settle(self, conn: Connection, delivery_id: str | None, status: str, at: str) -> None:
        """A delivery row ends (a notice's id names its notice row): sent (by whoever sent it)
        or no longer to send."""
        if delivery_id is None:
            return
        conn.execute(
            update(DELIVERIES)
            .where(
                DELIVERIES.c.delivery_id == delivery_id,
                DELIVERIES.c.status.in_(("pending", "manual", "dead")),
            )
            .values(status=status, delivered_at=at if status == "delivered" else None)
        )
