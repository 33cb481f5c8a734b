"""The dashboard service: its spec, nothing else."""

from __future__ import annotations

from pathlib import Path

from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

from ncii_dashboard.app import DashboardApp, build
from ncii_dashboard.http import page, stats
from ncii_dashboard.read_models.projections import CONSUMES, CasesProjection, PlatformsProjection

SPEC: ServiceSpec[DashboardApp] = ServiceSpec(
    name="dashboard",
    port=18106,
    title="Dashboard",
    description=(
        "The centre's staff (case workers, admins): open cases by status, age group, legal "
        "category, organisation and intake channel; takedowns per platform and jurisdiction "
        "(removal rate against the 87-90% Taiwan's centre reports, median time to removal, "
        "overdue, refused); compliance with the legal clocks; art. 7 reports due and late; "
        "referral outcomes; matches and sightings; counts per month and year as CSV. A page "
        "at /dashboard that refreshes by itself, in English and Traditional Chinese. Counts "
        "and codes only: nothing personal is read or kept."
    ),
    projections=(CasesProjection(), PlatformsProjection()),
    reads_case_keys=False,
    migrations=Path(__file__).parent / "migrations",
    consumes=CONSUMES,
    routers=[stats.router, page.router],
    app=build,
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
