"""How the log becomes the dashboard's tables (decision 0047).

Two projections, each with its own SQL checkpoint:

* ``dashboard_platforms`` follows the reference stream: the platform registry, and the
  sightings of imported lists' entries (they belong to no case).
* ``dashboard_cases`` follows the cases' stream: intake's case facts, takedown's, referral's and
  hashmatch's events of each case.

Neither decrypts (``decrypt = False``): a personal field reads as None here, and only clear,
closed fields are stored. A case's rows exist only while its ``dash_cases`` row does: an event of
a case the dashboard does not hold (erased, so deleted) writes nothing, and ``CaseErased``
deletes every row of the case and counts the erasure in its month. The fold reads event times
only (no clock), so a rebuild writes exactly what the live projection wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import MatchFeedbackReceived, MatchFound, SightingsCounted
from ncii_contracts.intake import (
    CaseClosed,
    CaseErased,
    CaseOpened,
    CaseReopened,
    CaseWithdrawn,
    LegalAssessmentRecorded,
    LocationReported,
    SpreadStatusChanged,
)
from ncii_contracts.referral import (
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralOffered,
    ReferralRevoked,
    SuspectReportDue,
    SuspectReportFiled,
    SuspectReportOverdue,
)
from ncii_contracts.takedown import (
    ContentRemoved,
    NoticeSent,
    PlatformRegistered,
    PlatformUpdated,
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
from ncii_events.db import upsert
from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from ncii_events.stream import CASES, REFERENCE, StreamSpec
from sqlalchemy import Connection, MetaData, delete, func, insert, select, update

from ncii_dashboard.read_models.schema import CASE_CATEGORIES as CATEGORIES
from ncii_dashboard.read_models.schema import (
    CASE_TABLES,
    ERASURES,
    LOCATIONS,
    MATCHES,
    METADATA,
    PLATFORMS,
    REFERRALS,
    REPORTS,
    SIGHTING_WINDOWS,
    TAKEDOWNS,
)
from ncii_dashboard.read_models.schema import CASES as CASE_ROWS

ENDED = ("removed", "fulfilled", "refused", "cancelled")
"""A takedown's final states: nothing later changes its status."""
REFERRAL_STATUS: dict[type, str] = {
    ReferralAccepted: "accepted",
    ReferralDeclined: "declined",
    ReferralCompleted: "completed",
    ReferralRevoked: "revoked",
}
CASE_EVENTS = (
    CaseOpened,
    CaseClosed,
    CaseReopened,
    CaseWithdrawn,
    CaseErased,
    LegalAssessmentRecorded,
    LocationReported,
    SpreadStatusChanged,
)
TAKEDOWN_EVENTS = (
    TakedownOpened,
    TakedownPlatformAssigned,
    TakedownRequested,
    NoticeSent,
    TakedownAcknowledged,
    ContentRemoved,
    RequestFulfilled,
    TakedownRefused,
    TakedownOverdue,
    TakedownEscalated,
    TakedownCancelled,
)
REPORT_EVENTS = (
    MandatoryReportDue,
    MandatoryReportSubmitted,
    MandatoryReportOverdue,
    SuspectReportDue,
    SuspectReportFiled,
    SuspectReportOverdue,
)
REFERRAL_EVENTS = (
    ReferralOffered,
    ReferralAccepted,
    ReferralDeclined,
    ReferralCompleted,
    ReferralRevoked,
)
MATCH_EVENTS = (MatchFound, SightingsCounted, MatchFeedbackReceived)
CASE_STREAM = (*CASE_EVENTS, *TAKEDOWN_EVENTS, *REPORT_EVENTS, *REFERRAL_EVENTS, *MATCH_EVENTS)
REFERENCE_STREAM = (PlatformRegistered, PlatformUpdated, *MATCH_EVENTS)
CONSUMES: tuple[type[DomainEvent], ...] = tuple(dict.fromkeys((*CASE_STREAM, *REFERENCE_STREAM)))
"""Every event the dashboard reads, and nothing else: its subjects name each type, so its NATS
user may read no other (notes, reasons, evidence records are never delivered to it)."""


