"""The dashboard's read models against real NATS and real SQL (SQLite, then PostgreSQL): the
projections follow the log from their own checkpoints; after a case is erased (the event, then
its key) nothing of it is left but a count, and dropping the tables and replaying the whole log
(``ncii projections rebuild``'s path) gives exactly the live tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import ncii_dashboard
import pytest
from nats.aio.client import Client as NATS
from ncii_dashboard.read_models.projections import CasesProjection, PlatformsProjection
from ncii_dashboard.read_models.schema import CASES, METADATA, TAKEDOWNS
from ncii_events.db import make_engine, migrate
from ncii_events.keys import NatsCaseKeys
from ncii_events.projection import ProjectionRunner, reset
from ncii_events.signing import SigningKey
from ncii_events.store import EventStore
from ncii_events.stream import REFERENCE
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.dashboard_events import SECRET, append_scenario, case_ids
from tests.support.events import REGISTRY

MIGRATIONS = Path(ncii_dashboard.__file__).parent / "migrations"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = make_engine(database_url)
    await migrate(made, MIGRATIONS, "alembic_version_dashboard")
    yield made
    await made.dispose()


async def _run(
    nc: NATS | None,
    engine: AsyncEngine,
    stores: dict[str, EventStore],
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Both projections, running while ``meanwhile`` writes to the log, until they have
    applied the whole log; then stopped."""
    runners = [
        ProjectionRunner(nc, engine, stores["cases"], CasesProjection()),
        ProjectionRunner(nc, engine, stores["ref"], PlatformsProjection()),
    ]
    for runner in runners:
        await runner.start()
    try:
        if meanwhile is not None:
            await meanwhile()
        for runner in runners:
            await runner.wait_caught_up(60)
    finally:
        for runner in runners:
            await runner.stop()


async def _dump(engine: AsyncEngine) -> dict[str, list[tuple[str, ...]]]:
    def read(conn: Connection) -> dict[str, list[tuple[str, ...]]]:
        return {
            t.name: sorted(tuple(map(str, r)) for r in conn.execute(t.select()).all())
            for t in METADATA.sorted_tables
        }

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def test_a_rebuild_after_an_erasure_equals_the_live_tables_and_keeps_nothing_of_the_case(
    engine: AsyncEngine,
    nc: NATS,
    store: EventStore,
    case_keys: NatsCaseKeys,
    test_signing: SigningKey,
) -> None:
    ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=test_signing)
    stores = {"cases": store, "ref": ref_store}
    prefix = uuid.uuid4().hex[:8]
    ids = case_ids(prefix)

    async def write() -> None:
        await append_scenario(store, ref_store, prefix)
        assert await case_keys.erase(ids["c"]) is True  # as intake does: the event, the key

    await _run(nc, engine, stores, meanwhile=write)  # live: applied as they are appended
    live = await _dump(engine)
    async with engine.connect() as conn:
        held = {r[0]: r[1] for r in (await conn.execute(select(CASES.c.case_id, CASES.c.status)))}
        takedowns = (await conn.execute(select(TAKEDOWNS.c.takedown_id, TAKEDOWNS.c.status))).all()
    assert held[ids["a"]] == "open"
    assert held[ids["b"]] == "closed"
    assert held[ids["d"]] == "withdrawn"
    assert {t: s for t, s in takedowns if t.startswith(prefix)} == {
        f"{prefix}-ta1": "removed",
        f"{prefix}-ta2": "sent",
        f"{prefix}-tb1": "refused",
    }
    for name, rows in live.items():
        flat: list[Any] = [value for row in rows for value in row]
        assert not any(ids["c"] in v or f"{prefix}-tc1" in v for v in flat), name
        assert not any(SECRET in v for v in flat), name

    await reset(engine, [CasesProjection(), PlatformsProjection()])
    assert all(rows == [] for rows in (await _dump(engine)).values())
    await _run(None, engine, stores)
    assert await _dump(engine) == live
