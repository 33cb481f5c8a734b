"""Referral's rules, without I/O (decision 0033): who may see what, the referral's states and
transitions, the consent gate and its override, the right programme for the person's age, the
art. 7 report clocks, and the guidance a case's facts call for.

A referral: ``offered`` -> ``accepted`` or ``declined``; ``accepted`` -> ``completed``; staff
may revoke an offered or accepted one. Follow-ups and counsellors' notes are events of their
own on an accepted or completed referral. ``declined``, ``completed`` and ``revoked`` are final.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from ncii_contracts.base import DomainEvent
from ncii_contracts.referral import (
    ConsentOverridden,
    ContactKind,
    CounsellorNoteAdded,
    DeclineReason,
    FollowUpOutcome,
    FollowUpRecorded,
    GuidanceItem,
    GuidanceItemTicked,
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
    Need,
    OverrideReason,
    PartnerService,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralOffered,
    ReferralRevoked,
    Region,
    ReportKind,
    RevokeReason,
    SuspectReportDue,
    SuspectReportFiled,
    SuspectReportOverdue,
)

AgeGroup = Literal["minor", "adult"]
Status = Literal["offered", "accepted", "declined", "completed", "revoked"]
CASE_READERS = ("partner", "caseworker", "admin")
CASE_WRITERS = ("partner", "caseworker")
STAFF = ("caseworker", "admin")
FINAL: frozenset[str] = frozenset({"declined", "completed", "revoked"})
REPORT_WINDOW = timedelta(hours=24)
"""Art. 7: the local authority is told within 24 hours of staff learning of the case."""

AUTHORITIES: dict[Region, str] = {
    "taipei_city": "Taipei City Government, Department of Social Welfare",
    "new_taipei_city": "New Taipei City Government, Social Welfare Department",
    "taoyuan_city": "Taoyuan City Government, Department of Social Welfare",
    "taichung_city": "Taichung City Government, Social Affairs Bureau",
    "tainan_city": "Tainan City Government, Social Affairs Bureau",
    "kaohsiung_city": "Kaohsiung City Government, Social Affairs Bureau",
    "keelung_city": "Keelung City Government, Department of Social Affairs",
    "hsinchu_city": "Hsinchu City Government, Department of Social Affairs",
    "chiayi_city": "Chiayi City Government, Department of Social Affairs",
    "hsinchu_county": "Hsinchu County Government, Department of Social Affairs",
    "miaoli_county": "Miaoli County Government, Department of Social Affairs",
    "changhua_county": "Changhua County Government, Department of Social Affairs",
    "nantou_county": "Nantou County Government, Department of Social Affairs",
    "yunlin_county": "Yunlin County Government, Department of Social Affairs",
    "chiayi_county": "Chiayi County Government, Department of Social Affairs",
    "pingtung_county": "Pingtung County Government, Department of Social Affairs",
    "yilan_county": "Yilan County Government, Department of Social Affairs",
    "hualien_county": "Hualien County Government, Department of Social Affairs",
    "taitung_county": "Taitung County Government, Department of Social Affairs",
    "penghu_county": "Penghu County Government, Department of Social Affairs",
    "kinmen_county": "Kinmen County Government, Department of Social Affairs",
    "lienchiang_county": "Lienchiang County Government, Department of Social Affairs",
}
"""The local authority (competent authority for child protection) of each city and county."""


class ReferralRuleError(Exception):
    """A command the referral's state or the case does not allow. ``status`` is the HTTP answer
    (409 for a state, 422 for a choice that is never right), ``kind`` names the rule."""

    def __init__(self, kind: str, detail: str, status: int = 409) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    """UTC, microseconds, ``Z`` (as the log writes times, so text order is time order)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def may_see_case(role: str, organisation: str, case_organisation: str) -> bool:
    """Partners see their own organisation's cases; case workers and admins every case."""
    if role not in CASE_READERS:
        return False
    return role != "partner" or organisation == case_organisation


def authority_of(region: Region) -> str:
    return AUTHORITIES[region]


# -- the programme for the person's age ---------------------------------------------------------

AGE_ONLY: dict[PartnerService, AgeGroup] = {
    "stopncii_enrolment": "adult",
    "photodna_programme": "minor",
}


def check_programme(service: PartnerService, age_group: AgeGroup) -> None:
    """Adults are offered StopNCII enrolment help, minors the PhotoDNA programme: never the
    other way round."""
    only = AGE_ONLY.get(service)
    if only is not None and only != age_group:
        right = "photodna_programme" if age_group == "minor" else "stopncii_enrolment"
        raise ReferralRuleError(
            "wrong-programme",
            f"{service} is for {only}s only; this case is a {age_group}'s: offer {right}",
            status=422,
        )


