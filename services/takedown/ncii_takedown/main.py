"""The takedown service: wiring only. Its domain arrives with its own issue; until then it runs,
joins the log, serves its conventions endpoints and answers readiness like every service."""

from __future__ import annotations

from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

SPEC: ServiceSpec[None] = ServiceSpec(
    name="takedown",
    port=18102,
    title="Takedown",
    description="Takedown notices to platforms, their deadlines and escalation.",
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
