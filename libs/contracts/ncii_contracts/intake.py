"""Intake's events: the facts a case is made of. Personal fields are marked and encrypted in the
log with the case's key; everything else is what dashboards, auditors and other services read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ncii_contracts.base import PERSONAL, DomainEvent
from ncii_contracts.referral import Region

AgeGroup = Literal["minor", "adult"]
HarmCategory = Literal[
    "secret_recording_319_1",
    "forced_recording_319_2",
    "distribution_without_consent_319_3",
    "synthetic_image_319_4",
    "threat_sextortion",
    "child_sexual_exploitation",
    "sexual_audio_315_1",
]
"""The legal category, complete (decision 35): Criminal Code 319-1 to 319-4 and 315-1 (sexual
audio or images of non-public activity), sextortion, and child sexual exploitation."""
HowObtained = Literal[
    "secretly_recorded",
    "recorded_by_force_or_threat",
    "recorded_with_consent",
    "sent_by_the_victim",
    "taken_from_her_device_or_account",
    "synthesised",
    "unknown",
]
SexualContent = Literal["intercourse", "genitals_or_private_parts", "other_sexual_acts"]
"""What the image shows against Criminal Code art. 10 para 8 (a sexual image)."""
ContactChannel = Literal["phone", "email", "message", "in_person", "letter"]
SpreadStatus = Literal["spread", "threatened"]
ChannelKind = Literal[
    "messaging_app",
    "social_platform",
    "video_site",
    "forum",
    "dating_app",
    "cloud_storage",
    "image_host",
    "other",
]
IntakeChannel = Literal["phone", "web_form", "voicemail", "partner_api"]
PoliceReportDecision = Literal["undecided", "will_report", "reported", "declined"]
HashAlgorithm = Literal["pdq", "md5", "vpdq"]
Media = Literal["image", "video"]
WithdrawnBy = Literal["victim", "partner", "caseworker"]
StaffRole = Literal["partner", "caseworker"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _same_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2 of an event whose v2 only encrypts fields v1 stored in clear."""
    return payload


def _count_hashes(payload: dict[str, Any]) -> dict[str, Any]:
    """HashesSubmitted v1 -> v2: the count is kept beside the (now encrypted) hashes."""
    return {**payload, "count": len(payload.get("hashes") or [])}


class Consents(_Frozen):
    takedown: bool
    share_hashes: bool
    referral: bool
    police_report: PoliceReportDecision = "undecided"


class Contact(_Frozen):
    email: str | None = None
    phone: str | None = None
    preferred: Literal["email", "phone", "none"] = "none"
    safe_times: str | None = Field(default=None, max_length=200)


class SubmittedHash(_Frozen):
    algorithm: HashAlgorithm
    value: str | None
    """PDQ or MD5 hex; None for vPDQ (its frames carry the hashes)."""
    media: Media
    quality: int | None = None
    dihedral: list[str] | None = None
    """PDQ: the 8 rotations and flips computed on the device, so rotated copies match too."""
    frames: list[str] | None = None
    """vPDQ: the frame hashes of quality 50 or more, in order (one a second)."""


class Channel(_Frozen):
    kind: ChannelKind
    platform: str | None = Field(default=None, max_length=100)
    """The service's name as people say it (e.g. LINE, Telegram), not an account or URL.
    Free text, so ``CaseOpened.channels`` is personal as a whole."""
    stage: Literal["lured", "threatened", "spread"] | None = None
    """What happened over this channel (the trail of the harm: lured or secretly recorded,
    then threatened, then spread); the list's order is the order it happened in."""


class CaseOpened(
    DomainEvent,
    aggregate="case",
    version=3,
    upcasters={1: _same_payload, 2: _same_payload},
    clear_before={"channels": 2},
):
    """A case was opened by a partner NGO or a case worker of the centre.

    v2: ``channels`` (their platform names are free text) is personal; v1 stored it in clear.
    v3: ``region`` (the city or county whose authority receives a minor's art. 7 report;
    personal: it locates the victim; decision 34); ``harm_categories`` may be
    ``sexual_audio_315_1`` and a channel may say its ``stage`` (decision 35). Earlier payloads
    read unchanged (no region: not known)."""

    organisation: str
    reference: str
    age_group: AgeGroup
    harm_categories: list[HarmCategory]
    spread_status: SpreadStatus
    channels: Annotated[list[Channel] | None, PERSONAL] = None
    intake_channel: IntakeChannel
    learned_at: str
    """When staff learned of the case: for a minor, the 24-hour reporting clock starts here."""
    consents: Consents
    pseudonym: Annotated[str | None, PERSONAL] = None
    contact: Annotated[Contact | None, PERSONAL] = None
    region: Annotated[Region | None, PERSONAL] = None


