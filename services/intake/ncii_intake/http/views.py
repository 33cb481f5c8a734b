"""What intake's API answers: the response models, and how a case and its history become one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, get_args

from ncii_contracts.intake import CaseOpened, LocationReported, RevealReason
from ncii_events.store import RecordedEvent
from pydantic import BaseModel

from ncii_intake.app import LoadedCase
from ncii_intake.domain import CASE_PERSONAL_FIELDS


def now() -> datetime:
    return datetime.now(UTC)


class CaseSummary(BaseModel):
    case_id: str
    reference: str
    status: str
    age_group: str
    harm_categories: list[str]
    spread_status: str
    intake_channel: str
    learned_at: str
    opened_at: str
    mandatory_report_due_at: str | None
    mandatory_report_filed_at: str | None
    locations: int
    hashes: int


class CaseList(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    seq: int
    type: str
    occurred_at: str
    actor_role: str
    actor_organisation: str


class PersonalDataWithheld(BaseModel):
    fields: list[str]
    how_to_read: str
    reasons: list[str]


def withheld_note(case_id: str) -> PersonalDataWithheld:
    return PersonalDataWithheld(
        fields=list(CASE_PERSONAL_FIELDS),
        how_to_read=(
            f"GET /v1/cases/{case_id}?reveal=personal&reason=<one of reasons>[&ticket=<your "
            "ticket reference>]: the read is recorded in the case's log (PersonalDataRead, with "
            "you, the reason and the ticket) before the data is returned"
        ),
        reasons=list(get_args(RevealReason)),
    )


class CaseDetail(BaseModel):
    case_id: str
    reference: str
    organisation: str
    status: str
    age_group: str
    pseudonym: str | None
    contact: dict[str, Any] | None
    personal_data_erased: bool
    personal_data_withheld: PersonalDataWithheld | None = None
    """Set when your role reads cases without their personal fields (they are null)."""
    consents: dict[str, Any]
    spread_status: str
    closed_at: str | None = None
    """Set while the case is closed (not final: its hashes stay in matching; decision 35)."""
    learned_at: str
    opened_at: str
    statement_recorded_at: str | None
    mandatory_report: dict[str, Any] | None
    locations: list[dict[str, Any]]
    hashes_submitted: int
    pending: list[str]
    timeline: list[TimelineEntry]
    version: int


class VictimView(BaseModel):
    reference: str
    status: str
    opened_at: str
    steps: list[dict[str, str]]


def summary(row: dict[str, Any]) -> CaseSummary:
    return CaseSummary(
        case_id=row["case_id"],
        reference=row["reference"],
        status=row["status"],
        age_group=row["age_group"],
        harm_categories=json.loads(row["harm_categories"]),
        spread_status=row["spread_status"],
        intake_channel=row["intake_channel"],
        learned_at=row["learned_at"],
        opened_at=row["opened_at"],
        mandatory_report_due_at=row["report_due_at"],
        mandatory_report_filed_at=row["report_filed_at"],
        locations=row["locations"],
        hashes=row["hashes"],
    )


def mandatory_report_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "case_id": row["case_id"],
        "reference": row["reference"],
        "learned_at": row["learned_at"],
        "due_at": row["report_due_at"],
        "state": row["report_state"],
    }


def detail(
    loaded: LoadedCase, history: Sequence[RecordedEvent], *, withheld: bool = False
) -> CaseDetail:
    """The case for its reader; ``withheld``: without its personal fields (read from the log
    without decrypting them, and nulled here whatever the log gave)."""
    case = loaded.case
    pseudonym: str | None = None
    contact: dict[str, Any] | None = None
    erased = False
    locations: list[dict[str, Any]] = []
    for recorded in history:
        ev = recorded.event
        erased = erased or bool(recorded.erased_fields)
        if isinstance(ev, CaseOpened):
            pseudonym = ev.pseudonym
            contact = ev.contact.model_dump() if ev.contact else None
        elif isinstance(ev, LocationReported):
            locations.append(
                {
                    "location_id": ev.location_id,
                    "platform": None if withheld else ev.platform,
                    "channel_kind": ev.channel_kind,
                    "first_seen_at": ev.first_seen_at,
                    "url": None if withheld else ev.url,
                    "reported_at": recorded.envelope.occurred_at,
                }
            )
    at = now()
    report = None
    if case.is_minor:
        report = {
            "due_at": case.mandatory_report_due_at,
            "filed_at": case.mandatory_report_filed_at,
            "state": case.mandatory_report_state(at),
        }
    return CaseDetail(
        case_id=case.case_id,
        reference=case.reference,
        organisation=case.organisation,
        status=case.status,
        age_group=case.age_group,
        pseudonym=None if withheld else pseudonym,
        contact=None if withheld else contact,
        personal_data_erased=erased or case.erased_at is not None,
        personal_data_withheld=withheld_note(case.case_id) if withheld else None,
        consents={**case.consents.model_dump(), "contact": case.contact_consent},
        spread_status=case.spread_status,
        closed_at=case.closed_at,
        learned_at=case.learned_at,
        opened_at=case.opened_at,
        statement_recorded_at=case.statement_recorded_at,
        mandatory_report=report,
        locations=locations,
        hashes_submitted=case.hashes_submitted,
        pending=case.pending(at),
        timeline=[
            TimelineEntry(
                seq=n,
                type=r.type,
                occurred_at=r.envelope.occurred_at,
                actor_role=r.envelope.actor.role,
                actor_organisation=r.envelope.actor.organisation,
            )
            for n, r in enumerate(history, start=1)
        ],
        version=loaded.number,
    )


def case_state(loaded: LoadedCase) -> dict[str, Any]:
    """What a write returns and what may be kept for an idempotent replay: no personal data."""
    case = loaded.case
    return {
        "case_id": case.case_id,
        "reference": case.reference,
        "status": case.status,
        "version": loaded.number,
        "pending": case.pending(now()),
    }


_VICTIM_STEPS = {
    "CaseOpened": "your case was opened",
    "NonConsentRecorded": "your statement that you do not consent was recorded",
    "LocationReported": "a place where the content was found was recorded",
    "HashesSubmitted": "fingerprints (hashes) of the images were shared for blocking",
    "PoliceReportDecisionRecorded": "your decision about reporting to the police was recorded",
    "MandatoryReportFiled": "the case was reported to the authority, as the law requires",
    "CaseWithdrawn": "the case was withdrawn",
    "CaseErased": "your personal data was erased",
    "VictimAccessReset": "your case worker restored your access to this page",
    "CaseClosed": "the case was closed; the fingerprints of your images are still watched for",
    "CaseReopened": "the case was reopened",
    "ConsentsChanged": "what you agree to was updated",
    "SpreadStatusChanged": "the case now records that the content was spread",
}


def victim_view(loaded: LoadedCase, events: Sequence[RecordedEvent]) -> VictimView:
    """The victim's view: status and the case's own steps, in words, no personal data."""
    case = loaded.case
    return VictimView(
        reference=case.reference,
        status=case.status,
        opened_at=case.opened_at,
        steps=[
            {"at": r.envelope.occurred_at, "what": _VICTIM_STEPS.get(r.type, r.type)}
            for r in events
            if r.envelope.aggregate == "case"
        ],
    )