# -- the consent gate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFacts:
    """What the referral service knows of a case (from intake's CaseOpened)."""

    organisation: str
    age_group: AgeGroup
    consents_referral: bool
    closed: bool = False


@dataclass(frozen=True)
class Override:
    reason: OverrideReason
    explanation: str


def offer(
    *,
    referral_id: str,
    case: CaseFacts,
    role: str,
    partner_id: str,
    partner_organisation: str,
    partner_services: Sequence[str],
    partner_taking: bool,
    service: PartnerService,
    needs: Sequence[Need],
    pseudonym: str | None,
    contact: tuple[ContactKind, str] | None,
    override: Override | None,
) -> list[DomainEvent]:
    """The referral's first events. Without the victim's consent to referral only a case
    worker may offer it, with a reason (``ConsentOverridden`` comes first); then the partner
    gets no contact route, since she did not agree to be contacted."""
    if case.closed:
        raise ReferralRuleError("case-closed", "the case is withdrawn or erased")
    check_programme(service, case.age_group)
    if service not in partner_services:
        raise ReferralRuleError(
            "service-not-offered",
            f"this partner does not offer {service}: pick a partner that does",
            status=422,
        )
    if not partner_taking:
        raise ReferralRuleError(
            "partner-not-taking", "this partner takes no new referrals now: pick another"
        )
    events: list[DomainEvent] = []
    if case.consents_referral:
        if override is not None:
            raise ReferralRuleError(
                "override-not-needed",
                "the victim consents to referral: send the offer without an override",
                status=422,
            )
        basis: Literal["victim_consent", "caseworker_override"] = "victim_consent"
    else:
        if override is None:
            raise ReferralRuleError(
                "consent-required",
                "the victim has not consented to referral: ask her, or (case workers only) "
                "override with a reason",
            )
        if role != "caseworker":
            raise ReferralRuleError(
                "override-by-caseworker-only",
                "only a case worker of the centre may override the victim's consent",
                status=403,
            )
        events.append(
            ConsentOverridden(
                referral_id=referral_id,
                reason=override.reason,
                explanation=override.explanation,
            )
        )
        basis = "caseworker_override"
        contact = None
    events.append(
        ReferralOffered(
            referral_id=referral_id,
            partner_id=partner_id,
            partner_organisation=partner_organisation,
            service=service,
            needs=list(needs),
            consent_basis=basis,
            age_group=case.age_group,
            pseudonym=pseudonym,
            contact_kind=contact[0] if contact else None,
            contact_value=contact[1] if contact else None,
        )
    )
    return events


# -- a referral ---------------------------------------------------------------------------------

REACHES: dict[str, Status] = {"accept": "accepted", "complete": "completed"}
"""The state each step without a body leaves a referral in: the same step there again is a
retry, no news. A decline or revocation says why, and another reason after it is refused."""
ALLOWED: dict[str, dict[Status, frozenset[str]]] = {
    # command -> the states it is allowed in
    "accept": {"offered": frozenset({"counsellor"})},
    "decline": {"offered": frozenset({"counsellor"})},
    "complete": {"accepted": frozenset({"counsellor"})},
    "revoke": {
        "offered": frozenset({"caseworker", "partner"}),
        "accepted": frozenset({"caseworker", "partner"}),
    },
    "follow_up": {
        "accepted": frozenset({"caseworker", "partner", "counsellor"}),
        "completed": frozenset({"caseworker", "partner", "counsellor"}),
    },
    "note": {
        "accepted": frozenset({"counsellor"}),
        "completed": frozenset({"counsellor"}),
    },
}
"""Every transition, by command and state: anything not here is refused (409)."""


