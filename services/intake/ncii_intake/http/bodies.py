"""What partners and case workers send intake: the HTTP bodies, validated, so every field gets
a clear message about what to fix. Unknown fields are refused (there is no real-name field)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from ncii_contracts.hashes import PDQ_MIN_QUALITY, HashItem, low_quality_message
from ncii_contracts.intake import (
    AgeGroup,
    Channel,
    ChannelKind,
    CloseReason,
    ConsentName,
    ContactChannel,
    HarmCategory,
    HowObtained,
    IntakeChannel,
    PoliceReportDecision,
    SexualContent,
    SpreadStatus,
)
from ncii_contracts.referral import Region
from ncii_events.http.fields import PastTime, RequestBody, WebAddress
from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{7,20}$")


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    return value


# Single lines of text, trimmed, of bounded length.
Pseudonym = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=60),
    AfterValidator(_single_line),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_single_line),
]
LongName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_single_line),
]
Note = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_single_line)
]


class ConsentsIn(RequestBody):
    takedown: bool = Field(description="the victim agrees that platforms are asked to remove it")
    share_hashes: bool = Field(description="the victim agrees that hashes go to platforms")
    referral: bool = Field(description="the victim agrees to be referred to counselling")
    police_report: PoliceReportDecision = "undecided"


class ContactIn(RequestBody):
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    preferred: Literal["email", "phone", "none"] = "none"
    safe_times: Note | None = Field(
        default=None, description="when it is safe to call or write, in the victim's words"
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("must be an e-mail address like name@example.org")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("must be a phone number: digits, spaces, +, - or parentheses")
        return value


class OpenCase(RequestBody):
    pseudonym: Pseudonym = Field(
        description="a code name or nickname; never the person's real name"
    )
    age_group: AgeGroup = Field(description="the person's age group when the image was made")
    harm_categories: list[HarmCategory] = Field(min_length=1, max_length=7)
    spread_status: SpreadStatus = Field(description="already spread, or only threatened")
    channels: list[Channel] = Field(default_factory=list, max_length=50)
    intake_channel: IntakeChannel
    learned_at: PastTime = Field(
        description="when staff learned of the case (UTC); starts a minor's 24-hour clock"
    )
    consents: ConsentsIn
    contact: ContactIn | None = None
    region: Region | None = Field(
        default=None,
        description="the city or county (e.g. taipei_city): routes a minor's art. 7 report",
    )

    @field_validator("harm_categories")
    @classmethod
    def _unique(cls, value: list[HarmCategory]) -> list[HarmCategory]:
        if len(set(value)) != len(value):
            raise ValueError("list each harm category once")
        return value


class RecordNonConsent(RequestBody):
    stated_at: PastTime
    method: Literal["written", "verbal", "signed_form", "online_form"]
    statement: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = (
        Field(default=None, description="the statement in the person's words (encrypted)")
    )


class ReportLocation(RequestBody):
    url: WebAddress
    platform: Name
    channel_kind: ChannelKind
    first_seen_at: PastTime | None = None


class SubmittedHashIn(HashItem):
    @field_validator("quality")
    @classmethod
    def _matchable(cls, value: int | None) -> int | None:
        # quality is only accepted on PDQ hashes (checked by HashItem)
        if value is not None and value < PDQ_MIN_QUALITY:
            raise ValueError(low_quality_message(value))
        return value

    @model_validator(mode="after")
    def _matchable_frames(self) -> SubmittedHashIn:
        if self.frames is not None and not any(f.quality >= PDQ_MIN_QUALITY for f in self.frames):
            raise ValueError(
                f"every frame is below quality {PDQ_MIN_QUALITY}: too low to match on; "
                "hash a better copy of the video"
            )
        return self


class SubmitHashes(RequestBody):
    """``ncii hash`` prints exactly this body. PDQ hashes below quality 50 are refused."""

    hashes: list[SubmittedHashIn] = Field(min_length=1, max_length=1000)


class RecordPoliceDecision(RequestBody):
    decision: PoliceReportDecision


class Withdraw(RequestBody):
    reason: Literal["victim_request", "resolved", "opened_in_error", "other"] = "victim_request"


class CloseCase(RequestBody):
    reason: CloseReason = Field(
        default="resolved",
        description="why the work is done for now; the case's hashes stay in matching",
    )


class ChangeConsents(RequestBody):
    """The consents the victim gives (true) or withdraws (false) now; leave out the others."""

    takedown: bool | None = Field(default=None, description="platforms may be asked to remove it")
    share_hashes: bool | None = Field(
        default=None, description="hashes go to platforms (false takes them out of matching)"
    )
    referral: bool | None = Field(default=None, description="referral to counselling")
    contact: bool | None = Field(default=None, description="the centre may contact her")

    @model_validator(mode="after")
    def _something_changes(self) -> ChangeConsents:
        if not self.changes():
            raise ValueError(
                "say which consents change: one or more of takedown, share_hashes, referral, "
                "contact, each true (given) or false (withdrawn)"
            )
        return self

    def changes(self) -> dict[ConsentName, bool]:
        names: tuple[ConsentName, ...] = ("takedown", "share_hashes", "referral", "contact")
        return {n: v for n in names if (v := getattr(self, n)) is not None}


class VictimAccess(RequestBody):
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)]
    pin: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{8}$")]


class ResetVictimAccess(RequestBody):
    new_pin: bool = Field(
        default=True,
        description="issue a new PIN (the old one stops working); false: keep the PIN and only "
        "clear the wrong attempts counted against the reference",
    )


def _unique_items(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("list each value once")
    return value


Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_single_line),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class RecordLegalAssessment(RequestBody):
    """What the law counts, as the case worker assesses it (decision 35)."""

    categories: Annotated[list[HarmCategory], AfterValidator(_unique_items)] = Field(
        min_length=1, max_length=7, description="the legal categories; replaces the opening's"
    )
    how_obtained: HowObtained
    depicts: Annotated[list[SexualContent], AfterValidator(_unique_items)] = Field(
        max_length=3,
        description=(
            "what the image shows against art. 10 para 8 (empty: none of them, so it is not "
            "a sexual image in law)"
        ),
    )


class RecordOffender(RequestBody):
    known: bool = Field(description="whether the victim knows who the offender is")
    account_ids: list[Identifier] = Field(default_factory=list, max_length=50)
    ip_addresses: list[
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Fa-f:.]{2,45}$")]
    ] = Field(default_factory=list, max_length=50)
    crime_group: Name | None = None
    description: Text | None = None


class RecordPoliceReport(RequestBody):
    station: LongName | None = None
    report_number: Name | None = None
    reported_on: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = Field(
        default=None, description="YYYY-MM-DD"
    )
    seizure_requested: bool = Field(
        default=False, description="whether seizure of the offender's devices was requested"
    )


class AssignCase(RequestBody):
    assignee: Identifier | None = Field(
        description="the principal id of a worker of the organisation that owns the case; "
        "null to unassign"
    )


class AddNote(RequestBody):
    text: Text


class LogContact(RequestBody):
    at: PastTime
    channel: ContactChannel
    direction: Literal["inbound", "outbound"]
    summary: Text | None = None


class EraseCase(RequestBody):
    reason: Literal["victim_request", "opened_in_error", "retention_ended", "legal_obligation"] = (
        Field(description="why the case is erased (recorded with who erased it)")
    )


class RequestErasure(RequestBody):
    reason: Literal["victim_request", "opened_in_error", "retention_ended", "legal_obligation"] = (
        "victim_request"
    )


class VictimErasureRequest(VictimAccess):
    """The victim's reference and PIN: her request takes effect after a stated delay unless
    her case worker confirms it sooner."""
