"""Referral's events: the support partners that receive referrals (reference stream), each
referral of a case from its offer to its end, the minor's mandatory report and the report of a
known suspect (Child and Youth Sexual Exploitation Prevention Act art. 7), and the guidance
checklist staff tick on a case (decision 0033).

Streams and aggregates:

* ``nciiref.partner.<partner_id>.<Type>``: PartnerRegistered, PartnerUpdated (a later event
  replaces an earlier one).
* ``ncii.<case_id>.referral.<referral_id>.<Type>``: ReferralOffered ... ReferralCompleted,
  FollowUpRecorded, ConsentOverridden, CounsellorNoteAdded.
* ``ncii.<case_id>.mandatory_report.<report_id>.<Type>``: MandatoryReportDue, ...Submitted,
  ...Overdue, and SuspectReportDue, ...Filed, ...Overdue.
* ``ncii.<case_id>.guidance.<case_id>.GuidanceItemTicked``.

The authority's filing is ``MandatoryReportSubmitted``, not ``MandatoryReportFiled``: intake's
event of that name is still in the log (its report route is superseded, decision 0033), and one
event type name means one contract for every reader of the whole log.

Free text about a case (the contact route, notes, reasons, the authority's reference, the
region that locates the victim) is personal: encrypted with the case's key, erased with it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ncii_contracts.base import PERSONAL, DomainEvent
from ncii_contracts.streams import REFERENCE

Region = Literal[
    # the six special municipalities
    "taipei_city",
    "new_taipei_city",
    "taoyuan_city",
    "taichung_city",
    "tainan_city",
    "kaohsiung_city",
    # the three provincial cities
    "keelung_city",
    "hsinchu_city",
    "chiayi_city",
    # the thirteen counties
    "hsinchu_county",
    "miaoli_county",
    "changhua_county",
    "nantou_county",
    "yunlin_county",
    "chiayi_county",
    "pingtung_county",
    "yilan_county",
    "hualien_county",
    "taitung_county",
    "penghu_county",
    "kinmen_county",
    "lienchiang_county",
]
"""Taiwan's 22 cities and counties: each has its own local authority for art. 7 reports."""

PartnerService = Literal[
    "counselling",
    "legal_advice",
    "police_accompaniment",
    "stopncii_enrolment",
    "photodna_programme",
]
"""``stopncii_enrolment``: help enrolling with StopNCII (adults only);
``photodna_programme``: the ECPAT Taiwan PhotoDNA defence programme (minors only)."""

Language = Literal["zh-Hant", "en", "nan", "hak", "id", "vi", "th", "tl", "ja", "ko"]
"""Languages a partner works in (BCP 47): Mandarin, English, Taiwanese Hokkien, Hakka and the
languages of Taiwan's largest migrant communities."""

Need = Literal[
    "emotional_support",
    "legal_advice",
    "police_report_support",
    "hash_enrolment",
    "safety_planning",
    "family_support",
]
ContactKind = Literal["phone", "email"]
DeclineReason = Literal["no_capacity", "outside_region", "service_not_offered", "other"]
RevokeReason = Literal[
    "victim_request", "offered_in_error", "case_closed", "other", "consent_withdrawn"
]
"""``consent_withdrawn``: the referral service's own, when the victim withdraws her consent to
referral (decision 36); staff pick one of the others."""
FollowUpOutcome = Literal["reached_doing_better", "reached_needs_more", "not_reached"]
ConsentBasis = Literal["victim_consent", "caseworker_override"]
OverrideReason = Literal["safeguarding_risk", "victim_unreachable_urgent", "legal_obligation"]
ReportKind = Literal["victim_minor", "known_suspect"]
GuidanceItem = Literal[
    "sextortion_do_not_pay",
    "sextortion_keep_contacts_and_conversations",
    "sextortion_report_or_block_every_channel",
    "threatened_stopncii_enrolment",
    "threatened_photodna_programme",
    "own_page_remove_post",
    "own_page_block_accounts",
    "offender_known_ask_police_to_seize_devices",
    "self_help_privacy_settings",
    "self_help_change_names_and_avatars",
    "police_report_decision_recorded",
]


class PartnerRegistered(DomainEvent, aggregate="partner", streams=(REFERENCE,)):
    """A support partner that receives referrals. ``organisation`` is the organisation of its
    counsellors' API keys (role ``counsellor``): the referrals they may read."""

    partner_id: str
    organisation: str = Field(max_length=100)
    name: str = Field(max_length=100)
    services: list[PartnerService] = Field(min_length=1)
    regions: list[Region] = Field(min_length=1)
    languages: list[Language] = Field(min_length=1)
    taking_referrals: bool = True