class NonConsentRecorded(DomainEvent, aggregate="case"):
    """The adult's explicit statement that they do not consent to the distribution."""

    stated_at: str
    method: Literal["written", "verbal", "signed_form", "online_form"]
    statement: Annotated[str | None, PERSONAL] = None


class LocationReported(
    DomainEvent,
    aggregate="case",
    version=2,
    upcasters={1: _same_payload},
    clear_before={"platform": 2},
):
    """Content was found somewhere: each location may become its own takedown.

    v2: ``platform`` (free text: a forum's name can single the victim out) is personal."""

    location_id: str
    channel_kind: ChannelKind
    first_seen_at: str | None = None
    platform: Annotated[str | None, PERSONAL] = None
    url: Annotated[str | None, PERSONAL] = None


class HashesSubmitted(
    DomainEvent,
    aggregate="case",
    version=2,
    upcasters={1: _count_hashes},
    clear_before={"hashes": 2},
):
    """Hashes computed on the victim's or partner's own device; never an image.

    v2: the hashes of a person's intimate images are personal (encrypted with the case's key,
    so erasure shreds them); ``count`` says how many without decrypting. v1 stored them in
    clear (its upcaster counts them)."""

    submission_id: str
    organisation: str
    age_group: AgeGroup
    count: int = Field(default=0, ge=0)
    hashes: Annotated[list[SubmittedHash] | None, PERSONAL] = None

    @model_validator(mode="before")
    @classmethod
    def _count_of_hashes(cls, data: Any) -> Any:
        # writers may leave the count out; a stored payload always has it
        if isinstance(data, dict) and "count" not in data and data.get("hashes") is not None:
            return {**data, "count": len(data["hashes"])}
        return data


class PoliceReportDecisionRecorded(DomainEvent, aggregate="case"):
    """The victim's own decision about reporting to the police: recorded, never forced."""

    decision: PoliceReportDecision


class MandatoryReportFiled(
    DomainEvent,
    aggregate="case",
    version=2,
    upcasters={1: _same_payload},
    clear_before={"authority": 2, "authority_reference": 2},
):
    """A minor's case was reported to the local authority (Child and Youth Sexual Exploitation
    Prevention Act art. 7: within 24 hours of staff learning of it).

    v2: ``authority`` (which local authority names the victim's city) and
    ``authority_reference`` (a pointer into the authority's record of a minor) are personal.

    No longer written (decision 34): the report is the referral service's
    (``MandatoryReportSubmitted``). Old logs hold it; every reader still decodes it."""

    filed_at: str
    authority: Annotated[str | None, PERSONAL] = Field(default=None, max_length=200)
    authority_reference: Annotated[str | None, PERSONAL] = Field(default=None, max_length=100)


class CaseWithdrawn(DomainEvent, aggregate="case"):
    """Final: every takedown stops and the case's hashes leave matching everywhere."""

    withdrawn_by: WithdrawnBy
    reason: Literal["victim_request", "resolved", "opened_in_error", "other"] = "victim_request"


CloseReason = Literal["resolved", "no_further_action", "lost_contact"]
ConsentName = Literal["takedown", "share_hashes", "referral", "contact"]
ReopenCause = Literal["by_hand", "re_upload", "victim_returned"]


class CaseClosed(DomainEvent, aggregate="case"):
    """The work on the case is done for now; unlike a withdrawal it is not final: its hashes
    stay in matching and new sightings still reach it (decision 35)."""

    reason: CloseReason = "resolved"


class CaseReopened(DomainEvent, aggregate="case"):
    """A closed case is worked again: by hand, or by itself when a platform saw its content
    again (``re_upload``: ``match_id`` names the sighting that did it)."""

    cause: ReopenCause
    match_id: str | None = None


class ConsentsChanged(DomainEvent, aggregate="case"):
    """The victim gave or withdrew consents after the opening: only the consents that change
    are set (None: unchanged). Withdrawing ``share_hashes`` takes the case's banked hashes out
    of matching; withdrawing ``takedown`` stops new takedowns from opening."""

    takedown: bool | None = None
    share_hashes: bool | None = None
    referral: bool | None = None
    contact: bool | None = None


class SpreadStatusChanged(DomainEvent, aggregate="case"):
    """The content that was only threatened is out (``spread``): set by hand, or by itself
    when the first location is reported (``cause``)."""

    spread_status: SpreadStatus
    cause: Literal["by_hand", "location_reported"]


ErasureReason = Literal[
    "victim_request",
    "opened_in_error",
    "retention_ended",
    "legal_obligation",
    "not_recorded",
]


def _erasure_reason(payload: dict[str, Any]) -> dict[str, Any]:
    """CaseErased v1 -> v2: erasures before decision 35 recorded no reason."""
    return {"reason": "not_recorded", **payload}


