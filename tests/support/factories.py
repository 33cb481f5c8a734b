from __future__ import annotations

import uuid

from ncii_events.envelope import Actor
from ncii_events.store import AggregateRef, Cause


def new_case() -> str:
    return str(uuid.uuid4())


def note_ref(case_id: str, note_id: str = "n1") -> AggregateRef:
    return AggregateRef(case_id, "note", note_id)


CAUSE = Cause(
    actor=Actor(organisation="org-test", principal="principal-test", role="caseworker"),
    correlation_id="corr-test",
    causation_id="cause-test",
)