@dataclass(frozen=True)
class Referral:
    referral_id: str
    partner_id: str
    partner_organisation: str
    service: str
    status: Status
    offered_at: str
    consent_basis: str
    follow_ups: int = 0
    notes: int = 0

    @staticmethod
    def replay(history: Iterable[tuple[DomainEvent, str]]) -> Referral | None:
        referral: Referral | None = None
        for event, at in history:
            if isinstance(event, ReferralOffered):
                referral = Referral(
                    referral_id=event.referral_id,
                    partner_id=event.partner_id,
                    partner_organisation=event.partner_organisation,
                    service=event.service,
                    status="offered",
                    offered_at=at,
                    consent_basis=event.consent_basis,
                )
            elif referral is not None:
                referral = referral.apply(event)
        return referral

    def apply(self, event: DomainEvent) -> Referral:
        if isinstance(event, ReferralAccepted):
            return replace(self, status="accepted")
        if isinstance(event, ReferralDeclined):
            return replace(self, status="declined")
        if isinstance(event, ReferralCompleted):
            return replace(self, status="completed")
        if isinstance(event, ReferralRevoked):
            return replace(self, status="revoked")
        if isinstance(event, FollowUpRecorded):
            return replace(self, follow_ups=self.follow_ups + 1)
        if isinstance(event, CounsellorNoteAdded):
            return replace(self, notes=self.notes + 1)
        return self

    def _check(self, command: str, role: str) -> None:
        roles = ALLOWED[command].get(self.status)
        if roles is None:
            raise ReferralRuleError(
                f"cannot-{command.replace('_', '-')}",
                f"a referral that is {self.status} cannot be {_past(command)}",
            )
        if role not in roles:
            raise ReferralRuleError(
                "not-your-step",
                f"a {role} may not do this ({' or '.join(sorted(roles))} may)",
                status=403,
            )

    def _reached(self, command: str, role: str) -> bool:
        """The step's own state is reached already: asking again (a retry without a key) is no
        news, for a role that may take that step at all (decision 0057)."""
        if self.status != REACHES[command]:
            return False
        if role not in frozenset().union(*ALLOWED[command].values()):
            self._check(command, role)  # says which roles may (403) or that it cannot (409)
        return True

    def accept(self, role: str, at: datetime) -> list[DomainEvent]:
        if self._reached("accept", role):
            return []
        self._check("accept", role)
        return [ReferralAccepted(referral_id=self.referral_id, accepted_at=format_time(at))]

    def decline(self, role: str, at: datetime, reason: DeclineReason) -> list[DomainEvent]:
        self._check("decline", role)
        return [
            ReferralDeclined(
                referral_id=self.referral_id, declined_at=format_time(at), reason=reason
            )
        ]

    def complete(self, role: str, at: datetime) -> list[DomainEvent]:
        if self._reached("complete", role):
            return []
        self._check("complete", role)
        return [ReferralCompleted(referral_id=self.referral_id, completed_at=format_time(at))]

    def revoke(self, role: str, at: datetime, reason: RevokeReason) -> list[DomainEvent]:
        self._check("revoke", role)
        return [
            ReferralRevoked(referral_id=self.referral_id, revoked_at=format_time(at), reason=reason)
        ]

    def follow_up(
        self, role: str, contacted_at: datetime, outcome: FollowUpOutcome, note: str | None
    ) -> list[DomainEvent]:
        self._check("follow_up", role)
        return [
            FollowUpRecorded(
                referral_id=self.referral_id,
                contacted_at=format_time(contacted_at),
                outcome=outcome,
                note=note,
            )
        ]

    def add_note(self, role: str, note_id: str, note: str) -> list[DomainEvent]:
        self._check("note", role)
        return [CounsellorNoteAdded(referral_id=self.referral_id, note_id=note_id, note=note)]


OPEN: frozenset[str] = frozenset({"offered", "accepted"})


def revoked_by_withdrawal(status: str, consent_basis: str) -> bool:
    """Whether the victim withdrawing her consent to referral ends this referral (decision
    36): one that rests on her consent and is still open (offered, or accepted and not yet
    completed). One a case worker made on an override rests on its reason, not on her consent,
    and stays; a declined, completed or revoked one is over already."""
    return consent_basis == "victim_consent" and status in OPEN


def revoke_on_withdrawal(referral: Referral, at: str) -> list[DomainEvent]:
    """The service's revocation when she withdrew her consent: none when the referral is no
    longer open (a counsellor completed it meanwhile) or did not rest on her consent."""
    if not revoked_by_withdrawal(referral.status, referral.consent_basis):
        return []
    return [
        ReferralRevoked(referral_id=referral.referral_id, revoked_at=at, reason="consent_withdrawn")
    ]


def _past(command: str) -> str:
    return {
        "accept": "accepted",
        "decline": "declined",
        "complete": "completed",
        "revoke": "revoked",
        "follow_up": "followed up",
        "note": "given notes",
    }[command]


# -- the art. 7 report clocks -------------------------------------------------------------------


def report_due_at(learned_at: str) -> str:
    return format_time(parse_time(learned_at) + REPORT_WINDOW)


def is_overdue(due_at: str, now: datetime) -> bool:
    """Late once the 24 hours have passed: a report filed at the due instant is in time."""
    return now > parse_time(due_at)


