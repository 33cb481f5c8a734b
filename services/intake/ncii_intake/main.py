"""The intake service: its spec, nothing else."""

from __future__ import annotations

from pathlib import Path

from ncii_contracts.hashmatch import MatchFound
from ncii_contracts.intake import INTAKE_EVENTS, INTAKE_RETIRED, MandatoryReportFiled
from ncii_contracts.referral import (
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
)
from ncii_contracts.takedown import TAKEDOWN_EVENTS
from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

from ncii_intake.app import IntakeApp, build_intake_app
from ncii_intake.http import cases, victim, victim_erasure
from ncii_intake.read_models.projections import CasesProjection
from ncii_intake.reopen import ReopenQueueProjection, workers

SPEC: ServiceSpec[IntakeApp] = ServiceSpec(
    name="intake",
    port=18101,
    title="Intake",
    description=(
        "Partner NGOs and the centre's case workers open and work cases: the non-consent "
        "statement, where content was found, hashes computed on the victim's device, the minor's "
        "art. 7 report as the referral service keeps it, closing (matching goes on) and "
        "reopening, consents given and withdrawn later, withdrawal and erasure. Victims see and "
        "withdraw their case with a reference and PIN."
    ),
    projections=(CasesProjection(), ReopenQueueProjection()),
    migrations=Path(__file__).parent / "migrations",
    # MandatoryReportFiled is no longer written (decision 34: the art. 7 report is referral's);
    # intake still reads it in old logs
    emits=tuple(e for e in INTAKE_EVENTS if e not in INTAKE_RETIRED),
    # re-uploads reopen closed cases (ncii_intake.reopen); the victim's status counts her
    # takedowns (ncii_intake.takedown_counts); a case shows its art. 7 report as referral
    # records it (decision 34)
    consumes=(
        MatchFound,
        *(e for e in TAKEDOWN_EVENTS if e.aggregate == "takedown"),
        MandatoryReportFiled,
        MandatoryReportDue,
        MandatoryReportOverdue,
        MandatoryReportSubmitted,
    ),
    routers=[cases.router, victim.router, victim_erasure.router],
    app=build_intake_app,
    workers=workers,
    owns_case_keys=True,
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
