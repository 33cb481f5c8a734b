"""Dead letters: events a projection gave up on, named by where they are in the log, the
error's type and where it was raised; never values, which may be personal."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_events.db import RUNTIME_METADATA, migrate_runtime, write_transaction
from ncii_events.envelope import utc_now
from ncii_events.projection.base import Projection
from ncii_events.runtime_tables import define_runtime_tables
from ncii_events.store import EventStore, RecordedEvent, UndecodableEventError

define_runtime_tables()
DEAD_LETTERS = RUNTIME_METADATA.tables["dead_letters"]


@dataclass(frozen=True)
class DeadLetter:
    id: int
    projection: str
    stream_seq: int
    event_id: str | None
    event_type: str | None
    error_type: str
    error_where: str
    attempts: int
    status: str
    failed_at: str
    resolved_at: str | None


def where(exc: BaseException) -> str:
    """Where it failed, as file:line in function; never values, which may be personal."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    return " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames)


def record(
    conn: Connection,
    projection: str,
    event: RecordedEvent | UndecodableEventError,
    exc: BaseException,
    attempts: int,
) -> None:
    """One dead letter per projection and log position (a second failure of it is not new)."""
    seq = event.seq
    event_id: str | None
    event_type: str | None
    if isinstance(event, RecordedEvent):
        event_id, event_type = event.envelope.event_id, event.type
    else:
        event_id, event_type = event.event_id, event.event_type
    exists = conn.execute(
        select(DEAD_LETTERS.c.id).where(
            DEAD_LETTERS.c.projection == projection, DEAD_LETTERS.c.stream_seq == seq
        )
    ).first()
    if exists is not None:
        return
    conn.execute(
        insert(DEAD_LETTERS).values(
            projection=projection,
            stream_seq=seq,
            event_id=event_id,
            event_type=event_type,
            error_type=type(exc).__name__,
            error_where=where(exc),
            attempts=attempts,
            status="open",
            failed_at=utc_now(),
        )
    )


async def list_dead_letters(
    engine: AsyncEngine, *, include_resolved: bool = False
) -> list[DeadLetter]:
    await migrate_runtime(engine)
    query = select(DEAD_LETTERS).order_by(DEAD_LETTERS.c.id)
    if not include_resolved:
        query = query.where(DEAD_LETTERS.c.status == "open")
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [DeadLetter(**dict(r)) for r in rows]


async def retry_dead_letter(
    engine: AsyncEngine, store: EventStore, projection: Projection, dead_letter_id: int
) -> bool:
    """Apply a dead-lettered event again (after a fix). True when it now applies."""
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(DEAD_LETTERS).where(DEAD_LETTERS.c.id == dead_letter_id)))
            .mappings()
            .first()
        )
    if row is None or row["projection"] != projection.name or row["status"] != "open":
        return False
    try:
        event = await store.get(int(row["stream_seq"]), decrypt=projection.decrypt)
    except UndecodableEventError:
        return False  # still unreadable here: deploy the code that reads it, then retry
    if event is None:
        return False

    def apply(conn: Connection) -> None:
        projection.apply(conn, event)
        conn.execute(
            update(DEAD_LETTERS)
            .where(DEAD_LETTERS.c.id == dead_letter_id)
            .values(status="retried", resolved_at=utc_now())
        )

    async with write_transaction(engine) as conn:
        await conn.run_sync(apply)
    return True
