"""The platform's side (role ``platform``): its own open notices, and its answers. A notice
addressed to another platform is 404, as one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from ncii_contracts.takedown import NoticePurpose
from ncii_events.auth import require_role
from ncii_events.http import IdempotentWrite
from ncii_events.http.fields import utc_text
from ncii_events.service import ServiceRoute
from pydantic import BaseModel

from ncii_takedown.app import Decision
from ncii_takedown.http import App, Caller, command_problems
from ncii_takedown.http.bodies import Acknowledge, MarkDone, MarkRemoved, Refuse
from ncii_takedown.http.views import notice_state
from ncii_takedown.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
PLATFORMS = ("platform",)


@router.get("/notices", tags=["platforms"])
async def open_notices(
    principal: Caller,
    app: App,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    purpose: NoticePurpose | None = None,
) -> JSONResponse:
    """Your open notices (sent and not yet removed or refused), the earliest deadline first,
    each as it was delivered: site and URL, what is known of the offender, the statements and
    the notifier's contact. `purpose` says what each asks: `removal` (take the content down),
    `freeze_account` (suspend an account, keep its data) or `preserve_data` (keep the pages and
    the uploader's data 180 days); `?purpose=` lists one kind only."""
    require_role(principal, *PLATFORMS)
    rows = await queries.open_notices(app.engine, principal.organisation, limit, purpose)
    items = []
    for row in rows:
        composed = await app.notice(row.case_id, row.takedown_id)
        if composed is not None:
            takedown, document = composed
            items.append({**document, "purpose": row.purpose, "status": takedown.status})
    return JSONResponse({"items": items})


async def _answer(
    app: App,
    principal: Caller,
    idempotent: IdempotentWrite,
    notice_id: str,
    body: BaseModel | None,
    what: str,
    decide: Decision,
) -> JSONResponse:
    require_role(principal, *PLATFORMS)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems("notice"):
            loaded = await app.platform_change(principal, idempotent.key, notice_id, what, decide)
        return 200, notice_state(loaded.takedown)

    return await idempotent.run(principal.principal_id, body, handle)


@router.post("/notices/{notice_id}/acknowledge", tags=["platforms"])
async def acknowledge(
    notice_id: str,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
    body: Acknowledge | None = None,
) -> JSONResponse:
    """Acknowledge a notice (optionally with your own reference for it)."""
    reference = body.platform_reference if body is not None else None
    at = app.now_text()
    return await _answer(
        app,
        principal,
        idempotent,
        notice_id,
        body,
        "acknowledged",
        lambda t: t.acknowledge(at, reference),
    )


@router.post("/notices/{notice_id}/removed", tags=["platforms"])
async def mark_removed(
    notice_id: str, body: MarkRemoved, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """The content is removed (or access to it restricted), at `removed_at`."""
    removed_at = utc_text(body.removed_at)
    return await _answer(
        app, principal, idempotent, notice_id, body, "removed", lambda t: t.remove(removed_at)
    )


@router.post("/notices/{notice_id}/refuse", tags=["platforms"])
async def refuse(
    notice_id: str, body: Refuse, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """Refuse the notice, with the reason (the case worker may escalate it)."""
    at = app.now_text()
    return await _answer(
        app, principal, idempotent, notice_id, body, "refused", lambda t: t.refuse(at, body.reason)
    )


@router.post("/notices/{notice_id}/done", tags=["platforms"])
async def mark_done(
    notice_id: str, body: MarkDone, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """A freeze or preserve notice is done (the account frozen, the data kept), at `done_at`.
    A removal notice is answered with `removed` instead."""
    done_at = utc_text(body.done_at)
    return await _answer(
        app, principal, idempotent, notice_id, body, "done", lambda t: t.fulfil(done_at)
    )
