"""The referral service: wiring only. Its domain arrives with its own issue; until then it runs,
joins the log, serves its conventions endpoints and answers readiness like every service."""

from __future__ import annotations

from ncii_events.serve import serve
from ncii_events.service import ServiceSpec

SPEC: ServiceSpec[None] = ServiceSpec(
    name="referral",
    port=18104,
    title="Referral",
    description="Referrals to counselling partners and the mandatory-report clock for minors.",
)


def run() -> None:
    serve(SPEC)


if __name__ == "__main__":
    run()
