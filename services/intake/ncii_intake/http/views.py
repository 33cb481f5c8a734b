"""What intake's API answers: the response models, and how a case and its history become one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from ncii_contracts.intake import (
    CaseNoteAdded,
    CaseOpened,
    ContactLogged,
    ErasureRequested,
    LegalAssessmentRecorded,
    LocationReported,
    OffenderDetailsRecorded,
    PoliceReportDetailsRecorded,
    RevealReason,
)
from ncii_events.store import RecordedEvent
from pydantic import BaseModel

from ncii_intake.app import LoadedCase
from ncii_intake.domain import (
    CASE_PERSONAL_FIELDS,
    art7_pending,
    art7_report,
    prosecution,
    sexual_image,
)


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
    updated_at: str | None = None
    assignee: str | None = None
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
    channels: list[dict[str, Any]] | None = None
    """The trail of the harm: each channel with its stage (lured, threatened, spread), in the
    order it happened."""
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
    """A minor's art. 7 report as the referral service records it (decision 34: its clock,
    overdue event and filing are referral's): due, overdue or filed; null until referral opened
    it, and for an adult's case."""
    locations: list[dict[str, Any]]
    hashes_submitted: int
    assignee: str | None = None
    legal: dict[str, Any] | None = None
    """The legal categories, how the image was obtained, the eligibility check (art. 10 para 8)
    and whether prosecution needs the victim's complaint, with its consequence."""
    offender: dict[str, Any] | None = None
    police_report: dict[str, Any] | None = None
    notes: list[dict[str, Any]] | None = None
    contact_log: list[dict[str, Any]] | None = None
    erasure_request: dict[str, Any] | None = None
    fields_withheld: list[str] = []
    """The fields your role does not read (null here): the role x field table of decision 35."""
    pending: list[str]
    timeline: list[TimelineEntry]
    version: int


class VictimView(BaseModel):
    reference: str
    status: str
    opened_at: str
    steps: list[dict[str, str]]


def summary_item(row: dict[str, Any]) -> dict[str, Any]:
    """A ``CaseSummary`` as plain data: the list answers 200 of them per page, and building and
    re-validating a model per row was most of a list request's time at 100k cases."""
    return {
        "case_id": row["case_id"],
        "reference": row["reference"],
        "status": row["status"],
        "age_group": row["age_group"],
        # stored as the JSON list it is shown as: given as it is, not parsed and encoded again
        "harm_categories": orjson.Fragment(row["harm_categories"]),
        "spread_status": row["spread_status"],
        "intake_channel": row["intake_channel"],
        "learned_at": row["learned_at"],
        "opened_at": row["opened_at"],
        "updated_at": row["updated_at"],
        "assignee": row["assignee"],
        "locations": row["locations"],
        "hashes": row["hashes"],
    }


def _legal(case_categories: Sequence[str], ev: LegalAssessmentRecorded | None) -> dict[str, Any]:
    categories = list(ev.categories) if ev else list(case_categories)
    outlook = prosecution(categories)  # type: ignore[arg-type]
    return {
        "categories": categories,
        "how_obtained": ev.how_obtained if ev else None,
        "depicts": list(ev.depicts) if ev else None,
        "sexual_image": sexual_image(ev.depicts) if ev else None,
        "eligibility": (
            "not yet checked: a case worker records what the image shows (art. 10 para 8)"
            if ev is None
            else "a sexual image in law (art. 10 para 8)"
            if ev.depicts
            else "shows none of art. 10 para 8's kinds: not a sexual image in law"
        ),
        "complaint_required": outlook.complaint_required,
        "categories_needing_complaint": outlook.categories_needing_complaint,
        "consequence": outlook.consequence,
    }


