"""``ncii.deadlines.overdue`` (decision 49) counts what its read model says is past its legal
deadline and not met, by a closed kind, with 0 for a kind that has none (a gauge that stops
reporting would look like a dashboard's last value for ever): real SQL, SQLite then
PostgreSQL, each service's migrations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ncii_referral
import ncii_takedown
import pytest
from ncii_events.db import make_engine, migrate
from ncii_events.metrics import DEADLINES_OVERDUE, Reading, Sampled
from ncii_referral.app import gauges as referral_gauges
from ncii_referral.read_models.schema import REPORTS
from ncii_takedown.app import gauges as takedown_gauges
from ncii_takedown.read_models.schema import TAKEDOWNS
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

AT = "2026-11-30T05:00:00Z"


async def migrated(url: str, package: Any, name: str) -> AsyncEngine:
    engine = make_engine(url)
    await migrate(engine, Path(package.__file__).parent / "migrations", f"alembic_version_{name}")
    return engine


@pytest.fixture
async def takedown_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated(database_url, ncii_takedown, "takedown")
    yield engine
    await engine.dispose()


@pytest.fixture
async def referral_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated(database_url, ncii_referral, "referral")
    yield engine
    await engine.dispose()


async def read(gauges: Sequence[Sampled]) -> dict[tuple[str | int, ...], float]:
    (gauge,) = gauges
    assert gauge.instrument == DEADLINES_OVERDUE
    readings: Sequence[Reading] = await gauge.read()
    return {tuple(attributes.values()): value for value, attributes in readings}


async def test_overdue_notices_are_counted_by_status_and_a_kind_with_none_reads_zero(
    takedown_db: AsyncEngine,
) -> None:
    app = SimpleNamespace(engine=takedown_db)
    assert await read(takedown_gauges(app)) == {  # type: ignore[arg-type]
        ("takedown_notice", "overdue"): 0,
        ("takedown_notice", "escalated"): 0,
    }
    statuses = ["overdue", "overdue", "escalated", "sent", "removed", "requested"]
    async with takedown_db.begin() as conn:
        await conn.execute(
            insert(TAKEDOWNS),
            [
                {
                    "takedown_id": str(uuid.uuid4()),
                    "case_id": str(uuid.uuid4()),
                    "source": "location",
                    "status": status,
                    "evidence": 1,
                    "opened_at": AT,
                    "updated_at": AT,
                }
                for status in statuses
            ],
        )
    assert await read(takedown_gauges(app)) == {  # type: ignore[arg-type]
        ("takedown_notice", "overdue"): 2,
        ("takedown_notice", "escalated"): 1,
    }


async def test_overdue_art7_reports_are_counted_by_kind_and_filed_or_due_ones_are_not(
    referral_db: AsyncEngine,
) -> None:
    app = SimpleNamespace(engine=referral_db)
    rows = [
        ("victim_minor", "overdue"),
        ("victim_minor", "overdue"),
        ("victim_minor", "due"),
        ("victim_minor", "filed"),
        ("known_suspect", "due"),
    ]
    async with referral_db.begin() as conn:
        await conn.execute(
            insert(REPORTS),
            [
                {
                    "report_id": str(uuid.uuid4()),
                    "case_id": str(uuid.uuid4()),
                    "kind": kind,
                    "status": status,
                    "learned_at": AT,
                    "due_at": AT,
                }
                for kind, status in rows
            ],
        )
    assert await read(referral_gauges(app)) == {  # type: ignore[arg-type]
        ("art7_report", "victim_minor"): 2,
        ("art7_report", "known_suspect"): 0,
    }
