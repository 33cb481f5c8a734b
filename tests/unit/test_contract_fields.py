"""Every field of every event the log keeps, nested ones too, is personal (encrypted with the
case's key, so erasure shreds it), a closed set of values, or on the reviewed list below with
its reason. Free text in clear survived erasure (security review F9: a forum's name, an
authority's file number); a new field of free text fails here until someone decides."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from ncii_contracts import ALL_EVENTS
from ncii_contracts.base import PERSONAL
from pydantic import BaseModel

ID = "an identifier issued by ncii (UUID, derived key or opaque token): names no person"
TIME = "a timestamp"
REVIEWED: dict[str, str] = {
    # identifiers
    "CaseOpened.reference": "the random case reference ncii issues for the victim's access",
    "LocationReported.location_id": ID,
    "HashesSubmitted.submission_id": ID,
    "HashesBanked.submission_id": ID,
    "BankedEntry.entry_key": ID,
    "HashesWithdrawn.entry_keys": ID,
    "HashListImported.import_id": ID,
    "MatchFound.match_id": ID,
    "MatchFound.sighting_id": ID,
    "MatchFound.entry_key": ID,
    "CaseReopened.match_id": ID,
    "CaseAssigned.assignee": "the principal id of a staff API key (a worker, never the victim)",
    "CaseNoteAdded.note_id": ID,
    "ContactLogged.contact_id": ID,
    "ErasureRequested.effective_after": TIME,
    "ContactLogged.at": TIME,
    "PoliceReportDetailsRecorded.reported_on": "a date (YYYY-MM-DD): when, not where or who",
    "MatchFeedbackReceived.match_id": ID,
    "MatchFeedbackReceived.entry_key": ID,
    "FalsePositiveConfirmed.negative_id": ID,
    "FalsePositiveConfirmed.match_id": ID,
    "FalsePositiveConfirmed.entry_key": ID,
    "PrincipalCreated.principal_id": ID,
    "PrincipalKeyRevoked.principal_id": ID,
    # organisations, banks and platforms: ncii's own parties, named by ncii's staff
    "CaseOpened.organisation": "the partner organisation's id (who may see the case)",
    "HashesSubmitted.organisation": "the partner organisation's id (its case bank)",
    "PrincipalCreated.organisation": "the organisation of an API key",
    "HashesBanked.bank": "a bank's name: ORG_<partner organisation>, or a list's name",
    "BankConfigured.bank": "a bank's name, set by staff",
    "HashListImported.bank": "an imported list's bank, set by staff",
    "MatchFound.bank": "a bank's name",
    "FalsePositiveConfirmed.bank": "a bank's name",
    "MatchFound.platform": "the reporting platform's organisation id (a party, not a victim)",
    "MatchFeedbackReceived.platform": "the platform's organisation id",
    "PlatformProgrammesChanged.platform": "the platform's organisation id",
    # hashes that are no victim's
    "ListedHash.value": "a hash of an imported list: belongs to no case",
    "MatchFeedbackReceived.content_value": "the hash of the platform's own content",
    "FalsePositiveConfirmed.value": (
        "a hash a case worker confirmed as not the victim's image (the negative bank)"
    ),
    # keys and staff labels
    "PrincipalCreated.key_sha256": "the SHA-256 of an API key",
    "PrincipalCreated.key_hint": "the first characters of an API key, to recognise a leak",
    "PrincipalCreated.label": "staff's name for an API key (never victim data)",
    "PrincipalKeyRevoked.reason": "staff's reason for revoking an API key",
    # times
    "CaseOpened.learned_at": TIME,
    "NonConsentRecorded.stated_at": TIME,
    "LocationReported.first_seen_at": TIME,
    "MandatoryReportFiled.filed_at": TIME,
    "HashesBanked.matchable_from": TIME,
    "HashesWithdrawn.unmatchable_from": TIME,
    "MatchFound.seen_at": TIME,
    # identifiers of the takedown service and the sighting counts
    **{
        f"{event}.{field}": ID
        for event, fields in {
            "SightingsCounted": ("match_id", "entry_key"),
            "PlatformRegistered": ("platform_id",),
            "PlatformUpdated": ("platform_id",),
            "TakedownOpened": (
                "takedown_id",
                "source_event_id",
                "location_id",
                "match_id",
                "entry_key",
                "platform_id",
                "previous_takedown_id",
            ),
            "TakedownPlatformAssigned": ("takedown_id", "platform_id"),
            "EvidencePreserved": ("takedown_id",),
            "TakedownRequested": ("takedown_id", "notice_id", "platform_id"),
            "NoticeSent": ("takedown_id", "notice_id"),
            "TakedownAcknowledged": ("takedown_id", "notice_id"),
            "ContentRemoved": ("takedown_id", "notice_id"),
            "TakedownRefused": ("takedown_id", "notice_id"),
            "TakedownOverdue": ("takedown_id", "notice_id"),
            "TakedownEscalated": ("takedown_id", "notice_id"),
            "TakedownCancelled": ("takedown_id", "notice_id"),
            "RequestFulfilled": ("takedown_id", "notice_id"),
            "EvidenceRetentionScheduled": ("takedown_id",),
            # the evidence records' event ids
            "EvidenceErased": ("takedown_id", "erased", "kept"),
            "EscalationSent": ("takedown_id", "notice_id", "authority_id"),
        }.items()
        for field in fields
    },
    **{
        f"{event}.{field}": TIME
        for event, fields in {
            "SightingsCounted": ("window_start", "window_end", "first_seen_at", "last_seen_at"),
            "EvidencePreserved": ("captured_at",),
            "NoticeSent": ("sent_at", "deadline_at"),
            "TakedownAcknowledged": ("acknowledged_at",),
            "ContentRemoved": ("removed_at",),
            "TakedownRefused": ("refused_at",),
            "TakedownOverdue": ("deadline_at", "detected_at"),
            "TakedownEscalated": ("escalated_at", "due_at"),
            "TimelineEntry": ("occurred_at",),
            "RequestFulfilled": ("fulfilled_at",),
            "EvidenceRetentionScheduled": ("ended_at", "erase_at"),
            "EvidenceErased": ("erased_at",),
            "EscalationSent": ("sent_at",),
        }.items()
        for field in fields
    },
    "SightingsCounted.platform": "the reporting platform's organisation id",
    "TimelineEntry.event_id": ID,
    "TimelineEntry.hash": "the SHA-256 of an event in the log (the escalation's proof)",
    # the platform registry: ncii's reference data about companies, no victim's
    **{
        f"{event}.{field}": "a platform's own details in the registry (a company, not a person)"
        for event in ("PlatformRegistered", "PlatformUpdated")
        for field in ("name", "jurisdiction", "webhook_url", "email", "form_url")
    },
    "PlatformRegistered.api_organisation": "the platform's organisation id for its API keys",
    "PlatformUpdated.api_organisation": "the platform's organisation id for its API keys",
    "EvidencePreserved.capture_sha256": (
        "SHA-256 of the organisation's capture file (a page's screenshot or archive, kept by "
        "the organisation): proves it unchanged, matches no image outside that file"
    ),
    # the referral service (decision 0033): its ids and times, and the partner registry
    **{
        f"{event}.{field}": ID
        for event, fields in {
            "PartnerRegistered": ("partner_id",),
            "PartnerUpdated": ("partner_id",),
            "ReferralOffered": ("referral_id", "partner_id"),
            "ConsentOverridden": ("referral_id",),
            "ReferralAccepted": ("referral_id",),
            "ReferralDeclined": ("referral_id",),
            "ReferralCompleted": ("referral_id",),
            "ReferralRevoked": ("referral_id",),
            "FollowUpRecorded": ("referral_id",),
            "CounsellorNoteAdded": ("referral_id", "note_id"),
            **{
                event: ("report_id",)
                for event in (
                    "MandatoryReportDue",
                    "MandatoryReportSubmitted",
                    "MandatoryReportOverdue",
                    "SuspectReportDue",
                    "SuspectReportFiled",
                    "SuspectReportOverdue",
                )
            },
        }.items()
        for field in fields
    },
    **{
        f"{event}.{field}": TIME
        for event, fields in {
            "ReferralAccepted": ("accepted_at",),
            "ReferralDeclined": ("declined_at",),
            "ReferralCompleted": ("completed_at",),
            "ReferralRevoked": ("revoked_at",),
            "FollowUpRecorded": ("contacted_at",),
            "MandatoryReportDue": ("learned_at", "due_at"),
            "SuspectReportDue": ("learned_at", "due_at"),
            "MandatoryReportSubmitted": ("filed_at",),
            "SuspectReportFiled": ("filed_at",),
            "MandatoryReportOverdue": ("due_at", "detected_at"),
            "SuspectReportOverdue": ("due_at", "detected_at"),
            "GuidanceItemTicked": ("ticked_at",),
        }.items()
        for field in fields
    },
    **{
        f"{event}.{field}": "a support partner's own details in the registry (an organisation)"
        for event in ("PartnerRegistered", "PartnerUpdated")
        for field in ("organisation", "name")
    },
    "ReferralOffered.partner_organisation": "the receiving partner's organisation id",
    # the audited reveal (decision 27): codes and names, no data
    "PersonalDataRead.ticket": "staff's ticket number, restricted to [A-Za-z0-9._:/#-]",
    "PersonalDataRead.endpoint": "the route that revealed the data (a path template)",
    "PersonalDataRead.fields": "names of the fields revealed, never their values",
    # an auditor's reveal (decision 37): the same codes and names
    "AuditorReadPersonalData.ticket": "the auditor's ticket number, restricted as above",
    "AuditorReadPersonalData.endpoint": "the route that revealed the data (a path template)",
    "AuditorReadPersonalData.fields": "names of the fields revealed, never their values",
}


def _closed(tp: Any) -> bool:
    """A type whose values are a closed set or carry no text: literals, booleans, integers."""
    return get_origin(tp) is Literal or tp in (bool, int, type(None))


def _unwrap(tp: Any) -> list[Any]:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType, list, tuple, set, frozenset):
        return [t for a in get_args(tp) for t in _unwrap(a)]
    return [tp]


def unreviewed_free_text(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    """``Model.field`` of every field, nested models too, that is neither personal, nor of a
    closed type, nor reviewed."""
    if model in seen:
        return []
    seen.add(model)
    found: list[str] = []
    for name, info in model.model_fields.items():
        if any(m is PERSONAL for m in info.metadata):
            continue
        for tp in _unwrap(info.annotation):
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                found += unreviewed_free_text(tp, seen)
            elif not _closed(tp) and f"{model.__name__}.{name}" not in REVIEWED:
                found.append(f"{model.__name__}.{name}")
    return found


def test_every_event_field_is_personal_closed_or_reviewed_with_a_reason() -> None:
    seen: set[type[BaseModel]] = set()
    found = [f for event in ALL_EVENTS for f in unreviewed_free_text(event, seen)]
    assert found == []
    # the review list names only fields that exist and are still in clear
    walked = {f"{m.__name__}.{n}" for m in seen for n in m.model_fields}
    assert set(REVIEWED) <= walked


def test_the_free_text_the_review_found_in_clear_is_personal_now() -> None:
    from ncii_contracts.intake import CaseOpened, LocationReported, MandatoryReportFiled

    personal = {
        f"{m.__name__}.{n}"
        for m in (CaseOpened, LocationReported, MandatoryReportFiled)
        for n, i in m.model_fields.items()
        if any(x is PERSONAL for x in i.metadata)
    }
    assert {
        "CaseOpened.channels",  # Channel.platform is free text
        "LocationReported.platform",
        "MandatoryReportFiled.authority",
        "MandatoryReportFiled.authority_reference",
    } <= personal
