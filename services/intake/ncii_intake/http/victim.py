"""The victim's own access: with the case reference and PIN handed over at the opening (no
account), see the case's status and withdraw it. Wrong guesses are throttled so that guessing a
PIN is impractical and knowing a reference is not enough to lock the victim out (decision 25);
her case worker can restore her access, with a new PIN if needed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from ncii_events.auth import address_key, network_key
from ncii_events.http import Problem
from ncii_events.http.limits import KiB, body_limit
from ncii_events.ids import normalise_case_reference
from ncii_events.service import ServiceRoute, runtime_of

from ncii_intake.app import IntakeApp
from ncii_intake.http import App
from ncii_intake.http.bodies import ResetVictimAccess, VictimAccess
from ncii_intake.http.views import case_state, victim_view
from ncii_intake.http.writes import Writer, case_problems
from ncii_intake.read_models import queries
from ncii_intake.takedown_counts import VictimStatus
from ncii_intake.takedown_counts import victim_status as victim_status_view
from ncii_intake.victim_throttle import Refusal, VictimThrottle, reference_key

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
VICTIM_THROTTLE = VictimThrottle()
"""One per process: with several replicas each keeps its own counts (decision 25)."""
#: A reference and a PIN: these routes take no key, so the smallest limit of all.
VICTIM_BODY_LIMIT = 2 * KiB


def _refused(refusal: Refusal) -> Problem:
    return Problem(
        429,
        "Too many wrong attempts",
        refusal.detail,
        headers={"Retry-After": str(refusal.retry_after)},
    )


async def _victim_case_id(request: Request, app: IntakeApp, access: VictimAccess) -> str:
    """The case the reference and PIN open, or 401 (the same for either being wrong), or 429
    when a budget of wrong attempts is spent (without the PIN being checked)."""
    host = request.client.host if request.client else ""
    address, network = address_key(host), network_key(host)
    refusal = VICTIM_THROTTLE.address_refusal(address)
    if refusal is not None:
        raise _refused(refusal)
    wrong = Problem(
        401, "Unauthorized", "the case reference or PIN is not right; check both and retry"
    )
    try:
        reference = normalise_case_reference(access.reference)
    except ValueError:
        VICTIM_THROTTLE.wrong(address, None, network)
        raise wrong from None
    row = await queries.victim_access(runtime_of(request).engine, reference)
    key = reference_key(reference, row.resets if row is not None else 0)
    refusal = VICTIM_THROTTLE.reference_refusal(key, network)
    if refusal is not None:
        raise _refused(refusal)
    if row is None or not app.pin_matches(row.case_id, access.pin, row.pin_generation):
        VICTIM_THROTTLE.wrong(address, key, network)
        raise wrong
    return row.case_id


@router.post("/victim/status", tags=["victim"], openapi_extra=body_limit(VICTIM_BODY_LIMIT))
async def victim_status(request: Request, access: VictimAccess, app: App) -> VictimStatus:
    """With the case reference and PIN (no account): the case's status, its steps so far, and
    in plain words how many places were reported to platforms, removed and still pending."""
    case_id = await _victim_case_id(request, app, access)
    loaded, events = await app.load_with_history(case_id, None, decrypt=False)
    return victim_status_view(victim_view(loaded, events), events)


@router.post("/victim/withdraw", tags=["victim"], openapi_extra=body_limit(VICTIM_BODY_LIMIT))
async def victim_withdraw(request: Request, access: VictimAccess, app: App) -> JSONResponse:
    """With the case reference and PIN: withdraw the case. Final."""
    case_id = await _victim_case_id(request, app, access)
    with case_problems():
        loaded = await app.withdraw_for_victim(case_id)
    return JSONResponse({"reference": loaded.case.reference, "status": loaded.case.status})


# -- for the victim's case worker ---------------------------------------------------------------


@router.post("/cases/{case_id}/victim-access/reset", tags=["cases"])
async def reset_victim_access(
    case_id: str, write: Writer, body: Annotated[ResetVictimAccess | None, Body()] = None
) -> JSONResponse:
    """Restore the victim's access when wrong PINs sent by someone else lock her reference:
    every count of wrong PINs against it starts afresh (on every replica). With `new_pin`
    (the default) the old PIN stops working and the response shows the new one **once**: give
    it to the victim. Use it too when someone else may know her PIN. Retrying with the same
    `Idempotency-Key` returns the same PIN; every other call is a new reset, so the key is
    required (428 without it: a retried reset would otherwise void the PIN just shown)."""
    command = body or ResetVictimAccess()
    # checked here as in every write, so an invalid body is a 422 before a 403
    key = write.required_key("reset")

    async def handle() -> tuple[int, dict[str, Any]]:
        with case_problems():
            loaded = await write.app.change(
                case_id,
                write.principal,
                lambda c: c.reset_victim_access(write.principal.role, new_pin=command.new_pin),
                actor_principal=write.principal,
                idempotency_key=key,
            )
        # what is kept for a replay: the PIN's generation, never the PIN
        return 200, {**case_state(loaded), "pin_generation": loaded.case.pin_generation}

    async def reveal(state: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in state.items() if k != "pin_generation"}
        access: dict[str, Any] = {"reference": state["reference"], "reset": True}
        if command.new_pin:
            access["pin"] = write.app.pin_for(state["case_id"], state["pin_generation"])
            access["note"] = (
                "shown once: give the new PIN to the victim; the old one no longer works"
            )
        return {**shown, "victim_access": access}

    return await write.idempotent.run(write.principal.principal_id, command, handle, reveal=reveal)
