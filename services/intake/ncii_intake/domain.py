"""The case and its rules (from the domain brief), with no I/O.

- An adult case needs the person's explicit statement of non-consent before takedowns can start
  or hashes be shared (Criminal Code ch. 28-1). A minor's case needs none: any sexual image of a
  minor is exploitation, and the 24-hour report to the local authority (art. 7) is due from when
  staff learned of it: the referral service keeps that clock (decision 34); intake only shows
  what referral recorded (``art7_report``).
- Withdrawal and erasure are final: such a case takes no new facts. Closing is not (decision
  35): a closed case keeps its hashes in matching, takes new facts, and is reopened by hand or
  by itself when its content is seen again.

Decisions take plain values and return the events they decide on (none when nothing changes);
the case folds events with the time they were recorded. Where the case stands in the log (its
version) is the application service's business, not the case's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashes import PDQ_MIN_QUALITY, HashItem
from ncii_contracts.intake import (
    AgeGroup,
    CaseAssigned,
    CaseClosed,
    CaseErased,
    CaseNoteAdded,
    CaseOpened,
    CaseReopened,
    CaseWithdrawn,
    Channel,
    ChannelKind,
    CloseReason,
    ConsentName,
    Consents,
    ConsentsChanged,
    Contact,
    ContactChannel,
    ContactLogged,
    ErasureReason,
    ErasureRequested,
    HarmCategory,
    HashesSubmitted,
    HowObtained,
    IntakeChannel,
    LegalAssessmentRecorded,
    LocationReported,
    MandatoryReportFiled,
    NonConsentRecorded,
    OffenderDetailsRecorded,
    PersonalDataRead,
    PoliceReportDecision,
    PoliceReportDecisionRecorded,
    PoliceReportDetailsRecorded,
    RevealReason,
    SexualContent,
    SpreadStatus,
    SpreadStatusChanged,
    SubmittedHash,
    VictimAccessReset,
    WithdrawnBy,
)
from ncii_contracts.referral import (
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
    Region,
)

CASE_READERS = ("partner", "caseworker", "admin")
CASE_WRITERS = ("partner", "caseworker")
PERSONAL_DATA_READERS = ("partner", "caseworker")
"""Who reads a visible case's personal fields by default: the partner that opened it and the
centre's case workers. Another case reader (``admin``, who administers banks) gets them withheld,
and reads them only as a separate act with a reason, recorded first (decision 27)."""
CASE_PERSONAL_FIELDS = (
    "pseudonym",
    "contact",
    "channels",
    "locations[].platform",
    "locations[].url",
    "offender",
    "police_report.station",
    "police_report.report_number",
    "notes",
    "contact_log",
)
"""What a case read withholds: the personal fields a case's detail shows."""
FIELD_READERS: dict[str, tuple[str, ...]] = {
    # what each role's job needs (decision 35; the table is in the decision and the README)
    "pseudonym": ("partner", "caseworker"),
    "contact": ("partner", "caseworker"),
    "channels": ("partner", "caseworker"),
    "locations[].platform": ("partner", "caseworker"),
    "locations[].url": ("partner", "caseworker"),
    "offender": ("caseworker",),
    "police_report.station": ("partner", "caseworker"),
    "police_report.report_number": ("partner", "caseworker"),
    "notes": ("partner", "caseworker"),
    "contact_log": ("partner", "caseworker"),
    "legal": ("partner", "caseworker"),
}
"""Who reads each field of a case's detail by default. Every other detail field (status,
reference, consents, counts, the timeline, the assignee) goes to every case reader. An admin
reads the personal ones only by revealing them (decision 27); the legal assessment (not
personal) is a case worker's and the partner's business, not the bank administrator's, and
the offender's details are the centre's (police referrals, notices), not the partner's."""
REVEALABLE = ("admin",)
"""Roles that may reveal what they get withheld, with a recorded reason (decision 27)."""


def withheld_fields(role: str, *, revealed: bool = False) -> list[str]:
    """The detail fields this role does not see: the one place the matrix is enforced."""
    if revealed and role in REVEALABLE:
        return []
    return [name for name, roles in FIELD_READERS.items() if role not in roles]