ReportStatus = Literal["due", "overdue", "filed"]


def report_kind(event: MandatoryReportDue | SuspectReportDue) -> ReportKind:
    """The minor victim's own report (art. 7 para 1) or the known suspect's (para 2)."""
    return "victim_minor" if isinstance(event, MandatoryReportDue) else "known_suspect"


@dataclass(frozen=True)
class MandatoryReport:
    """An art. 7 report as its own events leave it: ``due`` when opened, ``overdue`` once the
    clock's event says so (only from ``due``), ``filed`` whenever staff file it (in time or
    late, as the filing says). The minor's report filed through intake's superseded route
    (``MandatoryReportFiled`` on the case, decision 36) is not among these events: the read
    model marks it filed, this fold does not."""

    report_id: str
    kind: ReportKind
    status: ReportStatus
    learned_at: str
    due_at: str
    region: Region | None = None
    filed_at: str | None = None
    late: bool | None = None
    overdue_at: str | None = None
    authority_region: Region | None = None
    authority_reference: str | None = None

    @property
    def authority(self) -> str | None:
        """The local authority the report goes to (None while the region is not known, or
        withheld from the reader)."""
        return authority_of(self.region) if self.region else None

    @staticmethod
    def replay(history: Iterable[tuple[DomainEvent, str]]) -> MandatoryReport | None:
        report: MandatoryReport | None = None
        for event, _at in history:
            if isinstance(event, (MandatoryReportDue, SuspectReportDue)):
                if report is None:  # a due report is opened once (ids derived from its cause)
                    report = MandatoryReport(
                        report_id=event.report_id,
                        kind=report_kind(event),
                        status="due",
                        learned_at=event.learned_at,
                        due_at=event.due_at,
                        region=event.region,
                    )
            elif report is not None:
                report = report.apply(event)
        return report

    def apply(self, event: DomainEvent) -> MandatoryReport:
        if isinstance(event, (MandatoryReportSubmitted, SuspectReportFiled)):
            return replace(
                self,
                status="filed",
                filed_at=event.filed_at,
                late=event.late,
                authority_region=event.authority_region,
                authority_reference=event.authority_reference,
            )
        if isinstance(event, (MandatoryReportOverdue, SuspectReportOverdue)):
            if self.status == "due":
                return replace(self, status="overdue", overdue_at=event.detected_at)
        return self


def ticked_guidance(history: Iterable[tuple[DomainEvent, str]]) -> dict[GuidanceItem, str]:
    """The case's guidance items ticked, each with when it was first ticked (a second tick of
    an item changes nothing)."""
    ticked: dict[GuidanceItem, str] = {}
    for event, _at in history:
        if isinstance(event, GuidanceItemTicked):
            ticked.setdefault(event.item, event.ticked_at)
    return ticked


# -- guidance -----------------------------------------------------------------------------------

COMPLAINT_NEEDED = frozenset({"secret_recording_319_1", "distribution_without_consent_319_3"})
"""Offences prosecuted only on the victim's complaint: she decides about a police report."""


@dataclass(frozen=True)
class GuidanceFacts:
    age_group: AgeGroup
    harm_categories: frozenset[str]
    spread_status: Literal["spread", "threatened"]
    on_social_platform: bool
    """The images were spread on a social platform (where the victim's own page may be)."""
    offender_known: bool


def guidance(facts: GuidanceFacts) -> list[GuidanceItem]:
    """The checklist the centre's advice calls for (../shared/domain.md, "What the centre
    advises"), in the order it is done."""
    items: list[GuidanceItem] = []
    if "threat_sextortion" in facts.harm_categories:
        items += [
            "sextortion_do_not_pay",
            "sextortion_keep_contacts_and_conversations",
            "sextortion_report_or_block_every_channel",
        ]
    if facts.spread_status == "threatened":
        # adults to StopNCII, minors to ECPAT Taiwan's PhotoDNA programme: never crossed
        items.append(
            "threatened_photodna_programme"
            if facts.age_group == "minor"
            else "threatened_stopncii_enrolment"
        )
    if facts.spread_status == "spread" and facts.on_social_platform:
        items += ["own_page_remove_post", "own_page_block_accounts"]
    if facts.offender_known:
        items.append("offender_known_ask_police_to_seize_devices")
    items += ["self_help_privacy_settings", "self_help_change_names_and_avatars"]
    if facts.age_group == "adult" and facts.harm_categories & COMPLAINT_NEEDED:
        items.append("police_report_decision_recorded")
    return items
