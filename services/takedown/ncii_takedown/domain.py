"""A takedown and its rules (from the domain brief and issue 10), with no I/O.

- Evidence first: no notice leaves before the location's evidence record exists; an adult's case
  also needs its non-consent statement (a minor's does not: any sexual image of a minor is
  exploitation). "Delete nothing": evidence is kept, never replaced.
- One notice per takedown: requested -> sent (the platform was told; its deadline runs from
  then) -> acknowledged -> removed, or refused with a reason, or overdue -> escalated to the
  authority; cancelled when the case is withdrawn or erased. Removed, refused and cancelled are
  final. A re-upload of removed content is a new takedown linked to the first.
- Deadlines come from the legal regimes a platform answers to (``REGIMES``, data): the
  strictest applies. Where the law sets no hours (the DSA's "without undue delay"), the centre's
  follow-up target applies, shorter for platforms that recognise it as a trusted flagger.
- A notice carries the union of what those laws ask for, and never the victim's image, name or
  contact details (``notice_document``).

Decisions take plain values and return the events they decide on (``[]`` when nothing
changes), or raise ``TakedownRuleError`` when a rule forbids them. Times are passed in (one
injected clock), so everything here is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import AgeGroup
from ncii_contracts.takedown import (
    RETENTION_DAYS,
    CancelReason,
    CaptureMethod,
    ContentRemoved,
    EscalationSent,
    EvidenceErased,
    EvidencePreserved,
    EvidenceRetentionScheduled,
    NoticeChannel,
    NoticePurpose,
    NoticeSent,
    RefusalReason,
    Regime,
    RequestFulfilled,
    TakedownAcknowledged,
    TakedownCancelled,
    TakedownEscalated,
    TakedownOpened,
    TakedownOverdue,
    TakedownPlatformAssigned,
    TakedownRefused,
    TakedownRequested,
    TakedownSource,
    TimelineEntry,
)

Status = Literal[
    "opened",
    "requested",
    "sent",
    "acknowledged",
    "overdue",
    "escalated",
    "removed",
    "refused",
    "cancelled",
    "fulfilled",
]
FINAL: frozenset[str] = frozenset({"removed", "refused", "cancelled", "fulfilled"})
WAITING_FOR_PLATFORM: frozenset[str] = frozenset({"sent", "acknowledged", "overdue", "escalated"})
"""A notice the platform has and has not settled: what it lists and answers."""
CLOCK_RUNNING: frozenset[str] = frozenset({"sent", "acknowledged"})
"""A notice whose deadline can still pass (overdue is said once)."""
CASE_READERS = ("partner", "caseworker", "admin")
CASE_WRITERS = ("partner", "caseworker")
STAFF = ("caseworker", "admin")
PERSONAL_DATA_READERS = ("partner", "caseworker")
"""Who reads a timeline's personal fields (the evidence's URL and offender details, the
platform's reference, the escalation's authority): the case's side, as in intake (decision
27). An admin reads the timeline without them: nothing is decrypted, so no unrecorded read
(decision 56); the recorded reveals are intake's and the auditor's."""
History = Iterable[tuple[DomainEvent, str]]


class TakedownRuleError(Exception):
    """A command the takedown's state (or its case) does not allow. ``kind`` names the rule."""

    kind = "takedown-rule"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EvidenceRequiredError(TakedownRuleError):
    kind = "evidence-required"


class StatementRequiredError(TakedownRuleError):
    kind = "non-consent-statement-required"


class PlatformRequiredError(TakedownRuleError):
    kind = "platform-required"


class TransitionError(TakedownRuleError):
    kind = "transition-not-allowed"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    """UTC, microseconds, ``Z``, four-digit year (as the log writes times)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# -- legal regimes: data ------------------------------------------------------------------------


@dataclass(frozen=True)
class RegimeRule:
    """How long a platform has under one regime. ``legal`` False: the law sets no hours, and
    the hours are the centre's own follow-up target."""

    regime: Regime
    minor_hours: int
    adult_hours: int
    legal: bool
    trusted_flagger_hours: int | None = None
    """Shorter target when the platform recognises the centre as a trusted flagger."""
    basis: str = ""
    authority: str = ""
    """Who an overdue notice is escalated to under this regime."""
    escalate_after_hours: int = 0
    """Hours after the deadline when escalation is due: 0 where the law's deadline is itself
    the breach (the authority enforces it), longer where the hours are only our target."""