class CaseErased(DomainEvent, aggregate="case", version=2, upcasters={1: _erasure_reason}):
    """Final: the case's key is destroyed; its personal fields read as erased for ever, and its
    hashes leave matching everywhere.

    v2: only a case worker or an admin erases, and says why (``reason``; decision 35). Who
    it was is the envelope's actor."""

    erased_by: Literal["victim", "partner", "caseworker", "admin"]
    reason: ErasureReason = "not_recorded"


class ErasureRequested(DomainEvent, aggregate="case"):
    """Someone who may not erase alone asked for it: the partner that owns the case, or the
    victim herself with her reference and PIN. A case worker (or an admin) confirms it with an
    erasure; the victim's own request takes effect by itself after ``effective_after`` unless
    the case is erased sooner (decision 35)."""

    requested_by: Literal["victim", "partner"]
    reason: ErasureReason
    effective_after: str | None = None


class LegalAssessmentRecorded(DomainEvent, aggregate="case"):
    """A case worker's assessment of what the law counts: the legal categories (replacing
    the opening's), how the image was obtained, and what it shows against art. 10 para 8 (the
    eligibility check: a sexual image shows at least one)."""

    categories: list[HarmCategory]
    how_obtained: HowObtained
    depicts: list[SexualContent]


class OffenderDetailsRecorded(DomainEvent, aggregate="case"):
    """What is known of the offender: personal data, encrypted under the case's key, so erasure
    shreds it. Each recording replaces the previous one."""

    known: bool
    account_ids: Annotated[list[str] | None, PERSONAL] = None
    ip_addresses: Annotated[list[str] | None, PERSONAL] = None
    crime_group: Annotated[str | None, PERSONAL] = None
    description: Annotated[str | None, PERSONAL] = None


class PoliceReportDetailsRecorded(DomainEvent, aggregate="case"):
    """Where and when the victim reported to the police; free text is personal."""

    station: Annotated[str | None, PERSONAL] = None
    report_number: Annotated[str | None, PERSONAL] = None
    reported_on: str | None = None
    """The date of the report (YYYY-MM-DD)."""
    seizure_requested: bool = False
    """Whether seizure of the offender's phone and devices was asked for."""


class CaseAssigned(DomainEvent, aggregate="case"):
    """The case's worker from now on: a principal of the organisation that owns the case
    (None: nobody)."""

    assignee: str | None


class CaseNoteAdded(DomainEvent, aggregate="case"):
    """A case worker's note: personal (free text about a victim's case)."""

    note_id: str
    text: Annotated[str | None, PERSONAL] = None


class ContactLogged(DomainEvent, aggregate="case"):
    """One contact with the victim (or on her behalf): when, how, which way; its summary is
    personal."""

    contact_id: str
    at: str
    channel: ContactChannel
    direction: Literal["inbound", "outbound"]
    summary: Annotated[str | None, PERSONAL] = None


RevealReason = Literal[
    "victim_request",
    "partner_request",
    "data_subject_request",
    "legal_obligation",
    "safeguarding",
    "incident_investigation",
]


class PersonalDataRead(DomainEvent, aggregate="personal_data_read"):
    """Someone whose role does not see a case's personal data by default (``admin``) read it,
    for a stated reason: recorded before the data is returned (decision 27). The actor is the
    envelope's; each read is its own one-event aggregate, so reads never contend with the case's
    writers. Codes and field names only: nothing personal."""

    reason: RevealReason
    ticket: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:/#-]+$")
    endpoint: str = Field(max_length=200)
    fields: list[str] = Field(max_length=20)


class VictimAccessReset(DomainEvent, aggregate="case"):
    """The victim's case worker (or the partner that owns the case) restored her access with
    the reference and PIN: wrong PINs counted against the reference before this no longer
    refuse anyone. With ``new_pin`` the PIN given before stops working and a new one was shown,
    once, to whoever reset it, to hand to the victim."""

    reset_by: StaffRole
    new_pin: bool


INTAKE_EVENTS: tuple[type[DomainEvent], ...] = (
    CaseOpened,
    NonConsentRecorded,
    LocationReported,
    HashesSubmitted,
    PoliceReportDecisionRecorded,
    MandatoryReportFiled,
    CaseWithdrawn,
    CaseErased,
    PersonalDataRead,
    VictimAccessReset,
    CaseClosed,
    CaseReopened,
    ConsentsChanged,
    SpreadStatusChanged,
    ErasureRequested,
    LegalAssessmentRecorded,
    OffenderDetailsRecorded,
    PoliceReportDetailsRecorded,
    CaseAssigned,
    CaseNoteAdded,
    ContactLogged,
)
INTAKE_RETIRED: tuple[type[DomainEvent], ...] = (MandatoryReportFiled,)
"""In ``INTAKE_EVENTS`` (old logs hold them; every reader decodes them) but no longer written by
anyone: the art. 7 report is the referral service's (decision 36)."""
