"""The services the system is made of, as the CLI knows them."""

from __future__ import annotations

from typing import Any

from ncii_events.service import ServiceSpec


def all_services() -> dict[str, ServiceSpec[Any]]:
    from ncii_hashmatch.main import SPEC as HASHMATCH
    from ncii_intake.main import SPEC as INTAKE
    from ncii_referral.main import SPEC as REFERRAL
    from ncii_takedown.main import SPEC as TAKEDOWN

    return {s.name: s for s in (INTAKE, TAKEDOWN, HASHMATCH, REFERRAL)}