REGIMES: dict[Regime, RegimeRule] = {
    "tw": RegimeRule(
        "tw",
        minor_hours=24,
        adult_hours=72,
        legal=True,
        basis="Taiwan: Child and Youth Sexual Exploitation Prevention Act art. 8; Sexual "
        "Assault Crime Prevention Act art. 13",
        authority="the competent authority under art. 47 (Ministry of Health and Welfare, "
        "Ministry of Digital Affairs)",
    ),
    "us_take_it_down": RegimeRule(
        "us_take_it_down",
        48,
        48,
        legal=True,
        basis="United States: TAKE IT DOWN Act",
        authority="Federal Trade Commission",
    ),
    "uk": RegimeRule(
        "uk", 48, 48, legal=True, basis="United Kingdom: 48-hour removal duty", authority="Ofcom"
    ),
    "eu_dsa": RegimeRule(
        "eu_dsa",
        minor_hours=72,
        adult_hours=72,
        legal=False,
        trusted_flagger_hours=24,
        basis="European Union: Digital Services Act art. 16 (without undue delay), art. 22",
        authority="the Digital Services Coordinator of the platform's establishment",
        escalate_after_hours=24,  # our own target passed, not a legal breach: a day's grace
    ),
}


@dataclass(frozen=True)
class Deadline:
    regime: Regime
    hours: int
    legal: bool
    priority: bool


def deadline_for(
    regimes: Sequence[Regime], age_group: AgeGroup, *, trusted_flagger: bool
) -> Deadline:
    """The strictest deadline among the platform's regimes; a legal one wins a tie."""
    if not regimes:
        raise ValueError("a platform answers to at least one regime")
    options: list[tuple[int, bool, Regime]] = []
    for regime in regimes:
        rule = REGIMES[regime]
        hours = rule.minor_hours if age_group == "minor" else rule.adult_hours
        if trusted_flagger and rule.trusted_flagger_hours is not None:
            hours = min(hours, rule.trusted_flagger_hours)
        options.append((hours, not rule.legal, regime))
    hours, not_legal, regime = min(options)
    return Deadline(regime, hours, not not_legal, trusted_flagger)


def deadline_at(sent_at: str, hours: int) -> str:
    return format_time(parse_time(sent_at) + timedelta(hours=hours))


def escalation_due_at(deadline: str, regime: Regime) -> str:
    """When an overdue notice is due for escalation under its deadline's regime."""
    return deadline_at(deadline, REGIMES[regime].escalate_after_hours)


# -- the case, as takedown needs it ---------------------------------------------------------------


@dataclass(frozen=True)
class CaseFacts:
    """What takedown knows of a case (from intake's events)."""

    organisation: str
    age_group: AgeGroup
    consents_takedown: bool
    statement_recorded: bool = False
    closed: bool = False

    @property
    def legal_ground(self) -> bool:
        """A minor's case always; an adult's once the non-consent statement is recorded."""
        return self.age_group == "minor" or self.statement_recorded


def sees_personal_data(role: str) -> bool:
    return role in PERSONAL_DATA_READERS


def may_see(role: str, organisation: str, case_organisation: str) -> bool:
    """Partners see their own organisation's cases; case workers and admins every case."""
    if role not in CASE_READERS:
        return False
    return role != "partner" or organisation == case_organisation


def opens_takedown(case: CaseFacts | None) -> bool:
    """Whether a location or sighting of this case becomes a takedown."""
    return case is not None and case.consents_takedown and not case.closed


def missing_for_notice(
    *, status: str, has_evidence: bool, has_platform: bool, case: CaseFacts
) -> TakedownRuleError | None:
    """Why a takedown's notice cannot be requested yet (the first reason), or None: the rule
    the takedown and the reactor (which sees rows, not the aggregate) both decide with."""
    if status != "opened":
        return TransitionError(f"the notice was already requested (now {status})")
    if case.closed:
        return TransitionError("the case was withdrawn or erased")
    if not has_evidence:
        return EvidenceRequiredError(
            "record the location's evidence first (when and how it was captured, the "
            "capture's SHA-256, who preserved it): no notice leaves before it"
        )
    if not case.legal_ground:
        return StatementRequiredError(
            "an adult's case needs the person's explicit statement of non-consent to "
            "distribution before a notice can be sent"
        )
    if not has_platform:
        return PlatformRequiredError(
            "the location's platform is not a registered platform: assign one"
        )
    return None


