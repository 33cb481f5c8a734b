"""The takedown service: its spec, nothing else."""

from __future__ import annotations

from pathlib import Path

from ncii_contracts.hashmatch import MatchFound
from ncii_contracts.intake import (
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    ConsentsChanged,
    LocationReported,
    NonConsentRecorded,
)
from ncii_contracts.takedown import TAKEDOWN_EVENTS
from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

from ncii_takedown.app import TakedownApp, build, gauges, workers
from ncii_takedown.http import cases, notices, platforms
from ncii_takedown.read_models.projections import PlatformsProjection, TakedownsProjection

SPEC: ServiceSpec[TakedownApp] = ServiceSpec(
    name="takedown",
    port=18102,
    title="Takedown",
    description=(
        "Takedown notices to platforms, evidence first: a takedown per reported location and "
        "per sighting of a case's hashes, notices by signed webhook (or a web form a case "
        "worker confirms), deadlines per legal regime marked overdue on time even across "
        "restarts, escalation, and cancellation when a case is withdrawn or erased. Platforms "
        "list and answer their own notices."
    ),
    projections=(PlatformsProjection(), TakedownsProjection()),
    migrations=Path(__file__).parent / "migrations",
    emits=TAKEDOWN_EVENTS,
    consumes=(
        CaseOpened,
        ConsentsChanged,
        NonConsentRecorded,
        LocationReported,
        CaseWithdrawn,
        CaseErased,
        MatchFound,
    ),
    routers=[cases.router, notices.router, platforms.router],
    key_spaces=("evidence",),
    app=build,
    workers=workers,
    gauges=gauges,
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