def detail(
    loaded: LoadedCase,
    history: Sequence[RecordedEvent],
    *,
    withheld: bool = False,
    hidden: Sequence[str] = (),
) -> CaseDetail:
    """The case for its reader; ``withheld``: without its personal fields (read from the log
    without decrypting them, and nulled here whatever the log gave). ``hidden``: the fields
    the reader's role does not see (``withheld_fields``), nulled here whatever the log gave."""
    case = loaded.case
    hide = set(hidden)
    pseudonym: str | None = None
    contact: dict[str, Any] | None = None
    channels: list[dict[str, Any]] | None = None
    erased = False
    locations: list[dict[str, Any]] = []
    assessment: LegalAssessmentRecorded | None = None
    offender: dict[str, Any] | None = None
    police: dict[str, Any] | None = None
    notes: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    erasure: dict[str, Any] | None = None
    for recorded in history:
        ev = recorded.event
        erased = erased or bool(recorded.erased_fields)
        at_ = recorded.envelope.occurred_at
        if isinstance(ev, LegalAssessmentRecorded):
            assessment = ev
        elif isinstance(ev, OffenderDetailsRecorded):
            offender = {
                "known": ev.known,
                "account_ids": ev.account_ids,
                "ip_addresses": ev.ip_addresses,
                "crime_group": ev.crime_group,
                "description": ev.description,
                "recorded_at": at_,
            }
        elif isinstance(ev, PoliceReportDetailsRecorded):
            police = {
                "station": None if "police_report.station" in hide else ev.station,
                "report_number": (
                    None if "police_report.report_number" in hide else ev.report_number
                ),
                "reported_on": ev.reported_on,
                "seizure_requested": ev.seizure_requested,
            }
        elif isinstance(ev, CaseNoteAdded):
            notes.append({"note_id": ev.note_id, "text": ev.text, "at": at_})
        elif isinstance(ev, ContactLogged):
            contacts.append(
                {
                    "contact_id": ev.contact_id,
                    "at": ev.at,
                    "channel": ev.channel,
                    "direction": ev.direction,
                    "summary": ev.summary,
                }
            )
        elif isinstance(ev, ErasureRequested):
            erasure = {
                "requested_by": ev.requested_by,
                "reason": ev.reason,
                "requested_at": at_,
                "takes_effect_at": ev.effective_after,
                "how_to_confirm": f"a case worker: POST /v1/cases/{case.case_id}/erase",
            }
        if isinstance(ev, CaseOpened):
            pseudonym = ev.pseudonym
            contact = ev.contact.model_dump() if ev.contact else None
            channels = [c.model_dump() for c in ev.channels] if ev.channels is not None else None
        elif isinstance(ev, LocationReported):
            locations.append(
                {
                    "location_id": ev.location_id,
                    "platform": None if "locations[].platform" in hide else ev.platform,
                    "channel_kind": ev.channel_kind,
                    "first_seen_at": ev.first_seen_at,
                    "url": None if "locations[].url" in hide else ev.url,
                    "reported_at": recorded.envelope.occurred_at,
                }
            )
    at = now()
    art7 = art7_report(r.event for r in history) if case.is_minor else None
    report = None
    pending = case.pending(at)
    if art7 is not None:
        report = {
            "report_id": art7.report_id,
            "due_at": art7.due_at,
            "state": art7.state,
            "filed_at": art7.filed_at,
            "late": art7.late,
            "see": f"the referral service keeps it: GET /v1/cases/{case.case_id}/reports",
        }
        item = art7_pending(case.case_id, art7)
        if item is not None and case.status not in ("closed", "withdrawn", "erased"):
            pending.append(item)
    return CaseDetail(
        case_id=case.case_id,
        reference=case.reference,
        organisation=case.organisation,
        status=case.status,
        age_group=case.age_group,
        pseudonym=None if "pseudonym" in hide else pseudonym,
        contact=None if "contact" in hide else contact,
        channels=None if "channels" in hide else channels,
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
        assignee=case.assignee,
        legal=None if "legal" in hide else _legal(case.harm_categories, assessment),
        offender=None if "offender" in hide else offender,
        police_report=police,
        notes=None if "notes" in hide else notes,
        contact_log=None if "contact_log" in hide else contacts,
        erasure_request=erasure,
        fields_withheld=sorted(hide),
        pending=pending,
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
    "MandatoryReportSubmitted": "the case was reported to the authority, as the law requires",
    "CaseWithdrawn": "the case was withdrawn",
    "CaseErased": "your personal data was erased",
    "VictimAccessReset": "your case worker restored your access to this page",
    "CaseClosed": "the case was closed; the fingerprints of your images are still watched for",
    "CaseReopened": "the case was reopened",
    "ConsentsChanged": "what you agree to was updated",
    "SpreadStatusChanged": "the case now records that the content was spread",
    "ErasureRequested": "erasure of your personal data was requested",
    "LegalAssessmentRecorded": "your case worker assessed the case under the law",
    "OffenderDetailsRecorded": "what is known of the offender was recorded",
    "PoliceReportDetailsRecorded": "the details of your police report were recorded",
    "CaseAssigned": "a case worker was assigned to your case",
    "CaseNoteAdded": "your case worker added a note to the case",
    "ContactLogged": "a contact with you was recorded",
}


_VICTIM_REPORT_STEPS = frozenset({"MandatoryReportSubmitted"})
"""Steps of other aggregates the victim sees: the referral service's filing of her report to
the authority (decision 34), which intake recorded itself before."""


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
            if r.envelope.aggregate == "case" or r.type in _VICTIM_REPORT_STEPS
        ],
    )