CaseStatus = Literal["awaiting_statement", "active", "closed", "withdrawn", "erased"]
ReportState = Literal["due", "overdue", "filed"]
StatementMethod = Literal["written", "verbal", "signed_form", "online_form"]
WithdrawalReason = Literal["victim_request", "resolved", "opened_in_error", "other"]
History = Iterable[tuple[DomainEvent, str]]
"""A case's events in log order, each with the time it was recorded."""


class CaseRuleError(Exception):
    """A command the case's state does not allow. ``kind`` names the rule for API clients."""

    kind = "case-rule"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CaseClosedError(CaseRuleError):
    kind = "case-closed"


class StatementRequiredError(CaseRuleError):
    kind = "non-consent-statement-required"


class ConsentMissingError(CaseRuleError):
    kind = "consent-missing"


class NotApplicableError(CaseRuleError):
    kind = "not-applicable"


class AssigneeError(CaseRuleError):
    """The assignee is not a worker of the organisation that owns the case (a 422)."""

    kind = "assignee-not-of-this-organisation"


ERASERS = ("caseworker", "admin")
"""Who erases a case (decision 35); a partner asks for it (``ErasureRequested``)."""
ASSIGNABLE_ROLES = ("partner", "caseworker")
VICTIM_ERASURE_DELAY = timedelta(days=7)
"""The victim's own erasure request takes effect by itself after this, unless her case worker
confirms it sooner (decision 35): long enough for a case worker to reach her when the request
was someone else's who learned her reference and PIN, short enough to be her decision."""
COMPLAINT_CATEGORIES: frozenset[HarmCategory] = frozenset(
    {"secret_recording_319_1", "distribution_without_consent_319_3", "sexual_audio_315_1"}
)
"""Offences prosecuted only on the victim's complaint (Criminal Code 319-6 for 319-1 and 319-3
para 1; art. 319 for 315-1). The others are prosecuted ex officio."""


@dataclass(frozen=True)
class Prosecution:
    """Whether prosecution needs the victim's complaint, derived from the legal categories, and
    what follows from it, in words a case worker tells the victim."""

    complaint_required: bool
    categories_needing_complaint: list[HarmCategory]
    consequence: str


def prosecution(categories: Sequence[HarmCategory]) -> Prosecution:
    needing = sorted(c for c in categories if c in COMPLAINT_CATEGORIES)
    ex_officio = [c for c in categories if c not in COMPLAINT_CATEGORIES]
    if needing and not ex_officio:
        consequence = (
            "prosecution needs the victim's complaint: nothing happens unless she files one, "
            "within six months of learning who the offender is (Code of Criminal Procedure "
            "art. 237); the decision is hers, record it with the police-report decision"
        )
    elif needing:
        consequence = (
            "part of the case is prosecuted ex officio once the police learn of it; the "
            "complaint-only offences (" + ", ".join(needing) + ") need her complaint within "
            "six months of learning who the offender is"
        )
    else:
        consequence = (
            "prosecuted ex officio: once the police or a prosecutor learn of it they act "
            "whether or not she files a complaint; tell her before reporting"
        )
    return Prosecution(bool(needing) and not ex_officio, needing, consequence)


def sexual_image(depicts: Sequence[SexualContent]) -> bool:
    """The eligibility check (art. 10 para 8): the image shows at least one of its kinds."""
    return bool(depicts)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    """UTC, microseconds, ``Z``, the year in four digits (``strftime("%Y")`` writes year 1 as
    ``1``, which ``parse_time`` cannot read back: such an event poisoned the cases projection)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# -- rules on plain values: the case and the read model both decide with these ---------------


class Reader(Protocol):
    """Who asks to see cases (an authenticated principal)."""

    @property
    def role(self) -> str: ...

    @property
    def organisation(self) -> str: ...


def case_scope(reader: Reader) -> str | None:
    """The one organisation whose cases this reader sees, or None for all of them: partners
    see their own organisation's cases, the centre's case workers see every case."""
    return reader.organisation if reader.role == "partner" else None


def may_see(reader: Reader, organisation: str) -> bool:
    """Whether the reader may see a case of this organisation."""
    if reader.role not in CASE_READERS:
        return False
    scope = case_scope(reader)
    return scope is None or scope == organisation


def sees_personal_data(reader: Reader) -> bool:
    """Whether the reader gets a visible case's personal fields without revealing them."""
    return reader.role in PERSONAL_DATA_READERS


