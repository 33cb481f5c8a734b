"""Sightings folded per window (security review F3, decision 24).

The first sighting of an entry by a platform in a window of the server's clock is recorded as
the window's ``MatchFound`` (its event id is derived from the match and the window, so racing
first sightings and replicas write one). Every sighting, that first one included, then adds to
the window's tally in ``hm_sighting_windows``; once the window has closed, ``SightingCounter``
appends the tally as one ``SightingsCounted`` (when there was more than the first sighting) and
forgets the row. A flood of sightings thus adds two events to a case per window, and touches
the log only until the window's MatchFound is there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from ncii_events import codec, tracing
from ncii_events.crypto import CaseErasedError
from ncii_events.db import write_transaction
from ncii_events.ids import derived_uuid
from ncii_events.store import AggregateRef, Cause, EventStore, append_once
from ncii_events.stream import REFERENCE_CASE
from ncii_events.worker import LoopWorker
from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_hashmatch import domain
from ncii_hashmatch.outbox import SERVICE_ACTOR
from ncii_hashmatch.read_models.schema import SIGHTING_WINDOWS as W

IDS = uuid.UUID("f4f86c61-45fe-47a4-9759-5673aec9c82a")


def match_found_id(match_uuid: str, window: domain.SightingWindow) -> str:
    """The id of a window's MatchFound: one per match and window, whoever writes it."""
    return str(derived_uuid(IDS, match_uuid, "found", str(window.start)))


def counted_id(match_uuid: str, window_start: int) -> str:
    return str(derived_uuid(IDS, match_uuid, "counted", str(window_start)))


async def tally(
    engine: AsyncEngine, match_uuid: str, window: domain.SightingWindow
) -> domain.SightingTally | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(W.c.sightings, W.c.first_seen_at, W.c.last_seen_at).where(
                    W.c.match_uuid == match_uuid, W.c.window_start == window.start
                )
            )
        ).first()
    if row is None:
        return None
    return domain.SightingTally(int(row.sightings), str(row.first_seen_at), str(row.last_seen_at))


async def count(
    engine: AsyncEngine,
    *,
    match_uuid: str,
    window: domain.SightingWindow,
    stream: str,
    case_id: str,
    match_id: str,
    entry_key: str,
    platform: str,
    seen_at: str,
) -> None:
    """Add one sighting to the window's tally (one statement: concurrent sightings, on any
    replica sharing the database, each count once)."""
    values: dict[str, Any] = {
        "match_uuid": match_uuid,
        "window_start": window.start,
        "window_end": window.end,
        "stream": stream,
        "case_id": case_id,
        "match_id": match_id,
        "entry_key": entry_key,
        "platform": platform,
        "sightings": 1,
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
        # the first sighting's request (it appended the window's MatchFound): the count's
        # span links it (decision 55); a later sighting keeps the first one's
        "traceparent": codec.traceparent(),
    }
    async with write_transaction(engine) as conn:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(W).values(values)
        new = stmt.excluded
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[W.c.match_uuid, W.c.window_start],
                set_={
                    "sightings": W.c.sightings + 1,
                    # RFC 3339 UTC text of one format: the order of the text is the time's
                    "first_seen_at": case(
                        (new.first_seen_at < W.c.first_seen_at, new.first_seen_at),
                        else_=W.c.first_seen_at,
                    ),
                    "last_seen_at": case(
                        (new.last_seen_at > W.c.last_seen_at, new.last_seen_at),
                        else_=W.c.last_seen_at,
                    ),
                },
            )
        )


class SightingCounter(LoopWorker):
    """Appends each closed window's SightingsCounted, then forgets the window. Safe with several
    replicas: the event id is the window's, so each count is written once."""

    name = "sighting_counter"
    interval = 5.0

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        ref_store: EventStore,
        *,
        clock: Callable[[], float] = time.time,
        grace: int = domain.SIGHTING_GRACE_SECONDS,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.stores = {"c": store, "r": ref_store}
        self.clock = clock
        self.grace = grace
        self.counted = 0

    def _due(self) -> Any:
        return W.c.window_end <= int(self.clock()) - self.grace

    async def step(self, limit: int = 100) -> int:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(W).where(self._due()).order_by(W.c.window_end).limit(limit)
                )
            ).all()
        for row in rows:
            if self._stopping.is_set():
                break
            window = domain.SightingWindow(int(row.window_start), int(row.window_end))
            tallied = domain.SightingTally(
                int(row.sightings), str(row.first_seen_at), str(row.last_seen_at)
            )
            event = domain.sightings_counted(
                match_id=row.match_id,
                entry_key=row.entry_key,
                platform=row.platform,
                window=window,
                tally=tallied,
            )
            if event is not None:
                event_id = counted_id(row.match_uuid, window.start)
                case_id = row.case_id if row.stream == "c" else REFERENCE_CASE
                ref = AggregateRef(case_id, "match", row.match_uuid)
                # the clock's work: a trace of its own, linked to the window's first sighting
                with tracing.work_span(
                    "ncii.sweep sighting_counter",
                    attributes={"ncii.handler": self.name, "ncii.case_id": case_id},
                ) as span:
                    tracing.link(span, row.traceparent)
                    try:
                        await append_once(
                            self.stores[row.stream],
                            ref,
                            event,
                            event_id,
                            Cause(SERVICE_ACTOR, event_id, match_found_id(row.match_uuid, window)),
                        )
                        self.counted += 1
                    except CaseErasedError:
                        pass  # the case was erased: it takes no new facts, its count goes too
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    delete(W).where(
                        and_(W.c.match_uuid == row.match_uuid, W.c.window_start == window.start)
                    )
                )
        return len(rows)

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).select_from(W).where(self._due())
            return int((await conn.execute(query)).scalar_one())
