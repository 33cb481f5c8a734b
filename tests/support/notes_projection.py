"""A small read model used by the projection tests: one row per applied event.

It has no unique constraint on purpose: applying an event twice would show as two rows.
"""

from __future__ import annotations

import time
from typing import ClassVar

from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, insert

from tests.support.events import NoteAdded, PoisonPill

METADATA = MetaData()
NOTES = Table(
    "test_notes",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("text", String(200), nullable=False),
)


class NotesProjection(Projection):
    name: ClassVar[str] = "notes"
    metadata: ClassVar[MetaData] = METADATA
    delay_per_event: ClassVar[float] = 0.0
    accept_poison: ClassVar[bool] = False

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        if isinstance(event.event, PoisonPill) and not self.accept_poison:
            raise ValueError("this projection cannot read the poison pill")
        if isinstance(event.event, NoteAdded | PoisonPill):
            if self.delay_per_event:
                time.sleep(self.delay_per_event)
            text = event.event.text if isinstance(event.event, NoteAdded) else "poison"
            conn.execute(
                insert(NOTES).values(seq=event.seq, event_id=event.envelope.event_id, text=text)
            )


def projection_for(case_id: str, **overrides: object) -> NotesProjection:
    """A projection class of its own per test: its own checkpoint and subject filter."""
    attrs = {"name": f"notes_{case_id.replace('-', '')[:12]}", "subjects": (f"ncii.{case_id}.>",)}
    cls = type("CaseNotesProjection", (NotesProjection,), {**attrs, **overrides})
    return cls()
