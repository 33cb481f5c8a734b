"""The dashboard's fold and views on real SQLite, without the log: a known history gives known
counts; an erased case leaves no row and no id, only a count; events of an erased case arriving
later write nothing; nothing personal reaches a table; batch and one-by-one folds agree."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ncii_dashboard.read_models import queries
from ncii_dashboard.read_models.projections import (
    CasesProjection,
    PlatformsProjection,
    hours_between,
    not_after,
)
from ncii_dashboard.read_models.schema import METADATA
from ncii_events.db import make_engine
from ncii_events.store import RecordedEvent
from sqlalchemy import Engine, create_engine

from tests.support.dashboard_events import SECRET, case_ids, platforms, scenario
from tests.support.factories import recorded_case_event


def _recorded(prefix: str) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    refs = [recorded_case_event(i, p, case_id="_") for i, p in enumerate(platforms(prefix), 1)]
    steps = [
        recorded_case_event(i, s.event, case_id=s.case_id, occurred_at=s.occurred_at)
        for i, s in enumerate(scenario(prefix), start=10)
    ]
    return refs, steps


def _fold(path: Path, batch: bool) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    refs, steps = _recorded("u")
    with engine.begin() as conn:
        METADATA.create_all(conn)
        if batch:
            PlatformsProjection().apply_batch(conn, refs)
            CasesProjection().apply_batch(conn, steps)
    if not batch:
        for event in refs:
            with engine.begin() as conn:
                PlatformsProjection().apply(conn, event)
        for event in steps:
            with engine.begin() as conn:
                CasesProjection().apply(conn, event)
    return engine


def _dump(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(tuple(map(str, r)) for r in conn.execute(t.select()).all())
            for t in METADATA.sorted_tables
        }


def _summary(path: Path) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        try:
            async with engine.connect() as conn:
                return {
                    **await queries.summary(conn),
                    "months": await queries.periods(conn, "month"),
                    "years": await queries.periods(conn, "year"),
                }
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture(scope="module")
def folded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Engine, dict[str, Any]]:
    path = tmp_path_factory.mktemp("dash") / "d.db"
    engine = _fold(path, batch=True)
    return engine, _summary(path)


def test_cases_are_counted_by_status_and_the_open_ones_by_each_dimension(folded: Any) -> None:
    cases = folded[1]["cases"]
    assert cases["total"] == 3
    assert cases["by_status"] == {"open": 1, "closed": 1, "withdrawn": 1}
    assert cases["erased"] == 1
    assert cases["open"]["by_age_group"] == {"adult": 1}
    assert cases["open"]["by_category"] == {"distribution_without_consent_319_3": 1}
    assert cases["open"]["by_organisation"] == {"ngo-a": 1}
    assert cases["open"]["by_intake_channel"] == {"phone": 1}
    assert cases["locations_by_channel_kind"] == {"social_platform": 1}


def test_takedowns_per_platform_give_the_removal_rate_median_overdue_and_refusals(
    folded: Any,
) -> None:
    tk = folded[1]["takedowns"]
    by_name = {p["name"]: p for p in tk["platforms"]}
    p1, p2 = by_name["FaceSpace u"], by_name["VidHub u"]
    # the erased case's takedown is gone: two of FaceSpace's three remain
    assert (p1["takedowns"], p1["notices_sent"], p1["removed"], p1["refused"]) == (2, 2, 1, 1)
    assert p1["removal_rate"] == 0.5
    assert p1["median_hours_to_removal"] == 10.0
    assert p1["refusals_by_reason"] == {"not_sexual_content": 1}
    assert (p2["takedowns"], p2["removed"], p2["overdue_open"], p2["removal_rate"]) == (
        1,
        0,
        1,
        0.0,
    )
    assert {j["jurisdiction"]: j["notices_sent"] for j in tk["by_jurisdiction"]} == {
        "TW": 2,
        "US": 1,
    }
    assert tk["total"]["removal_rate"] == round(1 / 3, 4)
    assert tk["reference_removal_rate"] == {"low": 0.87, "high": 0.90}


def test_compliance_scorecards_judge_answers_against_each_legal_clock(folded: Any) -> None:
    cards = {(c["name"], c["regime"]): c for c in folded[1]["compliance"]["scorecards"]}
    tw = cards[("FaceSpace u", "tw")]
    assert (tw["notices"], tw["answered_in_time"], tw["answered_late"]) == (2, 1, 1)
    assert tw["compliance_rate"] == 0.5
    us = cards[("VidHub u", "us_take_it_down")]
    assert (us["overdue_open"], us["compliance_rate"]) == (1, 0.0)


def test_reports_referrals_and_matches_are_counted(folded: Any) -> None:
    summary = folded[1]
    assert summary["reports"]["by_kind"] == {
        "victim_minor": {"due": 0, "overdue": 1, "filed_in_time": 1, "filed_late": 0}
    }
    assert summary["referrals"]["by_status"] == {"completed": 1}
    assert summary["referrals"]["by_service"] == {"counselling": {"completed": 1}}
    assert summary["matches"]["matches"] == 1
    assert summary["matches"]["sightings"] == 5


def test_periods_count_each_fact_in_the_month_and_year_it_happened(folded: Any) -> None:
    months = {r["period"]: r for r in folded[1]["months"]}
    assert months["2026-10"]["cases_opened"] == 1
    assert months["2026-11"]["cases_opened"] == 2
    assert months["2026-11"]["minors_opened"] == 2
    assert months["2026-11"]["content_removed"] == 1
    assert months["2026-11"]["cases_erased"] == 1
    assert months["2026-11"]["sightings"] == 5
    (year,) = folded[1]["years"]
    assert (year["period"], year["cases_opened"], year["notices_sent"]) == ("2026", 3, 3)


def test_an_erased_case_leaves_neither_its_id_nor_its_rows(folded: Any) -> None:
    erased = case_ids("u")["c"]
    for name, rows in _dump(folded[0]).items():
        assert not any(erased in value for row in rows for value in row), name


def test_no_personal_value_reaches_any_table(folded: Any) -> None:
    for name, rows in _dump(folded[0]).items():
        assert not any(SECRET in value for row in rows for value in row), name


def test_one_event_at_a_time_writes_the_same_rows_as_a_batch(folded: Any, tmp_path: Path) -> None:
    assert _dump(_fold(tmp_path / "one.db", batch=False)) == _dump(folded[0])


def test_a_takedown_answered_after_its_deadline_is_not_in_time() -> None:
    assert not_after("2026-11-04T00:00:00Z", "2026-11-04T00:00:00.000000Z") is True
    assert not_after("2026-11-04T00:00:00.000001Z", "2026-11-04T00:00:00Z") is False
    assert not_after("2026-11-04T00:00:00Z", None) is None
    assert hours_between("2026-11-01T00:00:00Z", "2026-11-01T10:30:00Z") == 10.5
    assert hours_between(None, "2026-11-01T10:30:00Z") is None


def test_the_tables_hold_no_column_for_free_text() -> None:
    """A guard for later changes: every column is an id, a code, a time, a count or a flag."""
    allowed = {"name", "organisation", "partner_organisation", "platform", "api_organisation"}
    # dash_counts.key: a code, an id, a month or one of the names above (pinned by
    # test_dashboard_counts: every key is a value some row already holds)
    allowed.add("key")
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        METADATA.create_all(conn)
        for table in METADATA.sorted_tables:
            for column in table.columns:
                length = getattr(column.type, "length", None) or 0
                assert length <= 64 or column.name in allowed, f"{table.name}.{column.name}"