def notice_requested(
    *,
    takedown_id: str,
    notice_id: str,
    platform_id: str,
    channel: NoticeChannel,
    regimes: Sequence[Regime],
    trusted_flagger: bool,
    age_group: AgeGroup,
) -> TakedownRequested:
    deadline = deadline_for(regimes, age_group, trusted_flagger=trusted_flagger)
    return TakedownRequested(
        takedown_id=takedown_id,
        notice_id=notice_id,
        platform_id=platform_id,
        channel=channel,
        regimes=list(regimes),
        deadline_regime=deadline.regime,
        deadline_hours=deadline.hours,
        legal=deadline.legal,
        priority=deadline.priority,
    )


# -- the takedown -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    captured_at: str
    capture_method: CaptureMethod
    capture_sha256: str


@dataclass(frozen=True)
class Takedown:
    takedown_id: str
    source: TakedownSource
    opened_at: str
    status: Status = "opened"
    platform_id: str | None = None
    location_id: str | None = None
    match_id: str | None = None
    entry_key: str | None = None
    previous_takedown_id: str | None = None
    evidence: tuple[Evidence, ...] = ()
    notice_id: str | None = None
    channel: NoticeChannel | None = None
    regimes: tuple[Regime, ...] = ()
    deadline_regime: Regime | None = None
    deadline_hours: int | None = None
    legal: bool | None = None
    sent_at: str | None = None
    deadline_at: str | None = None
    acknowledged_at: str | None = None
    removed_at: str | None = None
    refused_reason: RefusalReason | None = None
    ended_at: str | None = None
    purpose: NoticePurpose = "removal"
    erase_at: str | None = None
    """When the evidence records' personal fields are due for erasure (retention scheduled)."""
    evidence_erased_at: str | None = None
    escalated_at: str | None = None
    escalation_sent_at: str | None = None

    @staticmethod
    def open(
        takedown_id: str,
        *,
        source: TakedownSource,
        source_event_id: str,
        platform_id: str | None,
        location_id: str | None = None,
        match_id: str | None = None,
        entry_key: str | None = None,
        previous_takedown_id: str | None = None,
        purpose: NoticePurpose = "removal",
    ) -> list[DomainEvent]:
        return [
            TakedownOpened(
                takedown_id=takedown_id,
                source=source,
                source_event_id=source_event_id,
                location_id=location_id,
                match_id=match_id,
                entry_key=entry_key,
                platform_id=platform_id,
                previous_takedown_id=previous_takedown_id,
                purpose=purpose,
            )
        ]

    @classmethod
    def replay(cls, history: History) -> Takedown | None:
        takedown: Takedown | None = None
        for event, at in history:
            if isinstance(event, TakedownOpened):
                takedown = cls(
                    takedown_id=event.takedown_id,
                    source=event.source,
                    opened_at=at,
                    platform_id=event.platform_id,
                    location_id=event.location_id,
                    match_id=event.match_id,
                    entry_key=event.entry_key,
                    previous_takedown_id=event.previous_takedown_id,
                    purpose=event.purpose,
                )
            elif takedown is not None:
                takedown = takedown.apply(event, at)
        return takedown

    def apply(self, event: DomainEvent, at: str) -> Takedown:
        if isinstance(event, TakedownPlatformAssigned):
            return replace(self, platform_id=event.platform_id)
        if isinstance(event, EvidencePreserved):
            item = Evidence(event.captured_at, event.capture_method, event.capture_sha256)
            return replace(self, evidence=(*self.evidence, item))
        if isinstance(event, TakedownRequested):
            return replace(
                self,
                status="requested",
                notice_id=event.notice_id,
                platform_id=event.platform_id,
                channel=event.channel,
                regimes=tuple(event.regimes),
                deadline_regime=event.deadline_regime,
                deadline_hours=event.deadline_hours,
                legal=event.legal,
            )
        if isinstance(event, NoticeSent):
            return replace(
                self, status="sent", sent_at=event.sent_at, deadline_at=event.deadline_at
            )
        if isinstance(event, TakedownAcknowledged):
            status: Status = "acknowledged" if self.status == "sent" else self.status
            return replace(self, status=status, acknowledged_at=event.acknowledged_at)
        if isinstance(event, ContentRemoved):
            return replace(self, status="removed", removed_at=event.removed_at, ended_at=at)
        if isinstance(event, TakedownRefused):
            return replace(self, status="refused", refused_reason=event.reason, ended_at=at)
        if isinstance(event, TakedownOverdue):
            return replace(self, status="overdue")
        if isinstance(event, TakedownEscalated):
            return replace(self, status="escalated", escalated_at=event.escalated_at)
        if isinstance(event, EscalationSent):
            return replace(self, escalation_sent_at=event.sent_at)
        if isinstance(event, TakedownCancelled):
            return replace(self, status="cancelled", ended_at=at)
        if isinstance(event, RequestFulfilled):
            return replace(self, status="fulfilled", ended_at=at)
        if isinstance(event, EvidenceRetentionScheduled):
            return replace(self, erase_at=event.erase_at)
        if isinstance(event, EvidenceErased):
            return replace(self, evidence_erased_at=event.erased_at)
        return self

    # -- what is missing before the notice ----------------------------------------------------

    def missing_for_request(self, case: CaseFacts) -> TakedownRuleError | None:
        """Why the notice cannot be requested yet (the first reason), or None."""
        return missing_for_notice(
            status=self.status,
            has_evidence=bool(self.evidence),
            has_platform=self.platform_id is not None,
            case=case,
        )

    def _require(self, allowed: Iterable[str], what: str) -> None:
        if self.status not in allowed:
            raise TransitionError(f"cannot {what}: the notice is {self.status}")

    # -- decisions -----------------------------------------------------------------------------

    def assign_platform(self, platform_id: str) -> list[DomainEvent]:
        if self.platform_id == platform_id:
            return []
        self._require(("opened",), "change the platform")
        return [TakedownPlatformAssigned(takedown_id=self.takedown_id, platform_id=platform_id)]

    def record_evidence(
        self,
        *,
        captured_at: str,
        capture_method: CaptureMethod,
        capture_sha256: str,
        url: str | None,
        preserved_by: str | None,
        offender_account: str | None,
        offender_ip: str | None,
    ) -> list[DomainEvent]:
        """Evidence is added, never replaced (a second capture is a second record); the same
        capture twice is nothing new."""
        if self.status == "cancelled":
            raise TransitionError("cannot record evidence: the takedown was cancelled")
        if self.erase_at is not None:
            raise TransitionError(
                "cannot record evidence: the takedown ended and its evidence is in retention"
            )
        if any(e.capture_sha256 == capture_sha256 for e in self.evidence):
            return []
        return [
            EvidencePreserved(
                takedown_id=self.takedown_id,
                captured_at=captured_at,
                capture_method=capture_method,
                capture_sha256=capture_sha256,
                url=url,
                preserved_by=preserved_by,
                offender_account=offender_account,
                offender_ip=offender_ip,
            )
        ]

    def request(
        self,
        case: CaseFacts,
        *,
        notice_id: str,
        channel: NoticeChannel,
        regimes: Sequence[Regime],
        trusted_flagger: bool,
    ) -> list[DomainEvent]:
        """The notice, decided: evidence first, the statement for adults, a known platform."""
        missing = self.missing_for_request(case)
        if missing is not None:
            raise missing
        assert self.platform_id is not None
        return [
            notice_requested(
                takedown_id=self.takedown_id,
                notice_id=notice_id,
                platform_id=self.platform_id,
                channel=channel,
                regimes=regimes,
                trusted_flagger=trusted_flagger,
                age_group=case.age_group,
            )
        ]

    def _notice(self) -> str:
        assert self.notice_id is not None
        return self.notice_id

    def send(self, sent_at: str, *, attempts: int = 1) -> list[DomainEvent]:
        if self.status in (
            "sent",
            "acknowledged",
            "overdue",
            "escalated",
            "removed",
            "refused",
            "fulfilled",
        ):
            return []  # told already (a second confirmation is not news)
        self._require(("requested",), "send the notice")
        assert self.channel is not None and self.deadline_hours is not None
        return [
            NoticeSent(
                takedown_id=self.takedown_id,
                notice_id=self._notice(),
                channel=self.channel,
                sent_at=sent_at,
                deadline_at=deadline_at(sent_at, self.deadline_hours),
                attempts=attempts,
            )
        ]

    def acknowledge(self, at: str, platform_reference: str | None) -> list[DomainEvent]:
        if self.acknowledged_at is not None and self.status in WAITING_FOR_PLATFORM:
            return []
        self._require(("sent", "overdue", "escalated"), "acknowledge")
        return [
            TakedownAcknowledged(
                takedown_id=self.takedown_id,
                notice_id=self._notice(),
                acknowledged_at=at,
                platform_reference=platform_reference,
            )
        ]

    def remove(self, removed_at: str) -> list[DomainEvent]:
        if self.status == "removed":
            return []
        if self.purpose != "removal":
            raise TransitionError(
                "this notice asks to freeze an account or keep data, not to remove content: "
                "answer it with done or refuse"
            )
        self._require(WAITING_FOR_PLATFORM, "mark the content removed")
        return [
            ContentRemoved(
                takedown_id=self.takedown_id, notice_id=self._notice(), removed_at=removed_at
            )
        ]

    def fulfil(self, at: str) -> list[DomainEvent]:
        """A freeze or preserve notice done (its own outcome; a removal is ``remove``)."""
        if self.status == "fulfilled":
            return []
        if self.purpose == "removal":
            raise TransitionError("this notice asks for a removal: answer it with removed")
        self._require(WAITING_FOR_PLATFORM, "mark the request done")
        return [
            RequestFulfilled(
                takedown_id=self.takedown_id, notice_id=self._notice(), fulfilled_at=at
            )
        ]

    def refuse(self, at: str, reason: RefusalReason) -> list[DomainEvent]:
        if self.status == "refused" and self.refused_reason == reason:
            return []
        self._require(WAITING_FOR_PLATFORM, "refuse")
        return [
            TakedownRefused(
                takedown_id=self.takedown_id, notice_id=self._notice(), refused_at=at, reason=reason
            )
        ]

    def is_due(self, now: datetime) -> bool:
        return (
            self.status in CLOCK_RUNNING
            and self.deadline_at is not None
            and now >= parse_time(self.deadline_at)
        )

    def mark_overdue(self, now: datetime) -> list[DomainEvent]:
        if self.status in ("overdue", "escalated") or not self.is_due(now):
            return []
        assert self.deadline_at is not None and self.deadline_regime is not None
        return [
            TakedownOverdue(
                takedown_id=self.takedown_id,
                notice_id=self._notice(),
                deadline_at=self.deadline_at,
                deadline_regime=self.deadline_regime,
                legal=bool(self.legal),
                detected_at=format_time(now),
            )
        ]

    def escalate(
        self, at: str, authority: str, *, timeline: Sequence[TimelineEntry] = ()
    ) -> list[DomainEvent]:
        """The escalation record: the authority, when the regime made it due, and the timeline
        (every event of the takedown so far with its hash: the proof)."""
        if self.status == "escalated":
            return []
        self._require(("overdue",), "escalate (only an overdue notice is escalated)")
        due = None
        if self.deadline_at is not None and self.deadline_regime is not None:
            due = escalation_due_at(self.deadline_at, self.deadline_regime)
        return [
            TakedownEscalated(
                takedown_id=self.takedown_id,
                notice_id=self._notice(),
                escalated_at=at,
                authority=authority,
                due_at=due,
                timeline=list(timeline),
            )
        ]

    def escalation_due(self, now: datetime) -> bool:
        """Overdue, and its regime's grace after the deadline has passed."""
        return (
            self.status == "overdue"
            and self.deadline_at is not None
            and self.deadline_regime is not None
            and now >= parse_time(escalation_due_at(self.deadline_at, self.deadline_regime))
        )

    def cancel(self, reason: CancelReason) -> list[DomainEvent]:
        if self.status in FINAL:
            return []
        return [
            TakedownCancelled(takedown_id=self.takedown_id, notice_id=self.notice_id, reason=reason)
        ]

    def escalation_sent(
        self, *, authority_id: str, channel: NoticeChannel, at: str, attempts: int
    ) -> list[DomainEvent]:
        """The escalation record reached the authority's channel (once)."""
        if self.escalation_sent_at is not None:
            return []
        if self.escalated_at is None:
            raise TransitionError("only an escalated notice is sent to the authority")
        return [
            EscalationSent(
                takedown_id=self.takedown_id,
                notice_id=self._notice(),
                authority_id=authority_id,
                channel=channel,
                sent_at=at,
                attempts=attempts,
            )
        ]

    def cancel_for_consent(self) -> list[DomainEvent]:
        """The victim withdrew her consent to takedowns: a removal stops (the platform is told
        if it was); a freeze or preserve notice stays, as it keeps evidence and protects her
        rather than removing her images (decision 0044)."""
        if self.purpose != "removal":
            return []
        return self.cancel("consent_withdrawn")

    def schedule_retention(self, ended_at: str) -> list[DomainEvent]:
        """The takedown ended: its evidence is kept ``RETENTION_DAYS`` from then."""
        if self.erase_at is not None:
            return []
        if self.status not in FINAL:
            raise TransitionError(f"evidence is kept while the takedown runs (now {self.status})")
        return [
            EvidenceRetentionScheduled(
                takedown_id=self.takedown_id,
                ended_at=ended_at,
                erase_at=retention_erase_at(ended_at),
                days=RETENTION_DAYS,
            )
        ]

    def erase_evidence(
        self, now: datetime, *, erased: Sequence[str], kept: Sequence[str]
    ) -> list[DomainEvent]:
        """The retention ran out: the record of which evidence keys were destroyed."""
        if self.evidence_erased_at is not None:
            return []
        if self.erase_at is None:
            raise TransitionError("no retention is scheduled: the takedown has not ended")
        if now < parse_time(self.erase_at):
            raise TransitionError(f"the evidence is kept until {self.erase_at}")
        return [
            EvidenceErased(
                takedown_id=self.takedown_id,
                erased_at=format_time(now),
                erased=list(erased),
                kept=list(kept),
            )
        ]

    @property
    def platform_was_told(self) -> bool:
        return self.sent_at is not None


