"""The intake service: wiring only."""

from __future__ import annotations

from pathlib import Path

from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

from ncii_intake.api import router
from ncii_intake.events import ALL_EVENTS
from ncii_intake.handlers import IntakeHandlers, build_handlers
from ncii_intake.projections import CasesProjection

SPEC: ServiceSpec[IntakeHandlers] = ServiceSpec(
    name="intake",
    port=18101,
    title="Intake",
    description=(
        "Partner NGOs and the centre's case workers open and work cases: the non-consent "
        "statement, where content was found, hashes computed on the victim's device, the minor's "
        "24-hour reporting clock, withdrawal and erasure. Victims see and withdraw their case "
        "with a reference and PIN."
    ),
    projections=(CasesProjection(),),
    migrations=Path(__file__).parent / "migrations",
    emits=ALL_EVENTS,
    routers=[router],
    app=build_handlers,
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
