"""Events used only by the event-log tests."""

from __future__ import annotations

from typing import Annotated

from ncii_contracts import ALL_EVENTS
from ncii_contracts.base import PERSONAL, DomainEvent
from ncii_events.registry import EventRegistry


class NoteAdded(DomainEvent, aggregate="note", event_type="TestNoteAdded"):
    text: str
    contact_phone: Annotated[str | None, PERSONAL] = None


class PoisonPill(DomainEvent, aggregate="note", event_type="TestPoisonPill"):
    """A projection in the tests refuses this one, to exercise dead letters."""


REGISTRY = EventRegistry(*ALL_EVENTS, NoteAdded, PoisonPill)
"""What the tests read: every contract, and the events above."""
