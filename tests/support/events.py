"""Events used only by the event-log tests."""

from __future__ import annotations

from typing import Annotated, ClassVar

from ncii_events.registry import EVENTS, PERSONAL, DomainEvent


@EVENTS.register
class NoteAdded(DomainEvent):
    event_type: ClassVar[str] = "TestNoteAdded"
    aggregate: ClassVar[str] = "note"
    text: str
    contact_phone: Annotated[str | None, PERSONAL] = None


@EVENTS.register
class PoisonPill(DomainEvent):
    """A projection in the tests refuses this one, to exercise dead letters."""

    event_type: ClassVar[str] = "TestPoisonPill"
    aggregate: ClassVar[str] = "note"
