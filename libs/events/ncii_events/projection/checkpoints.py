"""The checkpoint: the last log position a projection has applied, its only position.

Every write that advances it starts with a compare-and-set on its row, so of several replicas
running one projection exactly one wins each batch."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from ncii_events.db import RUNTIME_METADATA
from ncii_events.envelope import utc_now
from ncii_events.runtime_tables import define_runtime_tables

define_runtime_tables()
CHECKPOINTS = RUNTIME_METADATA.tables["projection_checkpoints"]


def _stored(conn: Connection, name: str) -> int | None:
    row = conn.execute(select(CHECKPOINTS.c.last_seq).where(CHECKPOINTS.c.projection == name))
    value = row.scalar_one_or_none()
    return int(value) if value is not None else None


def read(conn: Connection, name: str) -> int:
    return _stored(conn, name) or 0


def ensure(conn: Connection, name: str) -> int:
    """The checkpoint, after creating its row at 0 when there is none (a replica creating it
    at the same moment makes this raise ``IntegrityError``: try again)."""
    stored = _stored(conn, name)
    if stored is not None:
        return stored
    conn.execute(insert(CHECKPOINTS).values(projection=name, last_seq=0, updated_at=utc_now()))
    return 0


def advance(conn: Connection, name: str, expected: int, to: int) -> bool:
    """Move the checkpoint from ``expected`` to ``to``; False when it is no longer at
    ``expected`` (another replica applied this batch: the caller rolls back)."""
    result = conn.execute(
        update(CHECKPOINTS)
        .where(CHECKPOINTS.c.projection == name, CHECKPOINTS.c.last_seq == expected)
        .values(last_seq=to, updated_at=utc_now())
    )
    return result.rowcount == 1


def reset(conn: Connection, name: str) -> None:
    conn.execute(
        update(CHECKPOINTS)
        .where(CHECKPOINTS.c.projection == name)
        .values(last_seq=0, updated_at=utc_now())
    )
    ensure(conn, name)