def retention_erase_at(ended_at: str) -> str:
    """When an ended takedown's evidence records are erased (180 days after its end)."""
    return format_time(parse_time(ended_at) + timedelta(days=RETENTION_DAYS))


def previous_removed(
    prior: Iterable[tuple[str, str | None, str]], entry_key: str | None
) -> str | None:
    """The takedown a re-upload follows: the last one of the same banked content (``entry_key``)
    that ended with the content removed. ``prior``: (takedown id, entry key, status), oldest
    first."""
    if entry_key is None:
        return None
    found = None
    for takedown_id, key, status in prior:
        if key == entry_key and status == "removed":
            found = takedown_id
    return found


# -- the notice ---------------------------------------------------------------------------------

GOOD_FAITH = (
    "We have a good-faith belief that the material identified in this notice is an intimate "
    "image published without the consent of the person depicted, and that this notice is "
    "accurate."
)
NON_CONSENT_ADULT = (
    "The person depicted, an adult, has stated explicitly that they do not consent to the "
    "distribution of this material; the statement is on record with the notifier."
)
MINOR = (
    "The person depicted is a minor: any sexual image of a minor is sexual exploitation, "
    "whatever consent is claimed. Restrict access or remove it first, and keep the page data, "
    "the uploader's data and logs for 180 days for the police and courts."
)