def personal_data_read(reason: RevealReason, ticket: str | None, endpoint: str) -> PersonalDataRead:
    """The record of a reveal: why, where, which fields (nothing personal)."""
    return PersonalDataRead(
        reason=reason, ticket=ticket, endpoint=endpoint, fields=list(CASE_PERSONAL_FIELDS)
    )


def case_status(
    *,
    age_group: AgeGroup,
    statement_recorded_at: str | None,
    withdrawn_at: str | None,
    erased_at: str | None,
    closed_at: str | None = None,
) -> CaseStatus:
    if erased_at:
        return "erased"
    if withdrawn_at:
        return "withdrawn"
    if closed_at:
        return "closed"
    if age_group != "minor" and not statement_recorded_at:
        return "awaiting_statement"
    return "active"


@dataclass(frozen=True)
class Art7Report:
    """The minor's report to the local authority as the referral service records it (decision
    34): intake shows it, referral keeps its clock, marks it overdue and records its filing."""

    report_id: str | None
    due_at: str | None
    state: ReportState
    filed_at: str | None = None
    late: bool | None = None


def art7_report(events: Iterable[DomainEvent | None]) -> Art7Report | None:
    """The case's art. 7 report from its events (every aggregate of the case, log order): the
    referral service's ``MandatoryReportDue``, ``...Overdue`` and ``...Submitted``, and a
    filing intake recorded before the clock moved (``MandatoryReportFiled``, old logs)."""
    report: Art7Report | None = None
    old_filing: MandatoryReportFiled | None = None
    for event in events:
        if isinstance(event, MandatoryReportDue):
            report = Art7Report(event.report_id, event.due_at, "due")
            if old_filing is not None:
                report = replace(report, state="filed", filed_at=old_filing.filed_at)
        elif isinstance(event, MandatoryReportFiled):
            old_filing = event
            base = report or Art7Report(None, None, "due")
            report = replace(base, state="filed", filed_at=event.filed_at)
        elif report is not None and isinstance(event, MandatoryReportOverdue):
            if report.state == "due":
                report = replace(report, state="overdue")
        elif report is not None and isinstance(event, MandatoryReportSubmitted):
            report = replace(report, state="filed", filed_at=event.filed_at, late=event.late)
    return report


def art7_pending(case_id: str, report: Art7Report | None) -> str | None:
    """The pending item for a report not filed yet, in words a case worker acts on."""
    if report is None or report.state == "filed":
        return None
    late = " - OVERDUE" if report.state == "overdue" else ""
    return (
        f"report to the local authority within 24 hours (art. 7): due {report.due_at}{late}; "
        f"file it with the referral service: POST /v1/cases/{case_id}/reports/"
        f"{report.report_id}/filing"
    )


def withdrawn_by_role(role: str) -> WithdrawnBy:
    """Who withdraws or erases, as the log records it, for a principal of this role."""
    return "caseworker" if role == "caseworker" else "partner"


def usable_frames(item: HashItem) -> list[str] | None:
    """A video's frame hashes good enough to match on (quality 50 or more), in order."""
    if not item.frames:
        return None
    return [f.value for f in item.frames if f.quality >= PDQ_MIN_QUALITY]


