"""The report sweeper: a due art. 7 report not filed becomes overdue on time as an event
(``MandatoryReportOverdue``, ``SuspectReportOverdue``), read from the read model on the
injected clock, so a service that was down catches up as soon as it starts. Runs at least every
``sweep_interval_s`` (30 s by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncii_contracts.base import DomainEvent
from ncii_contracts.referral import MandatoryReportOverdue, SuspectReportOverdue
from ncii_events import tracing
from ncii_events.store import Cause, ConcurrencyError, Version
from ncii_events.worker import LoopWorker

from ncii_referral import domain
from ncii_referral.outbox import SERVICE_ACTOR, derived_id, report_ref
from ncii_referral.read_models import queries

if TYPE_CHECKING:
    from ncii_referral.app import ReferralApp

BATCH = 500


class ReportSweeper(LoopWorker):
    name = "reports"

    def __init__(self, app: ReferralApp) -> None:
        super().__init__()
        self.app = app
        self.interval = app.settings.sweep_interval_s
        self._marked: set[str] = set()
        """Reports marked overdue by this process whose event the projection has not applied
        yet (so a round does not count them again)."""

    async def _due(self) -> list[tuple[str, str, str, str]]:
        """Every late report not marked by this process yet, page by page (the read model may
        not have applied this process's marks: they must not hide the reports after them)."""
        now_text = domain.format_time(self.app.clock.now())
        found: list[tuple[str, str, str, str]] = []
        after: tuple[str, str] | None = None
        while len(found) < BATCH:
            rows = await queries.past_due(self.app.engine, now_text, BATCH, after)
            found += [
                (r.report_id, r.case_id, r.kind, now_text)
                for r in rows
                if r.report_id not in self._marked
            ]
            if len(rows) < BATCH:
                break
            after = (rows[-1].due_at, rows[-1].report_id)
        return found[:BATCH]

    async def pending(self) -> int:
        return len(await self._due())

    async def step(self) -> int:
        done = 0
        for report_id, case_id, kind, now_text in await self._due():
            if self._stopping.is_set():
                break
            row = await queries.report(self.app.engine, report_id)
            if row is None or row.status != "due":
                continue
            event: DomainEvent = (
                MandatoryReportOverdue if kind == "victim_minor" else SuspectReportOverdue
            )(report_id=report_id, due_at=row.due_at, detected_at=now_text)
            ref = report_ref(case_id, report_id)
            # the clock's work: a trace of its own, linked to the report's newest event
            with tracing.work_span(
                "ncii.sweep reports",
                attributes={"ncii.handler": self.name, "ncii.case_id": case_id},
            ) as span:
                history = await self.app.store.load(ref, decrypt=False)
                if history:
                    tracing.link(span, history[-1].envelope.traceparent)
                # filed (or marked) in the log but not yet in the read model: nothing to do
                if not any(e.type.endswith(("Submitted", "Filed", "Overdue")) for e in history):
                    try:
                        await self.app.store.append(
                            ref,
                            [event],
                            expected=Version.of(history),
                            cause=Cause(SERVICE_ACTOR, report_id, report_id),
                            event_ids=[derived_id(report_id, "overdue")],
                        )
                    except ConcurrencyError:
                        continue  # filed meanwhile, or another replica marked it: next round
            self._marked.add(report_id)
            done += 1
        if len(self._marked) > 100_000:
            self._marked.clear()
        return done