ASKS: dict[NoticePurpose, str] = {
    "removal": "Remove, or disable access to, the material at the addresses below.",
    "freeze_account": (
        "Freeze the account below (suspend it without deleting it or its data): it is being "
        "used to threaten the person depicted with the distribution of intimate images. Do not "
        "tell the account holder who asked."
    ),
    "preserve_data": (
        "Keep the pages below and the data of the account that posted them (content, account "
        "details, IP addresses and times) for 180 days for the police and courts. Do not tell "
        "the account holder who asked."
    ),
}
"""What each kind of notice asks (art. 8): text, so that a platform's reader knows which."""


@dataclass(frozen=True)
class Notifier:
    """The notifying body and a contact: an office, never the victim."""

    organisation: str
    contact_name: str
    email: str
    phone: str


def notice_document(
    takedown: Takedown,
    *,
    platform_name: str,
    age_group: AgeGroup,
    url: str | None,
    offender_account: str | None,
    offender_ip: str | None,
    notifier: Notifier,
    sent_at: str,
) -> dict[str, Any]:
    """What the platform receives: the union of what Taiwan's law, TAKE IT DOWN, the UK and
    the DSA ask a notice to hold (site and URL, the offender's account or address where known,
    the non-consent statement for adults, the notifier and a contact, a good-faith statement,
    the deadline). Never the victim's image, name or contact details: they are not arguments.
    ``sent_at``: when this copy is sent (the deadline runs from the copy that arrives)."""
    assert takedown.notice_id is not None and takedown.deadline_regime is not None
    assert takedown.deadline_hours is not None
    regimes = takedown.regimes or (takedown.deadline_regime,)
    return {
        "type": "ncii.takedown.notice",
        "notice_id": takedown.notice_id,
        "purpose": takedown.purpose,
        "asks": ASKS[takedown.purpose],
        "site": platform_name,
        "urls": [url] if url else [],
        "offender": {"account": offender_account, "ip_address": offender_ip},
        "person": "minor" if age_group == "minor" else "adult",
        "statement": MINOR if age_group == "minor" else NON_CONSENT_ADULT,
        "good_faith_statement": GOOD_FAITH,
        "identical_copies": "remove identical copies too (hash matching where feasible)",
        "preserve_days": 180,
        "legal_basis": [REGIMES[r].basis for r in regimes],
        "deadline": {
            "regime": takedown.deadline_regime,
            "hours": takedown.deadline_hours,
            "legal": takedown.legal,
            "due_at": deadline_at(sent_at, takedown.deadline_hours),
        },
        "re_upload_of": takedown.previous_takedown_id is not None,
        "notifier": {
            "organisation": notifier.organisation,
            "contact_name": notifier.contact_name,
            "email": notifier.email,
            "phone": notifier.phone,
        },
        "sent_at": sent_at,
    }


