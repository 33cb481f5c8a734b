"""The counts the dashboard's projection keeps (decision 0054), on real SQLite: after random
mixed histories (erasures among them) folded in random batches, ``dash_counts`` equals a
recount of the rows, and the same history in one batch writes the same tables; the medians read
by index equal the medians of every removal; a view reads as many rows at four times the cases
(it reads counts, not cases); the migration fills the counts of rows already there."""

from __future__ import annotations

import asyncio
import random
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import ncii_dashboard
import pytest
from alembic import command
from alembic.config import Config
from ncii_dashboard.read_models import counts, queries
from ncii_dashboard.read_models.projections import CasesProjection, PlatformsProjection
from ncii_dashboard.read_models.schema import CASES, METADATA, PLATFORMS, TAKEDOWNS
from ncii_events.db import make_engine
from ncii_events.store import RecordedEvent
from sqlalchemy import Connection, Engine, create_engine, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.dashboard_history import History, history, recorded, recorded_platforms

MIGRATIONS = Path(ncii_dashboard.__file__).parent / "migrations"


def _fold(engine: Engine, h: History, batches: random.Random | None, start: int = 1) -> None:
    """The history into the tables: in random batches (each its own transaction), or whole."""
    refs, steps = recorded_platforms(h.platforms), recorded(h.cases, start)

    def run(projection: Any, events: list[RecordedEvent]) -> None:
        i = 0
        while i < len(events):
            size = len(events) if batches is None else batches.randint(1, 25)
            with engine.begin() as conn:
                projection.apply_batch(conn, events[i : i + size])
            i += size

    run(PlatformsProjection(), refs)
    run(CasesProjection(), steps)


def _engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        METADATA.create_all(conn)
    return engine


def _dump(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(map(str, r)) for r in conn.execute(t.select()).all())
            for t in METADATA.sorted_tables
        }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_kept_counts_equal_a_recount_of_the_rows_after_a_mixed_history_in_random_batches(
    tmp_path: Path, seed: int
) -> None:
    h = history(seed, "h", cases=60)
    engine = _engine(tmp_path / "random.db")
    _fold(engine, h, random.Random(seed))
    with engine.connect() as conn:
        kept, recounted = counts.stored(conn), counts.recount(conn)
    assert kept == recounted
    erased = sum(type(e).__name__ == "CaseErased" for _, e, _ in h.cases)
    assert erased > 0 and kept[("cases.status", "open", "")] > 0
    # every kind of counter was moved, and none is left at 0
    assert {c.split(".")[0] for c, _, _ in kept} == {
        "cases",
        "open",
        "locations",
        "takedowns",
        "compliance",
        "reports",
        "referrals",
        "matches",
        "period",
    }
    assert all(n > 0 for n in kept.values())

    # a counter's key and sub-key are values the rows hold (or their month): nothing new, and
    # no case's id
    held = {v for rows in _dump(engine).values() for row in rows for v in row}
    months = {v[:7] for v in held}
    for _, key, sub in kept:
        assert key in held or key in months, key
        assert sub in held or sub in ("", "case", "list", "filed_in_time", "filed_late", "other")
    cases = {row[0] for row in _dump(engine)["dash_cases"]}
    assert not any(key in cases for _, key, _ in kept)

    whole = _engine(tmp_path / "whole.db")
    _fold(whole, h, None)
    assert _dump(whole) == _dump(engine)


def test_an_erasure_takes_the_cases_contributions_out_of_every_count(tmp_path: Path) -> None:
    h = history(5, "e", cases=30)
    erased_case = next(c for c, e, _ in h.cases if type(e).__name__ == "CaseErased")
    kept_all = History(h.platforms, [s for s in h.cases if type(s[1]).__name__ != "CaseErased"])
    engine = _engine(tmp_path / "kept.db")
    _fold(engine, kept_all, random.Random(5))
    with engine.connect() as conn:
        before = counts.stored(conn)
    # the same history with only that case's erasure, at the end, in a batch of its own
    erasure = next(
        s for s in h.cases if s[0] == erased_case and type(s[1]).__name__ == "CaseErased"
    )
    with engine.begin() as conn:
        CasesProjection().apply_batch(conn, recorded([erasure], start=100_000))
    with engine.connect() as conn:
        after, recounted = counts.stored(conn), counts.recount(conn)
    assert after == recounted
    assert (
        after[("cases.status", "open", "")]
        + after.get(("cases.status", "closed", ""), 0)
        + after.get(("cases.status", "withdrawn", ""), 0)
        == sum(n for (c, _, _), n in before.items() if c == "cases.status") - 1
    )


