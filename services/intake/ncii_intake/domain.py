"""The case and its rules (from the domain brief), with no I/O.

- An adult case needs the person's explicit statement of non-consent before takedowns can start
  or hashes be shared (Criminal Code ch. 28-1). A minor's case needs none: any sexual image of a
  minor is exploitation, and the 24-hour reporting clock (art. 7) starts when staff learned of it.
- Withdrawal and erasure are final: a closed case takes no new facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import (
    AgeGroup,
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    Consents,
    HashesSubmitted,
    LocationReported,
    MandatoryReportFiled,
    NonConsentRecorded,
    PoliceReportDecisionRecorded,
    WithdrawnBy,
)
from ncii_events.store import RecordedEvent, Version

MANDATORY_REPORT_HOURS = 24
CaseStatus = Literal["awaiting_statement", "active", "withdrawn", "erased"]


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


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    mandatory_report_filed_at: str | None = None
    withdrawn_at: str | None = None
    withdrawn_by: WithdrawnBy | None = None
    erased_at: str | None = None
    location_ids: frozenset[str] = field(default_factory=frozenset)
    submission_ids: frozenset[str] = field(default_factory=frozenset)
    hashes_submitted: int = 0
    version: Version = field(default_factory=Version)

    # -- state -------------------------------------------------------------------------------

    @classmethod
    def replay(cls, events: Sequence[RecordedEvent]) -> Case | None:
        case: Case | None = None
        for recorded in events:
            event = recorded.event
            at = recorded.envelope.occurred_at
            if isinstance(event, CaseOpened):
                case = cls(
                    case_id=recorded.case_id,
                    organisation=event.organisation,
                    reference=event.reference,
                    age_group=event.age_group,
                    consents=event.consents,
                    learned_at=event.learned_at,
                    opened_at=at,
                )
            elif case is not None and event is not None:
                case = case.apply(event, at)
        if case is not None:
            case = replace(case, version=Version.of(events))
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
                hashes_submitted=self.hashes_submitted + len(event.hashes),
            )
        if isinstance(event, PoliceReportDecisionRecorded):
            return replace(
                self, consents=self.consents.model_copy(update={"police_report": event.decision})
            )
        if isinstance(event, MandatoryReportFiled):
            return replace(self, mandatory_report_filed_at=event.filed_at)
        if isinstance(event, CaseWithdrawn):
            return replace(self, withdrawn_at=at, withdrawn_by=event.withdrawn_by)
        if isinstance(event, CaseErased):
            return replace(self, erased_at=at)
        return self

    @property
    def is_minor(self) -> bool:
        return self.age_group == "minor"

    @property
    def status(self) -> CaseStatus:
        if self.erased_at:
            return "erased"
        if self.withdrawn_at:
            return "withdrawn"
        if not self.is_minor and self.statement_recorded_at is None:
            return "awaiting_statement"
        return "active"

    @property
    def may_act(self) -> bool:
        """Takedowns may start and hashes be shared (the legal ground exists)."""
        return self.status == "active"

    @property
    def mandatory_report_due_at(self) -> str | None:
        if not self.is_minor:
            return None
        return format_time(parse_time(self.learned_at) + timedelta(hours=MANDATORY_REPORT_HOURS))

    def mandatory_report_state(self, now: datetime) -> Literal["filed", "due", "late"] | None:
        due = self.mandatory_report_due_at
        if due is None:
            return None
        if self.mandatory_report_filed_at is not None:
            return "filed"
        return "late" if now > parse_time(due) else "due"

    def pending(self, now: datetime) -> list[str]:
        """What still has to happen, in words a case worker acts on."""
        items: list[str] = []
        if self.status in ("withdrawn", "erased"):
            return items
        if self.status == "awaiting_statement":
            items.append(
                "record the person's explicit statement of non-consent to distribution: "
                "takedowns cannot start and hashes cannot be shared until then"
            )
        state = self.mandatory_report_state(now)
        if state in ("due", "late"):
            items.append(
                f"report to the local authority within 24 hours (art. 7): due "
                f"{self.mandatory_report_due_at}{' - LATE' if state == 'late' else ''}"
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

    def record_non_consent(self, event: NonConsentRecorded) -> list[DomainEvent]:
        self._require_open()
        if self.is_minor:
            raise NotApplicableError(
                "a minor's case needs no statement: any sexual image of a minor is exploitation"
            )
        if self.statement_recorded_at is not None:
            return []  # already recorded: nothing changes
        return [event]

    def report_location(self, event: LocationReported) -> list[DomainEvent]:
        self._require_open()
        if event.location_id in self.location_ids:
            return []
        return [event]

    def submit_hashes(self, event: HashesSubmitted) -> list[DomainEvent]:
        self._require_open()
        if not self.consents.share_hashes:
            raise ConsentMissingError(
                "the case does not consent to sharing hashes with platforms; "
                "record that consent first"
            )
        if self.status == "awaiting_statement":
            raise StatementRequiredError(
                "an adult case needs the person's explicit statement of non-consent to "
                "distribution before hashes can be shared: record it with "
                f"POST /v1/cases/{self.case_id}/non-consent"
            )
        if event.submission_id in self.submission_ids:
            return []
        return [event]

    def record_police_decision(self, event: PoliceReportDecisionRecorded) -> list[DomainEvent]:
        self._require_open()
        if event.decision == self.consents.police_report:
            return []
        return [event]

    def file_mandatory_report(self, event: MandatoryReportFiled) -> list[DomainEvent]:
        self._require_open()
        if not self.is_minor:
            raise NotApplicableError("the 24-hour report to the authority is for minors' cases")
        if self.mandatory_report_filed_at is not None:
            return []
        return [event]

    def withdraw(
        self,
        by: WithdrawnBy,
        reason: Literal["victim_request", "resolved", "opened_in_error", "other"],
    ) -> list[DomainEvent]:
        if self.withdrawn_at or self.erased_at:
            return []  # final, and asking twice is not an error
        return [CaseWithdrawn(withdrawn_by=by, reason=reason)]

    def erase(self, by: WithdrawnBy) -> list[DomainEvent]:
        if self.erased_at:
            return []
        return [CaseErased(erased_by=by)]
