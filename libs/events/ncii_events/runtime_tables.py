"""Tables every service's database has, beside its own projections: checkpoints and dead
letters."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text, UniqueConstraint

from ncii_events.db import RUNTIME_METADATA


def define_runtime_tables() -> None:
    if "projection_checkpoints" in RUNTIME_METADATA.tables:
        return
    Table(
        "projection_checkpoints",
        RUNTIME_METADATA,
        Column("projection", String(100), primary_key=True),
        Column("last_seq", BigInteger, nullable=False),
        Column("updated_at", String(40), nullable=False),
    )
    Table(
        "dead_letters",
        RUNTIME_METADATA,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("projection", String(100), nullable=False),
        Column("stream_seq", BigInteger, nullable=False),
        Column("event_id", String(64), nullable=True),
        Column("event_type", String(100), nullable=True),
        Column("error_type", String(200), nullable=False),
        Column("error_where", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("status", String(20), nullable=False),  # open | retried
        Column("failed_at", String(40), nullable=False),
        Column("resolved_at", String(40), nullable=True),
        UniqueConstraint("projection", "stream_seq", name="uq_dead_letters_projection_seq"),
    )


define_runtime_tables()
