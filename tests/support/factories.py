from __future__ import annotations

import uuid

from ncii_contracts.base import DomainEvent
from ncii_events.envelope import GENESIS, Actor, Envelope
from ncii_events.store import AggregateRef, Cause, RecordedEvent


def new_case() -> str:
    return str(uuid.uuid4())


def note_ref(case_id: str, note_id: str = "n1") -> AggregateRef:
    return AggregateRef(case_id, "note", note_id)


CAUSE = Cause(
    actor=Actor(organisation="org-test", principal="principal-test", role="caseworker"),
    correlation_id="corr-test",
    causation_id="cause-test",
)


def recorded_case_event(
    seq: int,
    event: DomainEvent,
    *,
    case_id: str = "c1",
    occurred_at: str = "2026-11-24T10:00:00.000000Z",
) -> RecordedEvent:
    """A case event as read back from the log, for tests of code that folds events (no I/O)."""
    env = Envelope.from_dict(
        {
            "event_id": f"e{seq}",
            "type": event.event_type,
            "schema_version": 1,
            "case_id": case_id,
            "aggregate": "case",
            "aggregate_id": case_id,
            "occurred_at": occurred_at,
            "actor": {"organisation": "o", "principal": "p", "role": "partner"},
            "correlation_id": "x",
            "causation_id": "x",
            "traceparent": None,
            "payload": {},
            "prev_hash": GENESIS,
            "hash": f"{seq:064d}",
        }
    )
    return RecordedEvent(seq=seq, envelope=env, event=event)
