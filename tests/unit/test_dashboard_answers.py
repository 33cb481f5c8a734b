"""The dashboard's answers: computed once per state of the read models; when the state moves,
one computation runs while every request meanwhile gets the previous answer at once; the first
request for a view waits for it; a view is not computed again sooner than its interval. On real
SQLite, with the projections' checkpoints moved by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ncii_dashboard.app import DashboardApp
from ncii_events.db import make_engine
from sqlalchemy.ext.asyncio import AsyncConnection


class Checkpoint:
    """What the app reads of a projection runner: how far it has applied the log."""

    def __init__(self) -> None:
        self.checkpoint = 0


async def test_one_computation_per_state_and_the_previous_answer_while_it_runs(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    runner = Checkpoint()
    app = DashboardApp(
        engine=engine,
        runners=[runner],  # type: ignore[list-item]
        min_interval=0.0,
        spacing=0.0,
    )
    release, started = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def compute(conn: AsyncConnection, version: str) -> bytes:
        calls.append(version)
        started.set()
        await release.wait()
        value: Any = (await conn.exec_driver_sql("SELECT 1")).scalar()
        return f"{version}:{value}".encode()

    try:
        first = [asyncio.ensure_future(app.answer("v", compute)) for _ in range(5)]
        await asyncio.sleep(0)
        release.set()
        assert await asyncio.gather(*first) == [b"0:1"] * 5
        assert calls == ["0"]
        assert await app.answer("v", compute) == b"0:1"  # unchanged state: from memory
        assert calls == ["0"]

        release.clear()
        started.clear()
        runner.checkpoint = 7  # a projection committed
        assert await app.answer("v", compute) == b"0:1"  # served at once, the new one runs
        await started.wait()
        assert await app.answer("v", compute) == b"0:1"
        assert calls == ["0", "7"]
        release.set()
        running = app._running.get("v")
        assert running is not None
        await running.task
        assert await app.answer("v", compute) == b"7:1"
        assert calls == ["0", "7"]
    finally:
        await engine.dispose()


async def test_a_view_is_not_computed_again_within_its_interval(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    runner = Checkpoint()
    app = DashboardApp(engine=engine, runners=[runner], min_interval=3600.0)  # type: ignore[list-item]
    calls: list[str] = []

    async def compute(conn: AsyncConnection, version: str) -> bytes:
        calls.append(version)
        return version.encode()

    try:
        assert await app.answer("v", compute) == b"0"
        runner.checkpoint = 3
        assert await app.answer("v", compute) == b"0"  # within the hour: the previous answer
        assert calls == ["0"]
        assert await app.answer("other", compute) == b"3"  # each view has its own interval
    finally:
        await engine.dispose()