def escalation_document(
    notice: dict[str, Any],
    escalated: TakedownEscalated,
    *,
    escalation_event_id: str,
    escalation_hash: str,
    escalation_occurred_at: str,
    authority_name: str,
    notifier: Notifier,
) -> dict[str, Any]:
    """What the authority receives (art. 47): the notice as the platform received it, the
    regime and its deadline, and the takedown's timeline as the log holds it (each event's id,
    type, time and hash, then the escalation record's own), so that it can check every step
    against an auditor's replay. Never the victim's name, image or contact: the notice holds
    none (``notice_document``)."""
    deadline = notice["deadline"]
    regime = REGIMES[deadline["regime"]]
    return {
        "type": "ncii.takedown.escalation",
        "notice_id": escalated.notice_id,
        "escalation_id": escalation_event_id,
        "authority": authority_name,
        "platform": notice["site"],
        "regime": deadline["regime"],
        "legal_basis": regime.basis,
        "deadline_at": deadline["due_at"],
        "escalation_due_at": escalated.due_at,
        "escalated_at": escalated.escalated_at,
        "notice": notice,
        "timeline": [
            *(entry.model_dump(mode="json") for entry in escalated.timeline),
            {
                "event_id": escalation_event_id,
                "type": "TakedownEscalated",
                "occurred_at": escalation_occurred_at,
                "hash": escalation_hash,
            },
        ],
        "notifier": {
            "organisation": notifier.organisation,
            "contact_name": notifier.contact_name,
            "email": notifier.email,
            "phone": notifier.phone,
        },
    }


def cancellation_document(notice_id: str, reason: CancelReason) -> dict[str, Any]:
    """What a platform that was told receives when the case is withdrawn or erased."""
    return {"type": "ncii.takedown.cancelled", "notice_id": notice_id, "reason": reason}


# -- delivery ---------------------------------------------------------------------------------

MAX_ATTEMPTS = 8
BASE_DELAY_S = 5.0
MAX_DELAY_S = 3600.0


def retry_delay(attempt: int, jitter: float, base: float = BASE_DELAY_S) -> float:
    """Seconds before attempt ``attempt + 1`` after ``attempt`` failed: exponential, capped,
    with "equal jitter" (half fixed, half random; ``jitter`` in [0, 1)), so receivers that came
    back are not hit by every sender at once."""
    delay = min(MAX_DELAY_S, base * 2.0 ** (attempt - 1))
    return delay / 2 + jitter * delay / 2
