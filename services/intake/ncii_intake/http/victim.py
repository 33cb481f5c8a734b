"""The victim's own access: with the case reference and PIN handed over at the opening (no
account), see the case's status and withdraw it. Wrong guesses are throttled per client and per
reference."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from ncii_events.auth import FailedAuthThrottle
from ncii_events.http import Problem
from ncii_events.http.limits import KiB, body_limit
from ncii_events.ids import normalise_case_reference
from ncii_events.service import ServiceRoute, runtime_of

from ncii_intake.app import IntakeApp
from ncii_intake.http import App
from ncii_intake.http.bodies import VictimAccess
from ncii_intake.http.views import VictimView, victim_view
from ncii_intake.http.writes import case_problems
from ncii_intake.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
VICTIM_THROTTLE = FailedAuthThrottle(limit=10, window=300.0)
#: A reference and a PIN: these routes take no key, so the smallest limit of all.
VICTIM_BODY_LIMIT = 2 * KiB


async def _victim_case_id(request: Request, app: IntakeApp, access: VictimAccess) -> str:
    """The case the reference and PIN open, or 401 (the same for either being wrong)."""
    client = request.client.host if request.client else "unknown"
    VICTIM_THROTTLE.check(client)
    wrong = Problem(
        401, "Unauthorized", "the case reference or PIN is not right; check both and retry"
    )
    try:
        reference = normalise_case_reference(access.reference)
    except ValueError:
        VICTIM_THROTTLE.failed(client)
        raise wrong from None
    VICTIM_THROTTLE.check(reference)
    case_id = await queries.case_id_for_reference(runtime_of(request).engine, reference)
    if case_id is None or not app.pin_matches(case_id, access.pin):
        VICTIM_THROTTLE.failed(client)
        VICTIM_THROTTLE.failed(reference)
        raise wrong
    return case_id


@router.post("/victim/status", tags=["victim"], openapi_extra=body_limit(VICTIM_BODY_LIMIT))
async def victim_status(request: Request, access: VictimAccess, app: App) -> VictimView:
    """With the case reference and PIN (no account): the case's status and its steps so far."""
    case_id = await _victim_case_id(request, app, access)
    loaded, events = await app.load_with_history(case_id, None, decrypt=False)
    return victim_view(loaded, events)


@router.post("/victim/withdraw", tags=["victim"], openapi_extra=body_limit(VICTIM_BODY_LIMIT))
async def victim_withdraw(request: Request, access: VictimAccess, app: App) -> JSONResponse:
    """With the case reference and PIN: withdraw the case. Final."""
    case_id = await _victim_case_id(request, app, access)
    with case_problems():
        loaded = await app.withdraw_for_victim(case_id)
    return JSONResponse({"reference": loaded.case.reference, "status": loaded.case.status})
