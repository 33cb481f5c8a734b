"""Request bodies: unknown fields are refused, every field says what to fix."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from ncii_contracts.referral import (
    DeclineReason,
    FollowUpOutcome,
    Language,
    Need,
    OverrideReason,
    PartnerService,
    Region,
)
from ncii_events.http.fields import PastTime, RequestBody
from pydantic import Field, StringConstraints, field_validator

Text100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _once(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("list each value once")
    return values


class PartnerFields(RequestBody):
    """A support partner's settings (register and update take the same)."""

    organisation: Text100 = Field(
        description="the organisation of its counsellors' API keys (role counsellor)"
    )
    name: Text100
    services: list[PartnerService] = Field(min_length=1, max_length=5)
    regions: list[Region] = Field(
        min_length=1, max_length=22, description="Taiwan's cities and counties it serves"
    )
    languages: list[Language] = Field(min_length=1, max_length=10)
    taking_referrals: bool = True

    _unique = field_validator("services", "regions", "languages")(_once)

    def fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class OverrideIn(RequestBody):
    reason: OverrideReason
    explanation: Note = Field(description="why the victim's consent is overridden (encrypted)")


class OfferReferral(RequestBody):
    partner_id: Annotated[str, StringConstraints(min_length=1, max_length=36)]
    service: PartnerService
    needs: list[Need] = Field(min_length=1, max_length=6)
    override: OverrideIn | None = Field(
        default=None,
        description="case workers only, when the victim has not consented to referral",
    )

    _unique = field_validator("needs")(_once)


StaffRevokeReason = Literal["victim_request", "offered_in_error", "case_closed", "other"]
"""What staff revoke for (``consent_withdrawn`` is the service's own: decision 36)."""


class Revoke(RequestBody):
    reason: StaffRevokeReason


class Decline(RequestBody):
    reason: DeclineReason


class FollowUp(RequestBody):
    contacted_at: PastTime
    outcome: FollowUpOutcome
    note: Note | None = None


class AddNote(RequestBody):
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class FileReport(RequestBody):
    filed_at: PastTime
    authority_region: Region = Field(
        description="the city or county whose authority received it, e.g. taipei_city"
    )
    authority_reference: Reference = Field(description="the authority's reference (encrypted)")


class SuspectKnown(RequestBody):
    learned_at: PastTime = Field(description="when staff learned who the suspect is (UTC)")