@dataclass(frozen=True)
class Case:
    case_id: str
    organisation: str
    reference: str
    age_group: AgeGroup
    consents: Consents
    learned_at: str
    opened_at: str
    statement_recorded_at: str | None = None
    withdrawn_at: str | None = None
    withdrawn_by: WithdrawnBy | None = None
    erased_at: str | None = None
    closed_at: str | None = None
    """Set while the case is closed (not final: a reopening clears it)."""
    spread_status: SpreadStatus = "spread"
    contact_consent: bool | None = None
    """Whether the victim may be contacted, once she said so after the opening (None: what
    the opening's contact details and preference say)."""
    harm_categories: tuple[HarmCategory, ...] = ()
    legal_assessment: LegalAssessmentRecorded | None = None
    """The case worker's last assessment (all in clear), so the same one again is no news."""
    assignee: str | None = None
    erasure_requested_by: str | None = None
    erasure_effective_after: str | None = None
    """When a victim's own erasure request takes effect by itself (None: no such request)."""
    note_ids: frozenset[str] = field(default_factory=frozenset)
    contact_ids: frozenset[str] = field(default_factory=frozenset)
    location_ids: frozenset[str] = field(default_factory=frozenset)
    submission_ids: frozenset[str] = field(default_factory=frozenset)
    hashes_submitted: int = 0
    victim_access_resets: int = 0
    """How often the victim's access was reset: wrong PINs counted before the last reset no
    longer refuse anyone (the throttles key the reference with this number)."""
    pin_generation: int = 0
    """Which PIN opens the case: 0 the one shown at the opening, n the one of the n-th reset
    that issued a new PIN."""

    # -- state -------------------------------------------------------------------------------

    @classmethod
    def replay(cls, case_id: str, history: History) -> Case | None:
        """The case folded from its events; None before it was opened."""
        case: Case | None = None
        for event, at in history:
            if isinstance(event, CaseOpened):
                case = cls(
                    case_id=case_id,
                    organisation=event.organisation,
                    reference=event.reference,
                    age_group=event.age_group,
                    consents=event.consents,
                    learned_at=event.learned_at,
                    opened_at=at,
                    spread_status=event.spread_status,
                    harm_categories=tuple(event.harm_categories),
                )
            elif case is not None:
                case = case.apply(event, at)
        return case

    def apply(self, event: DomainEvent, at: str) -> Case:
        if isinstance(event, NonConsentRecorded):
            return replace(self, statement_recorded_at=event.stated_at)
        if isinstance(event, LocationReported):
            return replace(self, location_ids=self.location_ids | {event.location_id})
        if isinstance(event, HashesSubmitted):
            return replace(
                self,
                submission_ids=self.submission_ids | {event.submission_id},
                hashes_submitted=self.hashes_submitted + event.count,
            )
        if isinstance(event, PoliceReportDecisionRecorded):
            return replace(
                self, consents=self.consents.model_copy(update={"police_report": event.decision})
            )
        if isinstance(event, CaseWithdrawn):
            return replace(self, withdrawn_at=at, withdrawn_by=event.withdrawn_by)
        if isinstance(event, CaseErased):
            return replace(self, erased_at=at)
        if isinstance(event, CaseClosed):
            return replace(self, closed_at=at)
        if isinstance(event, CaseReopened):
            return replace(self, closed_at=None)
        if isinstance(event, ConsentsChanged):
            changed = {
                name: value
                for name in ("takedown", "share_hashes", "referral")
                if (value := getattr(event, name)) is not None
            }
            return replace(
                self,
                consents=self.consents.model_copy(update=changed),
                contact_consent=self.contact_consent if event.contact is None else event.contact,
            )
        if isinstance(event, SpreadStatusChanged):
            return replace(self, spread_status=event.spread_status)
        if isinstance(event, LegalAssessmentRecorded):
            return replace(self, harm_categories=tuple(event.categories), legal_assessment=event)
        if isinstance(event, CaseAssigned):
            return replace(self, assignee=event.assignee)
        if isinstance(event, ErasureRequested):
            return replace(
                self,
                erasure_requested_by=event.requested_by,
                erasure_effective_after=event.effective_after or self.erasure_effective_after,
            )
        if isinstance(event, CaseNoteAdded):
            return replace(self, note_ids=self.note_ids | {event.note_id})
        if isinstance(event, ContactLogged):
            return replace(self, contact_ids=self.contact_ids | {event.contact_id})
        if isinstance(event, VictimAccessReset):
            return replace(
                self,
                victim_access_resets=self.victim_access_resets + 1,
                pin_generation=self.pin_generation + 1 if event.new_pin else self.pin_generation,
            )
        return self

    @property
    def is_minor(self) -> bool:
        return self.age_group == "minor"

    @property
    def status(self) -> CaseStatus:
        return case_status(
            age_group=self.age_group,
            statement_recorded_at=self.statement_recorded_at,
            withdrawn_at=self.withdrawn_at,
            erased_at=self.erased_at,
            closed_at=self.closed_at,
        )

    def consent(self, name: ConsentName) -> bool | None:
        """The consent as it stands (``contact``: None when never stated after the opening)."""
        if name == "contact":
            return self.contact_consent
        return bool(getattr(self.consents, name))

    @property
    def may_act(self) -> bool:
        """Takedowns may start and hashes be shared (the legal ground exists)."""
        return self.status == "active"

    def pending(self, now: datetime) -> list[str]:
        """What still has to happen, in words a case worker acts on."""
        items: list[str] = []
        if self.status in ("closed", "withdrawn", "erased"):
            return items
        if self.status == "awaiting_statement":
            items.append(
                "record the person's explicit statement of non-consent to distribution: "
                "takedowns cannot start and hashes cannot be shared until then"
            )
        if self.consents.takedown and not self.location_ids:
            items.append("report where the content was found, so takedowns can be requested")
        if self.consents.share_hashes and not self.submission_ids:
            items.append("submit hashes computed on the victim's device (ncii hash)")
        return items

    # -- decisions ---------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self.erased_at:
            raise CaseClosedError("this case's personal data was erased; it takes no new facts")
        if self.withdrawn_at:
            raise CaseClosedError("this case was withdrawn; it takes no new facts")

    @staticmethod
    def open(
        *,
        organisation: str,
        reference: str,
        age_group: AgeGroup,
        harm_categories: Sequence[HarmCategory],
        spread_status: SpreadStatus,
        channels: Sequence[Channel],
        intake_channel: IntakeChannel,
        learned_at: datetime,
        consents: Consents,
        pseudonym: str | None,
        contact: Contact | None,
        region: Region | None = None,
    ) -> list[DomainEvent]:
        """A new case: its reference is given (random, so not decided here)."""
        return [
            CaseOpened(
                organisation=organisation,
                reference=reference,
                age_group=age_group,
                harm_categories=list(harm_categories),
                spread_status=spread_status,
                channels=list(channels),
                intake_channel=intake_channel,
                learned_at=format_time(learned_at),
                consents=consents,
                pseudonym=pseudonym,
                contact=contact,
                region=region,
            )
        ]

    def record_non_consent(
        self, stated_at: datetime, method: StatementMethod, statement: str | None = None
    ) -> list[DomainEvent]:
        self._require_open()
        if self.is_minor:
            raise NotApplicableError(
                "a minor's case needs no statement: any sexual image of a minor is exploitation"
            )
        if self.statement_recorded_at is not None:
            return []  # already recorded: nothing changes
        return [
            NonConsentRecorded(stated_at=format_time(stated_at), method=method, statement=statement)
        ]

    def report_location(
        self,
        location_id: str,
        *,
        url: str,
        platform: str,
        channel_kind: ChannelKind,
        first_seen_at: datetime | None = None,
    ) -> list[DomainEvent]:
        self._require_open()
        if location_id in self.location_ids:
            return []
        events: list[DomainEvent] = [
            LocationReported(
                location_id=location_id,
                platform=platform,
                channel_kind=channel_kind,
                first_seen_at=format_time(first_seen_at) if first_seen_at else None,
                url=url,
            )
        ]
        if self.spread_status == "threatened":
            # content found somewhere is content that spread, whatever the opening said
            events.append(SpreadStatusChanged(spread_status="spread", cause="location_reported"))
        return events

    def submit_hashes(self, submission_id: str, hashes: Sequence[HashItem]) -> list[DomainEvent]:
        """Hashes as computed on the victim's device; a video keeps only the frames good
        enough to match on."""
        self._require_open()
        if not self.consents.share_hashes:
            raise ConsentMissingError(
                "the case does not consent to sharing hashes with platforms; once the victim "
                "gives it, record it with POST /v1/cases/"
                f'{self.case_id}/consents {{"share_hashes": true}}, then submit again'
            )
        if self.status == "awaiting_statement":
            raise StatementRequiredError(
                "an adult case needs the person's explicit statement of non-consent to "
                "distribution before hashes can be shared: record it with "
                f"POST /v1/cases/{self.case_id}/non-consent"
            )
        if submission_id in self.submission_ids:
            return []
        submitted = [
            SubmittedHash(
                algorithm=item.algorithm,
                value=item.value,
                media=item.media,
                quality=item.quality,
                dihedral=item.dihedral,
                frames=usable_frames(item),
            )
            for item in hashes
        ]
        return [
            HashesSubmitted(
                submission_id=submission_id,
                organisation=self.organisation,
                age_group=self.age_group,
                count=len(submitted),
                hashes=submitted,
            )
        ]

    def record_police_decision(self, decision: PoliceReportDecision) -> list[DomainEvent]:
        self._require_open()
        if decision == self.consents.police_report:
            return []
        return [PoliceReportDecisionRecorded(decision=decision)]

    def withdraw(self, by: WithdrawnBy, reason: WithdrawalReason) -> list[DomainEvent]:
        if self.withdrawn_at or self.erased_at:
            return []  # final, and asking twice is not an error
        return [CaseWithdrawn(withdrawn_by=by, reason=reason)]

    def close(self, reason: CloseReason) -> list[DomainEvent]:
        """Done for now: matching goes on, and the case still takes new facts."""
        self._require_open()
        if self.closed_at is not None:
            return []
        return [CaseClosed(reason=reason)]

    def reopen(self) -> list[DomainEvent]:
        """By hand. A withdrawn or erased case is final: the error says what to do instead."""
        if self.erased_at:
            raise CaseClosedError(
                "this case's personal data was erased; it cannot be reopened: open a new case "
                "with POST /v1/cases"
            )
        if self.withdrawn_at:
            raise CaseClosedError(
                "this case was withdrawn, which is final (its hashes left matching): it cannot "
                "be reopened; open a new case with POST /v1/cases if the victim asks again"
            )
        if self.closed_at is None:
            return []
        return [CaseReopened(cause="by_hand")]

    def reopen_on_match(self, match_id: str, seen_at: datetime) -> list[DomainEvent]:
        """A platform saw the content of a closed case again (a re-upload): the case is worked
        again, and says why. Anything but a closed case is left as it is, and so is a case
        closed after the sighting was recorded (a replayed old match reopens nothing)."""
        if self.status != "closed" or self.closed_at is None:
            return []
        if seen_at <= parse_time(self.closed_at):
            return []
        return [CaseReopened(cause="re_upload", match_id=match_id)]

    def change_consents(self, changes: dict[ConsentName, bool]) -> list[DomainEvent]:
        """Consents given or withdrawn after the opening: one event with those that change."""
        self._require_open()
        changed = {name: value for name, value in changes.items() if self.consent(name) != value}
        if not changed:
            return []
        return [ConsentsChanged(**changed)]

    def mark_spread(self) -> list[DomainEvent]:
        """By hand: the content that was threatened is out."""
        self._require_open()
        if self.spread_status == "spread":
            return []
        return [SpreadStatusChanged(spread_status="spread", cause="by_hand")]

    def erase(self, by_role: str, reason: ErasureReason) -> list[DomainEvent]:
        """Only a case worker or an admin erases (the HTTP layer refuses others first); the
        victim's own request erases by itself once due (``erasure_due``)."""
        if self.erased_at:
            return []
        if by_role not in (*ERASERS, "victim"):
            raise CaseRuleError("only a case worker or an admin erases a case")
        return [CaseErased(erased_by=by_role, reason=reason)]

    def request_erasure(
        self, by: Literal["victim", "partner"], reason: ErasureReason, now: datetime
    ) -> list[DomainEvent]:
        """Ask for erasure: a case worker confirms it; the victim's own request also takes
        effect by itself after ``VICTIM_ERASURE_DELAY``. Asking again changes nothing."""
        if self.erased_at:
            return []
        if self.erasure_requested_by == by:
            return []
        after = format_time(now + VICTIM_ERASURE_DELAY) if by == "victim" else None
        return [ErasureRequested(requested_by=by, reason=reason, effective_after=after)]

    def erasure_due(self, now: datetime) -> bool:
        """The victim's request has waited its stated delay and nobody erased the case yet."""
        return (
            self.erased_at is None
            and self.erasure_effective_after is not None
            and now >= parse_time(self.erasure_effective_after)
        )

    def record_legal_assessment(
        self,
        categories: Sequence[HarmCategory],
        how_obtained: HowObtained,
        depicts: Sequence[SexualContent],
    ) -> list[DomainEvent]:
        self._require_open()
        if self.is_minor is False and "child_sexual_exploitation" in categories:
            raise NotApplicableError(
                "child sexual exploitation is for a minor's case; this case is an adult's: "
                "choose the Criminal Code category (319-1 to 319-4, 315-1) or sextortion"
            )
        assessment = LegalAssessmentRecorded(
            categories=list(categories), how_obtained=how_obtained, depicts=list(depicts)
        )
        if assessment == self.legal_assessment:
            return []  # the same assessment again (a retry): nothing changes
        return [assessment]

    def record_offender(
        self,
        *,
        known: bool,
        account_ids: Sequence[str],
        ip_addresses: Sequence[str],
        crime_group: str | None,
        description: str | None,
    ) -> list[DomainEvent]:
        self._require_open()
        return [
            OffenderDetailsRecorded(
                known=known,
                account_ids=list(account_ids) or None,
                ip_addresses=list(ip_addresses) or None,
                crime_group=crime_group,
                description=description,
            )
        ]

    def record_police_report(
        self,
        *,
        station: str | None,
        report_number: str | None,
        reported_on: str | None,
        seizure_requested: bool,
    ) -> list[DomainEvent]:
        self._require_open()
        return [
            PoliceReportDetailsRecorded(
                station=station,
                report_number=report_number,
                reported_on=reported_on,
                seizure_requested=seizure_requested,
            )
        ]

    def assign(
        self, assignee: str | None, assignee_organisation: str | None, assignee_role: str | None
    ) -> list[DomainEvent]:
        """To a worker of the organisation that owns the case (None: unassign)."""
        self._require_open()
        if assignee is not None and (
            assignee_organisation != self.organisation or assignee_role not in ASSIGNABLE_ROLES
        ):
            raise AssigneeError(
                "assign the case to a worker of the organisation that owns it (a partner or "
                "case worker key of that organisation, by its principal id): this principal "
                "is not one, or is unknown"
            )
        if assignee == self.assignee:
            return []
        return [CaseAssigned(assignee=assignee)]

    def add_note(self, note_id: str, text: str) -> list[DomainEvent]:
        self._require_open()
        if note_id in self.note_ids:
            return []
        return [CaseNoteAdded(note_id=note_id, text=text)]

    def log_contact(
        self,
        contact_id: str,
        *,
        at: datetime,
        channel: ContactChannel,
        direction: Literal["inbound", "outbound"],
        summary: str | None,
    ) -> list[DomainEvent]:
        self._require_open()
        if contact_id in self.contact_ids:
            return []
        return [
            ContactLogged(
                contact_id=contact_id,
                at=format_time(at),
                channel=channel,
                direction=direction,
                summary=summary,
            )
        ]

    def reset_victim_access(self, by_role: str, *, new_pin: bool) -> list[DomainEvent]:
        """Restore the victim's access (decision 25). Each call is a new reset: the caller's
        Idempotency-Key is what makes a retry the same one. A withdrawn case may still be
        looked at by the victim; an erased one has nothing left to show."""
        if self.erased_at:
            raise CaseClosedError(
                "this case's personal data was erased; there is no access to restore"
            )
        by = "caseworker" if by_role == "caseworker" else "partner"
        return [VictimAccessReset(reset_by=by, new_pin=new_pin)]
