"""The deadline sweeper: marks a notice overdue (``TakedownOverdue``) once its deadline passes
on the injected clock, from the read model, so a service that was down catches up as soon as
it starts. Runs at least every ``sweep_interval_s`` (30 s by default: within a minute)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ncii_events import tracing
from ncii_events.store import Cause, append_once
from ncii_events.worker import LoopWorker

from ncii_takedown import domain
from ncii_takedown.outbox import SERVICE_ACTOR, derived_id, takedown_ref
from ncii_takedown.read_models import queries

if TYPE_CHECKING:
    from ncii_takedown.app import TakedownApp


ROUND = 500
"""Notices marked overdue per round at most."""


class DeadlineSweeper(LoopWorker):
    name = "deadlines"

    def __init__(self, app: TakedownApp) -> None:
        super().__init__()
        self.app = app
        self.interval = app.settings.sweep_interval_s
        self._marked: set[str] = set()
        """Notices marked overdue by this process whose event the projection has not applied
        yet (so a round does not count them again)."""

    async def _due(self) -> list[tuple[str, str, str]]:
        now_text = domain.format_time(self.app.clock.now())
        # past the ones marked here whose event the projection has not applied yet: a round
        # that came back with only those would end the sweep early (decision 0053)
        rows = await queries.due_notices(self.app.engine, now_text, ROUND + len(self._marked))
        # a notice no longer due was applied: forgotten, so the set holds only the lag
        self._marked &= {r.notice_id for r in rows}
        due = [
            (r.case_id, r.takedown_id, r.notice_id) for r in rows if r.notice_id not in self._marked
        ]
        return due[:ROUND]

    async def pending(self) -> int:
        return len(await self._due())

    async def step(self) -> int:
        # Notices are independent: each is one read and one signed append, mostly waiting on
        # the log, so a round marks them concurrently (as the deliverer sends).
        gate = asyncio.Semaphore(self.app.settings.delivery_concurrency)
        done = 0

        async def one(case_id: str, takedown_id: str, notice_id: str) -> None:
            nonlocal done
            async with gate:
                if self._stopping.is_set():
                    return
                # the clock's work: a trace of its own, linked to the takedown's newest event
                with tracing.work_span(
                    "ncii.sweep deadlines",
                    attributes={"ncii.handler": self.name, "ncii.case_id": case_id},
                ) as span:
                    loaded = await self.app.load(case_id, takedown_id)
                    tracing.link(span, loaded.traceparent)
                    events = loaded.takedown.mark_overdue(self.app.clock.now())
                    if events:
                        cause = Cause(SERVICE_ACTOR, notice_id, notice_id)
                        await append_once(
                            self.app.store,
                            takedown_ref(case_id, takedown_id),
                            events[0],
                            derived_id(notice_id, "overdue"),
                            cause,
                        )
                self._marked.add(notice_id)
                done += 1

        await asyncio.gather(*(one(*due) for due in await self._due()))
        return done
