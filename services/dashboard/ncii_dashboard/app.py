"""The dashboard's application state: its engine and a cache of computed answers.

Every view is a function of the dashboard's tables, which change only when a projection commits.
So an answer is computed once per state of the tables (the projections' checkpoints, read from
the runners in memory: ``version``) and served from memory, already encoded, until a checkpoint
moves. Then the next request starts one computation in the background and, while it runs, is
answered with the previous answer at once (each answer names the ``version`` it reflects):
staff never wait for a computation once a view has been computed, and at most one computation
per view runs at a time however many requests arrive. Only the first request for a view waits.
A view is computed again at most every ``min_interval`` seconds, and never sooner than four
times its last computation's duration after it: while events keep arriving, computations take
at most a quarter of the process's time and requests the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ncii_events.projection import ProjectionRunner
from ncii_events.service import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("ncii.dashboard")

Compute = Callable[[AsyncConnection, str], Awaitable[bytes]]
"""Reads the tables and returns the encoded answer, given the version it reflects."""


@dataclass
class _Computation:
    version: tuple[int, ...]
    task: asyncio.Task[bytes]
    started: float


@dataclass
class DashboardApp:
    engine: AsyncEngine
    runners: Sequence[ProjectionRunner] = ()
    min_interval: float = 1.0
    spacing: float = 4.0
    """A view is computed again no sooner than ``spacing`` times its last computation's
    duration after it ended (and ``min_interval``)."""
    _answers: dict[str, tuple[tuple[int, ...], bytes]] = field(default_factory=dict)
    _running: dict[str, _Computation] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict)
    """When each view may be computed again (monotonic seconds)."""

    def version(self) -> tuple[int, ...]:
        """The state of the tables: every dashboard projection's checkpoint."""
        return tuple(r.checkpoint for r in self.runners)

    @staticmethod
    def tag(version: tuple[int, ...]) -> str:
        return "-".join(str(v) for v in version)

    async def answer(self, name: str, compute: Compute) -> bytes:
        """The answer ``name`` for the tables as they are, or, while that one is being
        computed, the last one computed."""
        version = self.version()
        cached = self._answers.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        running = self._running.get(name)
        if cached is not None:
            if running is None and time.monotonic() >= self._next.get(name, 0.0):
                self._start(name, version, compute)
            return cached[1]
        if running is None:
            running = self._start(name, version, compute)
        return await asyncio.shield(running.task)

    def _start(self, name: str, version: tuple[int, ...], compute: Compute) -> _Computation:
        async def run() -> bytes:
            async with self.engine.connect() as conn:
                return await compute(conn, self.tag(version))

        task = asyncio.ensure_future(run())
        running = self._running[name] = _Computation(version, task, time.monotonic())

        def done(finished: asyncio.Task[bytes]) -> None:
            if self._running.get(name) is running:
                del self._running[name]
            now = time.monotonic()
            self._next[name] = now + max(self.min_interval, self.spacing * (now - running.started))
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:
                log.warning("the %s view could not be computed: %s", name, type(error).__name__)
                return
            current = self._answers.get(name)
            if current is None or current[0] <= version:
                self._answers[name] = (version, finished.result())

        task.add_done_callback(done)
        return running


async def build(runtime: ServiceRuntime[DashboardApp]) -> DashboardApp:
    own = {p.name for p in runtime.spec.projections}
    return DashboardApp(
        engine=runtime.engine, runners=[r for r in runtime.runners if r.name in own]
    )