def hours_between(start: str | None, end: str | None) -> float | None:
    """Hours from ``start`` to ``end`` (RFC 3339 times), or None when either is missing."""
    if not start or not end:
        return None
    return (_parse(end) - _parse(start)).total_seconds() / 3600


def not_after(at: str, deadline: str | None) -> bool | None:
    """Whether ``at`` is no later than ``deadline`` (None: no deadline ran)."""
    if not deadline:
        return None
    return _parse(at) <= _parse(deadline)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _count_sightings(conn: Connection, match_id: str) -> None:
    """A match's sightings: its windows' counts (each includes the window's first sighting, the
    one ``MatchFound`` records), or 1 while no window has closed."""
    total = conn.execute(
        select(func.coalesce(func.sum(SIGHTING_WINDOWS.c.sightings), 0)).where(
            SIGHTING_WINDOWS.c.match_id == match_id
        )
    ).scalar_one()
    conn.execute(
        update(MATCHES).where(MATCHES.c.match_id == match_id).values(sightings=max(1, total))
    )


def apply_match(conn: Connection, ev: object, case_id: str | None) -> None:
    """A sighting event of a case (``case_id``) or of an imported list (None)."""
    if isinstance(ev, MatchFound):
        exists = conn.execute(
            select(MATCHES.c.match_id).where(MATCHES.c.match_id == ev.match_id)
        ).first()
        if exists is None:
            conn.execute(
                insert(MATCHES).values(
                    match_id=ev.match_id,
                    case_id=case_id,
                    platform=ev.platform,
                    seen_at=ev.seen_at,
                    sightings=1,
                    verdict=None,
                )
            )
            _count_sightings(conn, ev.match_id)
    elif isinstance(ev, SightingsCounted):
        upsert(
            conn,
            SIGHTING_WINDOWS,
            {
                "match_id": ev.match_id,
                "window_start": ev.window_start,
                "case_id": case_id,
                "sightings": ev.sightings,
            },
            ["match_id", "window_start"],
        )
        _count_sightings(conn, ev.match_id)
    elif isinstance(ev, MatchFeedbackReceived):
        conn.execute(
            update(MATCHES).where(MATCHES.c.match_id == ev.match_id).values(verdict=ev.verdict)
        )


class PlatformsProjection(Projection):
    name: ClassVar[str] = "dashboard_platforms"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = REFERENCE
    subjects: ClassVar[tuple[str, ...]] = tuple(
        f"{REFERENCE.prefix}.{e.aggregate}.*.{e.event_type}" for e in REFERENCE_STREAM
    )

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if isinstance(ev, PlatformRegistered):  # PlatformUpdated is one too
            upsert(
                conn,
                PLATFORMS,
                {
                    "platform_id": ev.platform_id,
                    "name": ev.name,
                    "kind": ev.kind,
                    "jurisdiction": ev.jurisdiction,
                    "api_organisation": ev.api_organisation,
                },
                ["platform_id"],
            )
        elif isinstance(ev, MATCH_EVENTS):
            apply_match(conn, ev, None)


