"""The retention sweeper: 180 days after a takedown ended (``EvidenceRetentionScheduled``), its
evidence records' personal fields are erased (decision 0032). It destroys each sealed record's
own key, then records ``EvidenceErased`` (its id derived from the takedown, so a crash between
the two destroys again, which is a no-op, and records once). Driven by the injected clock from
the read model, like the deadline sweeper, so a service that was down catches up at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncii_contracts.takedown import EvidencePreserved
from ncii_events import tracing
from ncii_events.store import Cause, append_once
from ncii_events.worker import LoopWorker
from opentelemetry import trace

from ncii_takedown import domain
from ncii_takedown.app import history
from ncii_takedown.outbox import SERVICE_ACTOR, derived_id, takedown_ref
from ncii_takedown.read_models import queries

if TYPE_CHECKING:
    from ncii_takedown.app import TakedownApp


class RetentionSweeper(LoopWorker):
    name = "retention"

    def __init__(self, app: TakedownApp) -> None:
        super().__init__()
        self.app = app
        self.interval = app.settings.sweep_interval_s
        self._erased: set[str] = set()
        """Takedowns erased by this process whose event the projection has not applied yet."""

    async def _due(self) -> list[tuple[str, str]]:
        now_text = domain.format_time(self.app.clock.now())
        rows = await queries.retention_due(self.app.engine, now_text, 200)
        return [(r.case_id, r.takedown_id) for r in rows if r.takedown_id not in self._erased]

    async def pending(self) -> int:
        return len(await self._due())

    async def step(self) -> int:
        done = 0
        for case_id, takedown_id in await self._due():
            if self._stopping.is_set():
                break
            with tracing.work_span(
                "ncii.sweep retention",
                attributes={"ncii.handler": self.name, "ncii.case_id": case_id},
            ) as span:
                await self.erase(case_id, takedown_id, span)
            self._erased.add(takedown_id)
            done += 1
        if len(self._erased) > 100_000:
            self._erased.clear()
        return done

    async def erase(
        self, case_id: str, takedown_id: str, span: trace.Span = trace.INVALID_SPAN
    ) -> None:
        ref = takedown_ref(case_id, takedown_id)
        events = await self.app.store.load(ref, decrypt=False)
        if events:  # the clock's work, linked to what scheduled it (decision 55)
            tracing.link(span, events[-1].envelope.traceparent)
        takedown = domain.Takedown.replay(history(events))
        if takedown is None:
            return
        erased: list[str] = []
        kept: list[str] = []
        for recorded in events:
            if isinstance(recorded.event, EvidencePreserved):
                sealed = recorded.event.sealed
                (erased if sealed else kept).append(recorded.envelope.event_id)
        decided = takedown.erase_evidence(self.app.clock.now(), erased=erased, kept=kept)
        if not decided:
            return
        for evidence_id in erased:
            await self.app.evidence_keys.destroy(case_id, evidence_id)
        cause = Cause(SERVICE_ACTOR, takedown_id, takedown_id)
        await append_once(
            self.app.store, ref, decided[0], derived_id(takedown_id, "evidence-erased"), cause
        )
