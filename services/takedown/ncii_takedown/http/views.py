"""Answers: a takedown with its timeline (case side), a notice (platform side), a platform, a
delivery. Built from the domain's state and the log's events; nothing here decides."""

from __future__ import annotations

from typing import Any

from ncii_contracts.base import personal_fields
from ncii_contracts.takedown import TAKEDOWN_EVENTS, TakedownEscalated
from ncii_events.store import RecordedEvent

from ncii_takedown import domain

PERSONAL_FIELDS = {e.event_type: frozenset(personal_fields(e)) for e in TAKEDOWN_EVENTS}
#: Timeline fields never shown: the payload's personal fields are shown only where listed.
_TIMELINE_FIELDS = {
    "TakedownOpened": (
        "source",
        "purpose",
        "location_id",
        "platform_id",
        "previous_takedown_id",
    ),
    "RequestFulfilled": ("fulfilled_at",),
    "TakedownPlatformAssigned": ("platform_id",),
    "EvidencePreserved": (
        "captured_at",
        "capture_method",
        "capture_sha256",
        "url",
        "preserved_by",
        "offender_account",
        "offender_ip",
    ),
    "TakedownRequested": (
        "notice_id",
        "platform_id",
        "channel",
        "regimes",
        "deadline_regime",
        "deadline_hours",
        "legal",
        "priority",
    ),
    "NoticeSent": ("channel", "sent_at", "deadline_at", "attempts"),
    "TakedownAcknowledged": ("acknowledged_at", "platform_reference"),
    "ContentRemoved": ("removed_at",),
    "TakedownRefused": ("refused_at", "reason"),
    "TakedownOverdue": ("deadline_at", "deadline_regime", "legal", "detected_at"),
    "TakedownEscalated": ("escalated_at", "authority", "due_at"),
    "TakedownCancelled": ("reason",),
    "EvidenceRetentionScheduled": ("ended_at", "erase_at", "days"),
    "EvidenceErased": ("erased_at", "erased", "kept"),
    "EscalationSent": ("authority_id", "channel", "sent_at", "attempts"),
}


def timeline_entry(event: RecordedEvent) -> dict[str, Any]:
    env = event.envelope
    payload = event.event.model_dump(mode="json") if event.event is not None else {}
    shown = {k: payload.get(k) for k in _TIMELINE_FIELDS.get(env.type, ())}
    for name in event.erased_fields:
        if name in shown:
            shown[name] = None
    return {
        "event_id": env.event_id,
        "type": env.type,
        "at": env.occurred_at,
        "by": {"organisation": env.actor.organisation, "role": env.actor.role},
        "hash": env.hash,
        **shown,
    }


#: The timeline's personal fields, by event type: what an admin's read leaves null.
PERSONAL_TIMELINE_FIELDS = sorted(
    {
        f"{name}.{field}"
        for name, shown in _TIMELINE_FIELDS.items()
        for field in shown
        if field in PERSONAL_FIELDS.get(name, frozenset())
    }
)


def withheld_note(case_id: str) -> dict[str, Any]:
    """Why an admin's answer has null personal fields, and who may read them, recorded."""
    return {
        "fields": PERSONAL_TIMELINE_FIELDS,
        "how_to_read": (
            "these are read by the case's partner and the centre's case workers; an admin reads "
            f"the case's locations with GET /v1/cases/{case_id}?reveal=personal&reason=... in "
            "intake, an auditor everything with GET /v1/audit/cases/"
            f"{case_id}?reveal=personal&reason=...: each read is recorded in the case's log "
            "before the data is returned"
        ),
    }


def takedown_view(takedown: domain.Takedown, timeline: list[RecordedEvent]) -> dict[str, Any]:
    return {
        "takedown_id": takedown.takedown_id,
        "status": takedown.status,
        "purpose": takedown.purpose,
        "source": takedown.source,
        "platform_id": takedown.platform_id,
        "previous_takedown_id": takedown.previous_takedown_id,
        "evidence_records": len(takedown.evidence),
        "notice_id": takedown.notice_id,
        "channel": takedown.channel,
        "deadline": {
            "regime": takedown.deadline_regime,
            "hours": takedown.deadline_hours,
            "legal": takedown.legal,
            "due_at": takedown.deadline_at,
        },
        "sent_at": takedown.sent_at,
        "acknowledged_at": takedown.acknowledged_at,
        "removed_at": takedown.removed_at,
        "refused_reason": takedown.refused_reason,
        "evidence_erase_at": takedown.erase_at,
        "evidence_erased_at": takedown.evidence_erased_at,
        "timeline": [timeline_entry(e) for e in timeline],
    }


def state_view(takedown: domain.Takedown) -> dict[str, Any]:
    """What a write answers: where the takedown stands now."""
    return {
        "takedown_id": takedown.takedown_id,
        "notice_id": takedown.notice_id,
        "status": takedown.status,
        "purpose": takedown.purpose,
        "evidence_records": len(takedown.evidence),
        "platform_id": takedown.platform_id,
        "sent_at": takedown.sent_at,
        "deadline_at": takedown.deadline_at,
    }


def notice_state(takedown: domain.Takedown) -> dict[str, Any]:
    """What a platform's write answers (no case or takedown ids: the notice is its handle)."""
    return {
        "notice_id": takedown.notice_id,
        "status": takedown.status,
        "acknowledged_at": takedown.acknowledged_at,
        "removed_at": takedown.removed_at,
        "refused_reason": takedown.refused_reason,
    }


def platform_view(row: Any) -> dict[str, Any]:
    return {
        "platform_id": row.platform_id,
        "name": row.name,
        "kind": row.kind,
        "jurisdiction": row.jurisdiction,
        "regimes": row.regimes.split(","),
        "channel": row.channel,
        "webhook_url": row.webhook_url,
        "email": row.email,
        "form_url": row.form_url,
        "api_organisation": row.api_organisation,
        "takes_hash_lists": row.takes_hash_lists,
        "trusted_flagger": row.trusted_flagger,
        "registered_at": row.registered_at,
        "updated_at": row.updated_at,
    }


def delivery_view(row: Any) -> dict[str, Any]:
    return {
        "delivery_id": row.delivery_id,
        "kind": row.kind,
        "notice_id": row.notice_id,
        "platform_id": row.platform_id,
        "channel": row.channel,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
    }


def escalation_view(recorded: RecordedEvent, checks: list[bool]) -> dict[str, Any]:
    """An escalation record: the authority (personal: erased with the case), when escalation was
    due and done, and the timeline with, per event, whether the log still holds it unchanged."""
    event = recorded.event
    assert isinstance(event, TakedownEscalated)
    authority = None if "authority" in recorded.erased_fields else event.authority
    return {
        "takedown_id": event.takedown_id,
        "notice_id": event.notice_id,
        "authority": authority,
        "due_at": event.due_at,
        "escalated_at": event.escalated_at,
        "escalation_event": {
            "event_id": recorded.envelope.event_id,
            "hash": recorded.envelope.hash,
        },
        "timeline": [
            {**entry.model_dump(mode="json"), "verified": ok}
            for entry, ok in zip(event.timeline, checks, strict=True)
        ],
        "verified": all(checks),
    }