class CasesProjection(Projection):
    name: ClassVar[str] = "dashboard_cases"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = CASES
    subjects: ClassVar[tuple[str, ...]] = tuple(
        f"{CASES.prefix}.*.{e.aggregate}.*.{e.event_type}" for e in CASE_STREAM
    )

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        case_id = event.case_id
        if isinstance(ev, CaseOpened):
            self._opened(conn, event, ev)
            return
        if not _held(conn, case_id):
            return  # erased (its rows are gone), or never opened here
        at = event.envelope.occurred_at
        if isinstance(ev, CASE_EVENTS):
            self._case(conn, case_id, ev, at)
        elif isinstance(ev, TAKEDOWN_EVENTS):
            self._takedown(conn, case_id, ev, at)
        elif isinstance(ev, REPORT_EVENTS):
            self._report(conn, case_id, ev)
        elif isinstance(ev, REFERRAL_EVENTS):
            self._referral(conn, case_id, ev, at)
        elif isinstance(ev, MATCH_EVENTS):
            apply_match(conn, ev, case_id)

    # -- cases ------------------------------------------------------------------------------

    def _opened(self, conn: Connection, event: RecordedEvent, ev: CaseOpened) -> None:
        case_id = event.case_id
        upsert(
            conn,
            CASE_ROWS,
            {
                "case_id": case_id,
                "organisation": ev.organisation,
                "age_group": ev.age_group,
                "intake_channel": ev.intake_channel,
                "spread_status": ev.spread_status,
                "status": "open",
                "opened_at": event.envelope.occurred_at,
                "closed_at": None,
            },
            ["case_id"],
        )
        _categories(conn, case_id, ev.harm_categories)

    def _case(self, conn: Connection, case_id: str, ev: Any, at: str) -> None:
        where = CASE_ROWS.c.case_id == case_id
        if isinstance(ev, CaseErased):
            for table in CASE_TABLES:
                conn.execute(delete(table).where(table.c.case_id == case_id))
            conn.execute(delete(CASE_ROWS).where(where))
            month = at[:7]
            counted = conn.execute(
                update(ERASURES)
                .where(ERASURES.c.month == month)
                .values(erased=ERASURES.c.erased + 1)
            )
            if counted.rowcount == 0:
                conn.execute(insert(ERASURES).values(month=month, erased=1))
        elif isinstance(ev, CaseWithdrawn):
            conn.execute(update(CASE_ROWS).where(where).values(status="withdrawn", closed_at=at))
        elif isinstance(ev, CaseClosed):
            conn.execute(
                update(CASE_ROWS)
                .where(where, CASE_ROWS.c.status == "open")
                .values(status="closed", closed_at=at)
            )
        elif isinstance(ev, CaseReopened):
            conn.execute(
                update(CASE_ROWS)
                .where(where, CASE_ROWS.c.status == "closed")
                .values(status="open", closed_at=None)
            )
        elif isinstance(ev, SpreadStatusChanged):
            conn.execute(update(CASE_ROWS).where(where).values(spread_status=ev.spread_status))
        elif isinstance(ev, LegalAssessmentRecorded):
            _categories(conn, case_id, ev.categories)
        elif isinstance(ev, LocationReported):
            exists = conn.execute(
                select(LOCATIONS.c.location_id).where(LOCATIONS.c.location_id == ev.location_id)
            ).first()
            if exists is None:
                conn.execute(
                    insert(LOCATIONS).values(
                        location_id=ev.location_id,
                        case_id=case_id,
                        channel_kind=ev.channel_kind,
                        reported_at=at,
                    )
                )

    # -- takedowns --------------------------------------------------------------------------

    def _takedown(self, conn: Connection, case_id: str, ev: Any, at: str) -> None:
        takedown_id: str = ev.takedown_id
        if isinstance(ev, TakedownOpened):
            exists = conn.execute(
                select(TAKEDOWNS.c.takedown_id).where(TAKEDOWNS.c.takedown_id == takedown_id)
            ).first()
            if exists is None:
                conn.execute(
                    insert(TAKEDOWNS).values(
                        takedown_id=takedown_id,
                        case_id=case_id,
                        source=ev.source,
                        purpose=ev.purpose,
                        platform_id=ev.platform_id,
                        status="opened",
                        opened_at=at,
                        overdue=False,
                        escalated=False,
                    )
                )
            return
        row = conn.execute(
            select(TAKEDOWNS.c.status, TAKEDOWNS.c.sent_at, TAKEDOWNS.c.deadline_at).where(
                TAKEDOWNS.c.takedown_id == takedown_id
            )
        ).first()
        if row is None:
            return
        where = TAKEDOWNS.c.takedown_id == takedown_id
        open_ = row.status not in ENDED
        values: dict[str, Any] = {}
        if isinstance(ev, TakedownPlatformAssigned):
            values = {"platform_id": ev.platform_id}
        elif isinstance(ev, TakedownRequested):
            values = {
                "platform_id": ev.platform_id,
                "deadline_regime": ev.deadline_regime,
                "legal": ev.legal,
            }
            if open_:
                values["status"] = "requested"
        elif isinstance(ev, NoticeSent):
            values = {"sent_at": ev.sent_at, "deadline_at": ev.deadline_at}
            if open_:
                values["status"] = "sent"
        elif isinstance(ev, TakedownAcknowledged):
            if open_:
                values = {"status": "acknowledged"}
        elif isinstance(ev, (ContentRemoved, RequestFulfilled, TakedownRefused)):
            if open_:
                if isinstance(ev, ContentRemoved):
                    status, ended = "removed", ev.removed_at
                elif isinstance(ev, RequestFulfilled):
                    status, ended = "fulfilled", ev.fulfilled_at
                else:
                    status, ended = "refused", ev.refused_at
                values = {
                    "status": status,
                    "ended_at": ended,
                    "in_time": not_after(ended, row.deadline_at),
                    "hours_to_end": hours_between(row.sent_at, ended),
                }
                if isinstance(ev, TakedownRefused):
                    values["refusal_reason"] = ev.reason
        elif isinstance(ev, TakedownOverdue):
            values = {"overdue": True}
        elif isinstance(ev, TakedownEscalated):
            values = {"escalated": True}
        elif isinstance(ev, TakedownCancelled) and open_:
            values = {"status": "cancelled", "ended_at": at}
        if values:
            conn.execute(update(TAKEDOWNS).where(where).values(**values))

    # -- art. 7 reports ---------------------------------------------------------------------

    def _report(self, conn: Connection, case_id: str, ev: Any) -> None:
        where = REPORTS.c.report_id == ev.report_id
        if isinstance(ev, (MandatoryReportDue, SuspectReportDue)):
            exists = conn.execute(select(REPORTS.c.report_id).where(where)).first()
            if exists is None:
                conn.execute(
                    insert(REPORTS).values(
                        report_id=ev.report_id,
                        case_id=case_id,
                        kind="victim_minor"
                        if isinstance(ev, MandatoryReportDue)
                        else "known_suspect",
                        status="due",
                        due_at=ev.due_at,
                    )
                )
        elif isinstance(ev, (MandatoryReportSubmitted, SuspectReportFiled)):
            conn.execute(
                update(REPORTS)
                .where(where)
                .values(status="filed", filed_at=ev.filed_at, late=ev.late)
            )
        elif isinstance(ev, (MandatoryReportOverdue, SuspectReportOverdue)):
            conn.execute(
                update(REPORTS).where(where, REPORTS.c.status == "due").values(status="overdue")
            )

    # -- referrals --------------------------------------------------------------------------

    def _referral(self, conn: Connection, case_id: str, ev: Any, at: str) -> None:
        if isinstance(ev, ReferralOffered):
            exists = conn.execute(
                select(REFERRALS.c.referral_id).where(REFERRALS.c.referral_id == ev.referral_id)
            ).first()
            if exists is None:
                conn.execute(
                    insert(REFERRALS).values(
                        referral_id=ev.referral_id,
                        case_id=case_id,
                        partner_organisation=ev.partner_organisation,
                        service=ev.service,
                        status="offered",
                        offered_at=at,
                    )
                )
        else:
            conn.execute(
                update(REFERRALS)
                .where(REFERRALS.c.referral_id == ev.referral_id)
                .values(status=REFERRAL_STATUS[type(ev)])
            )


def _held(conn: Connection, case_id: str) -> bool:
    found = conn.execute(select(CASE_ROWS.c.case_id).where(CASE_ROWS.c.case_id == case_id)).first()
    return found is not None


def _categories(conn: Connection, case_id: str, categories: Sequence[str]) -> None:
    conn.execute(delete(CATEGORIES).where(CATEGORIES.c.case_id == case_id))
    rows = [{"case_id": case_id, "category": c} for c in dict.fromkeys(categories)]
    if rows:
        conn.execute(insert(CATEGORIES), rows)
