"""The victim asks for her case's erasure herself, with the reference and PIN (decision 35): it
takes effect after a stated delay unless her case worker erases it sooner. The same access check
and throttles as her status page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from ncii_events.http.limits import body_limit
from ncii_events.service import ServiceRoute

from ncii_intake.http import App
from ncii_intake.http.bodies import VictimErasureRequest
from ncii_intake.http.victim import VICTIM_BODY_LIMIT, _victim_case_id
from ncii_intake.http.writes import case_problems

router = APIRouter(prefix="/v1", route_class=ServiceRoute)


@router.post(
    "/victim/erasure-request", tags=["victim"], openapi_extra=body_limit(VICTIM_BODY_LIMIT)
)
async def victim_erasure_request(
    request: Request, access: VictimErasureRequest, app: App
) -> JSONResponse:
    """With the case reference and PIN: ask for your personal data to be erased. It is erased
    when your case worker confirms it, or by itself at `takes_effect_at` (7 days later)."""
    case_id = await _victim_case_id(request, app, access)
    with case_problems():
        loaded = await app.request_erasure_for_victim(case_id)
    return JSONResponse(
        {
            "reference": loaded.case.reference,
            "status": loaded.case.status,
            "erasure_takes_effect_at": loaded.case.erasure_effective_after,
        }
    )
