"""The support partners' registry, for staff (case workers and admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from ncii_events.auth import require_role
from ncii_events.http import IdempotentWrite
from ncii_events.http.rate_limits import CASE_WRITES, rate_limited
from ncii_events.service import ServiceRoute

from ncii_referral import domain
from ncii_referral.http import App, Caller, command_problems
from ncii_referral.http.bodies import PartnerFields
from ncii_referral.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
WRITE_LIMIT = rate_limited(CASE_WRITES)
"""Every write counts against the caller's case-write budget, checked before the body (24)."""


def partner_view(row: Any) -> dict[str, Any]:
    return {
        "partner_id": row.partner_id,
        "organisation": row.organisation,
        "name": row.name,
        "services": row.services.split(","),
        "regions": row.regions.split(","),
        "languages": row.languages.split(","),
        "taking_referrals": row.taking_referrals,
        "registered_at": row.registered_at,
        "updated_at": row.updated_at,
    }


@router.post("/partners", status_code=201, tags=["partners registry"], openapi_extra=WRITE_LIMIT)
async def register_partner(
    body: PartnerFields, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """Register a support partner that receives referrals. Its counsellors' API keys carry
    its `organisation` (role `counsellor`). Send an `Idempotency-Key` (428 without it): a
    registration has no identity of its own, so only the key tells a retry from a second
    partner (`ncii partners register` sends one)."""
    require_role(principal, *domain.STAFF)
    idempotent.required("partner")

    async def handle() -> tuple[int, dict[str, Any]]:
        event = await app.register_partner(principal, idempotent.key, body.fields())
        return 201, {"partner_id": event.partner_id, **body.fields()}

    return await idempotent.run(principal.principal_id, body, handle)


@router.put("/partners/{partner_id}", tags=["partners registry"], openapi_extra=WRITE_LIMIT)
async def update_partner(
    partner_id: str, body: PartnerFields, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """Replace a partner's settings (e.g. `taking_referrals: false` when it is full). The same
    settings again are no news (no event), with or without an `Idempotency-Key`."""
    require_role(principal, *domain.STAFF)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems("partner"):
            await app.update_partner(principal, idempotent.key, partner_id, body.fields())
        return 200, {"partner_id": partner_id, **body.fields()}

    return await idempotent.run(principal.principal_id, body, handle)


@router.get("/partners", tags=["partners registry"])
async def list_partners(principal: Caller, app: App) -> JSONResponse:
    """Every registered partner (the case's side picks one to offer a referral to)."""
    require_role(principal, *domain.CASE_READERS)
    rows = await queries.partners(app.engine)
    return JSONResponse({"items": [partner_view(r) for r in rows]})
