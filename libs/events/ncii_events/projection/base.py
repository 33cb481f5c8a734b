"""What a projection is: a read model fed by one stream's events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy import Connection, MetaData

from ncii_events.store import RecordedEvent
from ncii_events.stream import CASES, StreamSpec


class Projection:
    """A read model. Subclasses set ``name`` and ``metadata`` and implement ``apply``.

    ``apply`` is synchronous and runs inside the batch's transaction on a plain SQLAlchemy
    connection: no I/O other than that connection, so a batch is one round trip to the thread
    that talks to the database.
    """

    name: ClassVar[str]
    metadata: ClassVar[MetaData]
    stream: ClassVar[StreamSpec] = CASES
    subjects: ClassVar[Sequence[str]] = ("ncii.>",)
    decrypt: ClassVar[bool] = False
    """Read models hold no personal data by default: it stays encrypted in the log."""

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        raise NotImplementedError

    def apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        """Apply several events, in order, in one transaction (by default one ``apply`` each).

        Override to write a batch at once (for instance one ``conn.execute(insert(t), rows)``,
        an ``executemany``): a statement per event costs far more than the rest of the runner.
        A failing batch is retried one event at a time, each through this method.
        """
        for event in events:
            self.apply(conn, event)

    def reset(self, conn: Connection) -> None:
        """Drop and recreate this projection's tables (rebuild)."""
        self.metadata.drop_all(conn)
        self.metadata.create_all(conn)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or part not in ("*", have[i]):
            return False
    return len(want) == len(have)
