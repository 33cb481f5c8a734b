"""How the log becomes referral's read models, and the reactor (decisions 0033, 0036).

``PartnersProjection`` follows the reference stream (the registry). ``ReferralsProjection``
follows the cases' stream: intake's case facts and referral's own events. Its effects besides
rows, through the outbox in the checkpoint's transaction under ids derived from their cause (a
replay writes each once): a minor's ``CaseOpened`` opens the art. 7 report
(``MandatoryReportDue``, due 24 hours after ``learned_at``); her consent to referral withdrawn
revokes the open referrals that rest on it (``ReferralRevoked``, ``consent_withdrawn``).
It reads decrypted events (it needs to know whether a case's channels include a social platform,
for guidance) and stores nothing personal.

``OffendersProjection`` reads intake's offender details without decrypting them: whether the
offender is known, and a minor's suspect report when the offender becomes known.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ncii_contracts.intake import (
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    ConsentsChanged,
    MandatoryReportFiled,
    OffenderDetailsRecorded,
)
from ncii_contracts.referral import (
    GuidanceItemTicked,
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
    PartnerRegistered,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralOffered,
    ReferralRevoked,
    SuspectReportDue,
    SuspectReportFiled,
    SuspectReportOverdue,
)
from ncii_events.db import upsert
from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from ncii_events.stream import CASES, REFERENCE, StreamSpec
from sqlalchemy import Connection, MetaData, insert, select, update

from ncii_referral import domain
from ncii_referral.outbox import derived_id, minor_report_id, suspect_report_id, write_outbox
from ncii_referral.read_models.schema import CASES as CASE_ROWS
from ncii_referral.read_models.schema import (
    GUIDANCE,
    METADATA,
    OFFENDERS,
    PARTNERS,
    REFERRALS,
    REPORTS,
)

STATUS_OF: dict[type, str] = {
    ReferralAccepted: "accepted",
    ReferralDeclined: "declined",
    ReferralCompleted: "completed",
    ReferralRevoked: "revoked",
}


class PartnersProjection(Projection):
    name: ClassVar[str] = "partners"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = REFERENCE
    subjects: ClassVar[tuple[str, ...]] = (f"{REFERENCE.prefix}.partner.>",)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if not isinstance(ev, PartnerRegistered):  # PartnerUpdated is one too
            return
        existing = conn.execute(
            select(PARTNERS.c.registered_at).where(PARTNERS.c.partner_id == ev.partner_id)
        ).first()
        at = event.envelope.occurred_at
        upsert(
            conn,
            PARTNERS,
            {
                "partner_id": ev.partner_id,
                "organisation": ev.organisation,
                "name": ev.name,
                "services": ",".join(ev.services),
                "regions": ",".join(ev.regions),
                "languages": ",".join(ev.languages),
                "taking_referrals": ev.taking_referrals,
                "registered_at": existing[0] if existing is not None else at,
                "updated_at": at,
            },
            ["partner_id"],
        )


class ReferralsProjection(Projection):
    name: ClassVar[str] = "referrals"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = CASES
    decrypt: ClassVar[bool] = True
    subjects: ClassVar[tuple[str, ...]] = (
        f"{CASES.prefix}.*.case.*.CaseOpened",
        f"{CASES.prefix}.*.case.*.ConsentsChanged",
        f"{CASES.prefix}.*.case.*.CaseWithdrawn",
        f"{CASES.prefix}.*.case.*.CaseErased",
        f"{CASES.prefix}.*.case.*.MandatoryReportFiled",
        f"{CASES.prefix}.*.referral.>",
        f"{CASES.prefix}.*.mandatory_report.>",
        f"{CASES.prefix}.*.guidance.>",
    )

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        case_id = event.case_id
        at = event.envelope.occurred_at
        if isinstance(ev, CaseOpened):
            self._case_opened(conn, event, ev)
        elif isinstance(ev, ConsentsChanged):
            # the gate reads the case's current consent (decision 33); withdrawing it ends the
            # open referrals that rest on it (decision 36)
            if ev.referral is not None:
                conn.execute(
                    update(CASE_ROWS)
                    .where(CASE_ROWS.c.case_id == case_id)
                    .values(consents_referral=ev.referral)
                )
            if ev.referral is False:
                rows = conn.execute(
                    select(REFERRALS.c.referral_id, REFERRALS.c.status, REFERRALS.c.consent_basis)
                    .where(REFERRALS.c.case_id == case_id)
                    .order_by(REFERRALS.c.offered_at, REFERRALS.c.referral_id)
                ).all()
                for row in rows:
                    if domain.revoked_by_withdrawal(row.status, row.consent_basis):
                        self._revoke_for_withdrawal(conn, event, row.referral_id)
        elif isinstance(ev, (CaseWithdrawn, CaseErased)):
            reason = "case_withdrawn" if isinstance(ev, CaseWithdrawn) else "case_erased"
            conn.execute(
                update(CASE_ROWS)
                .where(CASE_ROWS.c.case_id == case_id, CASE_ROWS.c.closed.is_(None))
                .values(closed=reason)
            )
        elif isinstance(ev, MandatoryReportFiled):
            # intake's route is superseded but still served (decision 34): its filing counts
            conn.execute(
                update(CASE_ROWS)
                .where(CASE_ROWS.c.case_id == case_id)
                .values(intake_report_filed_at=ev.filed_at)
            )
            self._filed_in_intake(conn, case_id, ev.filed_at)
        elif isinstance(ev, ReferralOffered):
            exists = conn.execute(
                select(REFERRALS.c.referral_id).where(REFERRALS.c.referral_id == ev.referral_id)
            ).first()
            if exists is None:
                conn.execute(
                    insert(REFERRALS).values(
                        referral_id=ev.referral_id,
                        case_id=case_id,
                        partner_id=ev.partner_id,
                        partner_organisation=ev.partner_organisation,
                        service=ev.service,
                        status="offered",
                        consent_basis=ev.consent_basis,
                        offered_at=at,
                        updated_at=at,
                    )
                )
                consents = conn.execute(
                    select(CASE_ROWS.c.consents_referral).where(CASE_ROWS.c.case_id == case_id)
                ).first()
                if (
                    ev.consent_basis == "victim_consent"
                    and consents is not None
                    and not consents[0]
                ):
                    # offered on a consent she withdrew before the offer reached the log
                    self._revoke_for_withdrawal(conn, event, ev.referral_id)
        elif ev is not None and type(ev) in STATUS_OF:
            conn.execute(
                update(REFERRALS)
                .where(REFERRALS.c.referral_id == getattr(ev, "referral_id", ""))
                .values(status=STATUS_OF[type(ev)], updated_at=at)
            )
        elif isinstance(ev, (MandatoryReportDue, SuspectReportDue)):
            kind = domain.report_kind(ev)
            exists = conn.execute(
                select(REPORTS.c.report_id).where(REPORTS.c.report_id == ev.report_id)
            ).first()
            if exists is None:
                conn.execute(
                    insert(REPORTS).values(
                        report_id=ev.report_id,
                        case_id=case_id,
                        kind=kind,
                        status="due",
                        learned_at=ev.learned_at,
                        due_at=ev.due_at,
                    )
                )
            if kind == "victim_minor":
                case = conn.execute(
                    select(CASE_ROWS.c.intake_report_filed_at).where(CASE_ROWS.c.case_id == case_id)
                ).first()
                if case is not None and case[0] is not None:
                    self._filed_in_intake(conn, case_id, case[0])
            if kind == "known_suspect":
                conn.execute(
                    update(CASE_ROWS)
                    .where(CASE_ROWS.c.case_id == case_id)
                    .values(offender_known=True)
                )
        elif isinstance(ev, (MandatoryReportSubmitted, SuspectReportFiled)):
            conn.execute(
                update(REPORTS)
                .where(REPORTS.c.report_id == ev.report_id)
                .values(status="filed", filed_at=ev.filed_at, late=ev.late)
            )
        elif isinstance(ev, (MandatoryReportOverdue, SuspectReportOverdue)):
            conn.execute(
                update(REPORTS)
                .where(REPORTS.c.report_id == ev.report_id, REPORTS.c.status == "due")
                .values(status="overdue", overdue_at=ev.detected_at)
            )
        elif isinstance(ev, GuidanceItemTicked):
            exists = conn.execute(
                select(GUIDANCE.c.item).where(
                    GUIDANCE.c.case_id == case_id, GUIDANCE.c.item == ev.item
                )
            ).first()
            if exists is None:
                conn.execute(
                    insert(GUIDANCE).values(case_id=case_id, item=ev.item, ticked_at=ev.ticked_at)
                )

    def _revoke_for_withdrawal(
        self, conn: Connection, event: RecordedEvent, referral_id: str
    ) -> None:
        """``ReferralRevoked`` (consent_withdrawn) through the outbox, once per referral and
        cause; the publisher appends it only while the referral is still open."""
        revoked = ReferralRevoked(
            referral_id=referral_id,
            revoked_at=event.envelope.occurred_at,
            reason="consent_withdrawn",
        )
        write_outbox(
            conn,
            event,
            aggregate="referral",
            aggregate_id=referral_id,
            event=revoked,
            event_id=derived_id(referral_id, "consent_withdrawn", event.envelope.event_id),
        )

    def _filed_in_intake(self, conn: Connection, case_id: str, filed_at: str) -> None:
        row = conn.execute(
            select(REPORTS.c.report_id, REPORTS.c.due_at).where(
                REPORTS.c.case_id == case_id,
                REPORTS.c.kind == "victim_minor",
                REPORTS.c.status.in_(("due", "overdue")),
            )
        ).first()
        if row is None:
            return
        late = domain.is_overdue(row.due_at, domain.parse_time(filed_at))
        conn.execute(
            update(REPORTS)
            .where(REPORTS.c.report_id == row.report_id)
            .values(status="filed", filed_at=filed_at, late=late)
        )

    def _case_opened(self, conn: Connection, event: RecordedEvent, ev: CaseOpened) -> None:
        case_id = event.case_id
        existing: Any = conn.execute(
            select(CASE_ROWS.c.offender_known).where(CASE_ROWS.c.case_id == case_id)
        ).first()
        kinds = {c.kind for c in ev.channels or []}
        upsert(
            conn,
            CASE_ROWS,
            {
                "case_id": case_id,
                "organisation": ev.organisation,
                "age_group": ev.age_group,
                "consents_referral": ev.consents.referral,
                "harm_categories": ",".join(ev.harm_categories),
                "spread_status": ev.spread_status,
                "on_social_platform": "social_platform" in kinds,
                "offender_known": bool(existing[0]) if existing is not None else False,
                "learned_at": ev.learned_at,
                "closed": None,
                "intake_report_filed_at": None,
            },
            ["case_id"],
        )
        if ev.age_group != "minor":
            return
        report_id = minor_report_id(case_id)
        due = MandatoryReportDue(
            report_id=report_id,
            learned_at=ev.learned_at,
            due_at=domain.report_due_at(ev.learned_at),
        )
        write_outbox(
            conn,
            event,
            aggregate="mandatory_report",
            aggregate_id=report_id,
            event=due,
            event_id=derived_id(report_id, "due"),
        )


class OffendersProjection(Projection):
    """Whether a case's offender is known, from intake's ``OffenderDetailsRecorded`` read
    without decrypting it (decision 36): its ``known`` is clear, the offender's accounts,
    addresses and description stay ciphertext here. The offender becoming known shows the
    "ask the police to seize the devices" guidance for any case, and in a minor's case opens
    the known suspect's report (art. 7 para 2, due 24 hours after it was recorded) through the
    outbox; the publisher appends it only for a minor's case still open, once per case (the
    same ids as ``POST /v1/cases/{id}/reports/suspect``, whichever comes first)."""

    name: ClassVar[str] = "offenders"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = CASES
    subjects: ClassVar[tuple[str, ...]] = (f"{CASES.prefix}.*.case.*.OffenderDetailsRecorded",)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if not isinstance(ev, OffenderDetailsRecorded):
            return
        at = event.envelope.occurred_at
        upsert(
            conn,
            OFFENDERS,
            {"case_id": event.case_id, "known": ev.known, "recorded_at": at},
            ["case_id"],
        )
        if not ev.known:
            return
        report_id = suspect_report_id(event.case_id)
        due = SuspectReportDue(report_id=report_id, learned_at=at, due_at=domain.report_due_at(at))
        write_outbox(
            conn,
            event,
            aggregate="mandatory_report",
            aggregate_id=report_id,
            event=due,
            event_id=derived_id(report_id, "due"),
        )
