"""The referral service: its spec, nothing else."""

from __future__ import annotations

from pathlib import Path

from ncii_contracts.intake import (
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    ConsentsChanged,
    MandatoryReportFiled,
    OffenderDetailsRecorded,
)
from ncii_contracts.referral import REFERRAL_EVENTS
from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

from ncii_referral.app import ReferralApp, build, gauges, workers
from ncii_referral.http import partners, referrals, reports
from ncii_referral.read_models.projections import (
    OffendersProjection,
    PartnersProjection,
    ReferralsProjection,
)

SPEC: ServiceSpec[ReferralApp] = ServiceSpec(
    name="referral",
    port=18104,
    title="Referral",
    description=(
        "Referrals to support partners (counselling, legal advice, police accompaniment, "
        "StopNCII enrolment help for adults, the PhotoDNA programme for minors) with the "
        "victim's consent checked when offered; counsellors see only what is addressed to "
        "them. The minor's art. 7 report to the local authority, due 24 hours after staff "
        "learned of the case and marked overdue on time, and the known suspect's; the case's "
        "guidance checklist."
    ),
    projections=(PartnersProjection(), ReferralsProjection(), OffendersProjection()),
    migrations=Path(__file__).parent / "migrations",
    emits=REFERRAL_EVENTS,
    consumes=(
        CaseOpened,
        ConsentsChanged,
        CaseWithdrawn,
        CaseErased,
        MandatoryReportFiled,
        OffenderDetailsRecorded,
    ),
    routers=[partners.router, referrals.router, reports.router],
    app=build,
    workers=workers,
    gauges=gauges,
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