class PartnerUpdated(PartnerRegistered, aggregate="partner", streams=(REFERENCE,)):
    """A partner's settings, all of them (a PUT)."""


class ReferralOffered(DomainEvent, aggregate="referral"):
    """A case worker or the case's partner offered the case to a support partner. The partner
    sees the pseudonym, the needs and (only with consent to be contacted) one contact route."""

    referral_id: str
    partner_id: str
    partner_organisation: str
    service: PartnerService
    needs: list[Need] = Field(min_length=1)
    consent_basis: ConsentBasis
    age_group: Literal["minor", "adult"]
    pseudonym: Annotated[str | None, PERSONAL] = None
    contact_kind: Annotated[ContactKind | None, PERSONAL] = None
    contact_value: Annotated[str | None, PERSONAL] = Field(default=None, max_length=254)


class ConsentOverridden(DomainEvent, aggregate="referral"):
    """A case worker offered a referral the victim had not consented to, for a reason: its own
    event, before the offer, so auditors see it."""

    referral_id: str
    reason: OverrideReason
    explanation: Annotated[str | None, PERSONAL] = Field(default=None, max_length=2000)


class ReferralAccepted(DomainEvent, aggregate="referral"):
    referral_id: str
    accepted_at: str


class ReferralDeclined(DomainEvent, aggregate="referral"):
    referral_id: str
    declined_at: str
    reason: DeclineReason


class ReferralCompleted(DomainEvent, aggregate="referral"):
    referral_id: str
    completed_at: str


class ReferralRevoked(DomainEvent, aggregate="referral"):
    """Staff ended an offered or accepted referral, or the service did because the victim
    withdrew the consent it rested on (``consent_withdrawn``, decision 36)."""

    referral_id: str
    revoked_at: str
    reason: RevokeReason


class FollowUpRecorded(DomainEvent, aggregate="referral"):
    """The victim was contacted again, and how she is."""

    referral_id: str
    contacted_at: str
    outcome: FollowUpOutcome
    note: Annotated[str | None, PERSONAL] = Field(default=None, max_length=2000)


class CounsellorNoteAdded(DomainEvent, aggregate="referral"):
    """A counsellor's note on a referral addressed to their organisation."""

    referral_id: str
    note_id: str
    note: Annotated[str | None, PERSONAL] = Field(default=None, max_length=4000)


class _ReportDue(DomainEvent, aggregate="mandatory_report"):
    report_id: str
    learned_at: str
    due_at: str
    region: Annotated[Region | None, PERSONAL] = None
    """The city or county whose local authority receives the report (None: not known yet)."""


class _ReportFiled(DomainEvent, aggregate="mandatory_report"):
    report_id: str
    filed_at: str
    late: bool
    authority_region: Annotated[Region | None, PERSONAL] = None
    authority_reference: Annotated[str | None, PERSONAL] = Field(default=None, max_length=100)


class _ReportOverdue(DomainEvent, aggregate="mandatory_report"):
    report_id: str
    due_at: str
    detected_at: str


class MandatoryReportDue(_ReportDue, aggregate="mandatory_report"):
    """A minor's case was opened: the local authority must be told within 24 hours of staff
    learning of it (art. 7)."""


class MandatoryReportSubmitted(_ReportFiled, aggregate="mandatory_report"):
    """Staff reported the minor's case to the local authority."""


class MandatoryReportOverdue(_ReportOverdue, aggregate="mandatory_report"):
    """24 hours passed with the report not filed."""


class SuspectReportDue(_ReportDue, aggregate="mandatory_report"):
    """Staff recorded that the suspect is known: reporting them is due (art. 7 para 2)."""


class SuspectReportFiled(_ReportFiled, aggregate="mandatory_report"):
    pass


class SuspectReportOverdue(_ReportOverdue, aggregate="mandatory_report"):
    pass


class GuidanceItemTicked(DomainEvent, aggregate="guidance"):
    """Staff ticked an item of the case's guidance checklist (done with the victim)."""

    item: GuidanceItem
    ticked_at: str


REFERRAL_EVENTS: tuple[type[DomainEvent], ...] = (
    PartnerRegistered,
    PartnerUpdated,
    ReferralOffered,
    ConsentOverridden,
    ReferralAccepted,
    ReferralDeclined,
    ReferralCompleted,
    ReferralRevoked,
    FollowUpRecorded,
    CounsellorNoteAdded,
    MandatoryReportDue,
    MandatoryReportSubmitted,
    MandatoryReportOverdue,
    SuspectReportDue,
    SuspectReportFiled,
    SuspectReportOverdue,
    GuidanceItemTicked,
)
