"""The dashboard's application state: its engine and a cache of computed views.

Every view is a function of the dashboard's tables, which change only when a projection commits.
So a view is computed once per state of the tables (the projections' checkpoints, read from the
runners in memory) and served from memory until a checkpoint moves; concurrent requests for a
view being computed wait for that one computation. Staff see a state at most one commit old.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ncii_events.projection import ProjectionRunner
from ncii_events.service import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

View = Callable[[AsyncConnection], Awaitable[Any]]


@dataclass
class DashboardApp:
    engine: AsyncEngine
    runners: Sequence[ProjectionRunner] = ()
    _cache: dict[str, tuple[tuple[int, ...], Any]] = field(default_factory=dict)
    _computing: dict[str, tuple[tuple[int, ...], asyncio.Task[Any]]] = field(default_factory=dict)

    def version(self) -> tuple[int, ...]:
        """The state of the tables: every dashboard projection's checkpoint."""
        return tuple(r.checkpoint for r in self.runners)

    def version_tag(self) -> str:
        return "-".join(str(v) for v in self.version())

    async def view(self, name: str, compute: View) -> Any:
        """``compute``'s answer for the tables as they are now (from memory when unchanged)."""
        version = self.version()
        cached = self._cache.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        running = self._computing.get(name)
        if running is None or running[0] != version:
            task = asyncio.ensure_future(self._compute(compute))
            running = self._computing[name] = (version, task)
        value = await asyncio.shield(running[1])
        # Only an answer at least as new as the one cached replaces it.
        current = self._cache.get(name)
        if current is None or current[0] <= version:
            self._cache[name] = (version, value)
        if self._computing.get(name) is running:
            del self._computing[name]
        return value

    async def _compute(self, compute: View) -> Any:
        async with self.engine.connect() as conn:
            return await compute(conn)


async def build(runtime: ServiceRuntime[DashboardApp]) -> DashboardApp:
    own = {p.name for p in runtime.spec.projections}
    return DashboardApp(
        engine=runtime.engine, runners=[r for r in runtime.runners if r.name in own]
    )
