"""What the event store speaks in: aggregate references, versions, causes, recorded events and
its errors (plain dataclasses, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ncii_events.envelope import GENESIS, Actor, Envelope

if TYPE_CHECKING:
    from ncii_contracts.base import DomainEvent


class ConcurrencyError(Exception):
    """Another writer appended to the aggregate since it was read: reload and retry, or 409."""

    def __init__(self, ref: AggregateRef, expected: int, actual: int | None) -> None:
        super().__init__(f"{ref.aggregate} changed since version {expected} (now {actual})")
        self.ref = ref
        self.expected = expected
        self.actual = actual


class UndecodableEventError(Exception):
    """A stored event this program cannot read: a version newer than its code, a payload its
    contract refuses, a field that does not decrypt. Names the event, never its content."""

    def __init__(
        self, seq: int, event_id: str | None, event_type: str | None, cause: Exception
    ) -> None:
        super().__init__(f"the event at {seq} cannot be read here ({type(cause).__name__})")
        self.seq = seq
        self.event_id = event_id
        self.event_type = event_type
        self.cause = cause


class AppendError(RuntimeError):
    pass


TOKEN = re.compile(r"[^.*>\s]+")
"""One subject token: no dot, no wildcard, no white space."""


@dataclass(frozen=True)
class AggregateRef:
    case_id: str
    aggregate: str
    aggregate_id: str

    def __post_init__(self) -> None:
        # Each is one token of the subject: a dot or a wildcard would reach other aggregates.
        for value in (self.case_id, self.aggregate, self.aggregate_id):
            if not TOKEN.fullmatch(value):
                raise ValueError("case, aggregate and aggregate ids are single subject tokens")


@dataclass(frozen=True)
class Version:
    """Where an aggregate stands: the stream sequence and hash of its last event."""

    seq: int = 0
    hash: str = GENESIS
    count: int = 0

    @classmethod
    def of(cls, events: Sequence[RecordedEvent]) -> Version:
        if not events:
            return NEW
        return cls(events[-1].seq, events[-1].envelope.hash, len(events))


NEW = Version()


@dataclass(frozen=True)
class Cause:
    """What a command or reaction carries into the events it produces."""

    actor: Actor
    correlation_id: str
    causation_id: str


NO_FIELDS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    seq: int
    envelope: Envelope
    event: DomainEvent | None
    """The payload, upcast to the current version; ``None`` when the type is unknown here."""
    erased_fields: frozenset[str] = NO_FIELDS
    """Personal fields whose case key was destroyed: they read as ``None`` for ever."""
    withheld_fields: frozenset[str] = NO_FIELDS
    """Personal fields left encrypted because the reader did not ask to decrypt."""

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def case_id(self) -> str:
        return self.envelope.case_id