async def _read(path: Path, view: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            return await view(conn)
    finally:
        await engine.dispose()


def _medians_of_every_removal(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        where = (TAKEDOWNS.c.status == "removed", TAKEDOWNS.c.hours_to_end.is_not(None))
        rows = conn.execute(select(TAKEDOWNS.c.platform_id, TAKEDOWNS.c.hours_to_end).where(*where))
        registry = select(PLATFORMS.c.platform_id, PLATFORMS.c.jurisdiction)
        jurisdictions = {p: j for p, j in conn.execute(registry).all()}
        by_platform: dict[str, list[float]] = defaultdict(list)
        by_jurisdiction: dict[str, list[float]] = defaultdict(list)
        every: list[float] = []
        for platform_id, hours in rows:
            by_platform[platform_id or ""].append(hours)
            by_jurisdiction[jurisdictions.get(platform_id) or ""].append(hours)
            every.append(hours)

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 2) if values else None

    return {
        "platforms": {k: (median(v), len(v)) for k, v in by_platform.items()},
        "jurisdictions": {k: median(v) for k, v in by_jurisdiction.items()},
        "total": median(every),
    }


def test_medians_read_by_index_equal_the_medians_of_every_removal(tmp_path: Path) -> None:
    h = history(7, "m", cases=150)
    engine = _engine(tmp_path / "m.db")
    _fold(engine, h, random.Random(7))
    expected = _medians_of_every_removal(engine)
    answer = asyncio.run(_read(tmp_path / "m.db", queries.takedowns))
    sizes = set()
    for p in answer["platforms"]:
        median, n = expected["platforms"].get(p["platform_id"] or "", (None, 0))
        assert p["median_hours_to_removal"] == median, p["platform_id"]
        sizes.add(n % 2)
    assert sizes == {0, 1}  # odd and even numbers of removals both met
    for j in answer["by_jurisdiction"]:
        assert j["median_hours_to_removal"] == expected["jurisdictions"].get(
            j["jurisdiction"] or ""
        )
    assert answer["total"]["median_hours_to_removal"] == expected["total"]
    assert expected["total"] is not None
    # the re-registered platform counts in its new jurisdiction
    assert {j["jurisdiction"] for j in answer["by_jurisdiction"]} >= {"TW", "US", "GB", None}


class RowsRead:
    """A connection that counts the rows its statements return."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn, self.rows = conn, 0

    async def execute(self, statement: Any) -> Any:
        frozen = (await self.conn.execute(statement)).freeze()
        self.rows += len(frozen.data)
        return frozen()


async def _rows_read(path: Path) -> dict[str, int]:
    views: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "summary": queries.summary,
        "cases": queries.cases,
        "takedowns": queries.takedowns,
        "compliance": queries.compliance,
        "reports": queries.reports,
        "referrals": queries.referrals,
        "matches": queries.matches,
        "months": lambda c: queries.periods(c, "month"),
        "years": lambda c: queries.periods(c, "year"),
    }
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    out = {}
    try:
        async with engine.connect() as conn:
            for name, view in views.items():
                counting = RowsRead(conn)
                await view(counting)
                out[name] = counting.rows
    finally:
        await engine.dispose()
    return out


def test_a_view_reads_as_many_rows_at_four_times_the_cases(tmp_path: Path) -> None:
    """What keeps a request from waiting on a computation: a view is a read of counts, whose
    number follows the codes, platforms and months there are, not the cases."""
    one = _engine(tmp_path / "one.db")
    _fold(one, history(11, "x0", cases=40), random.Random(1))
    four = _engine(tmp_path / "four.db")
    for copy in range(4):  # the same history under other ids: the same codes and months
        _fold(four, history(11, f"x{copy}", cases=40), random.Random(copy), start=copy * 10_000)
    with one.connect() as conn:
        cases_one = conn.execute(select(CASES)).all()
    with four.connect() as conn:
        cases_four = conn.execute(select(CASES)).all()
    assert len(cases_four) == 4 * len(cases_one) > 0
    small, large = (asyncio.run(_rows_read(tmp_path / f"{n}.db")) for n in ("one", "four"))
    # a median reads one value for an odd number of removals, two for an even one
    answer = asyncio.run(_read(tmp_path / "four.db", queries.takedowns))
    medians = len(answer["platforms"]) + len(answer["by_jurisdiction"]) + 1
    for view in small:
        allowance = medians if view in ("summary", "takedowns") else 0
        assert small[view] <= large[view] <= small[view] + allowance, view


def _upgrade_to(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        cfg.attributes["version_table"] = "alembic_version_dashboard"
        command.upgrade(cfg, revision)


def test_the_migration_fills_the_counts_of_the_rows_already_there(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade_to(engine, "dashboard_0001")
    # rows as the fold of revision 1 wrote them: the same rows, no counts table yet
    _fold_without_counts(engine, history(13, "g", cases=40))
    _upgrade_to(engine, "head")
    with engine.connect() as conn:
        filled, recounted = counts.stored(conn), counts.recount(conn)
    assert filled == recounted and filled


def _fold_without_counts(engine: Engine, h: History) -> None:
    """Rows written as before the counts: the fold with its count step left out."""
    original = counts.Tally.write

    def skip(self: counts.Tally, conn: Connection) -> None:
        return None

    counts.Tally.write = skip  # type: ignore[method-assign]
    try:
        _fold(engine, h, None)
    finally:
        counts.Tally.write = original  # type: ignore[method-assign]
