"""The platform registry and deliveries, for staff (case workers and admins)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from ncii_events.auth import require_role
from ncii_events.db import write_transaction
from ncii_events.http import IdempotentWrite, not_found
from ncii_events.service import ServiceRoute
from sqlalchemy import update

from ncii_takedown import domain
from ncii_takedown.http import App, Caller, command_problems
from ncii_takedown.http.bodies import PlatformFields
from ncii_takedown.http.views import delivery_view, platform_view
from ncii_takedown.read_models import queries
from ncii_takedown.read_models.schema import DELIVERIES

router = APIRouter(prefix="/v1", route_class=ServiceRoute)


@router.post("/platforms", status_code=201, tags=["platforms registry"])
async def register_platform(
    body: PlatformFields, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """Register a platform that receives notices. For a webhook platform the answer holds its
    signing secret (Standard Webhooks `whsec_...`): give it to the platform; an admin can read
    it again (`GET /v1/platforms/{id}/webhook-secret`). Send an `Idempotency-Key` (428
    without it): only the key tells a retry from a second platform (`ncii platforms register`
    sends one)."""
    require_role(principal, *domain.STAFF)
    idempotent.required("platform")

    async def handle() -> tuple[int, dict[str, Any]]:
        event = await app.register_platform(principal, idempotent.key, body.fields())
        return 201, {"platform_id": event.platform_id, **body.fields()}

    async def reveal(kept: dict[str, Any]) -> dict[str, Any]:
        # recomputed on every answer, never kept with the idempotent response
        if kept.get("channel") != "webhook":
            return kept
        return {**kept, "webhook_secret": app.webhook_secret(kept["platform_id"], 1)}

    return await idempotent.run(principal.principal_id, body, handle, reveal=reveal)


@router.put("/platforms/{platform_id}", tags=["platforms registry"])
async def update_platform(
    platform_id: str,
    body: PlatformFields,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Replace a platform's settings (notices already requested keep their deadline). The
    same settings again are no news (no event), with or without an `Idempotency-Key`."""
    require_role(principal, *domain.STAFF)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems("platform"):
            await app.update_platform(principal, idempotent.key, platform_id, body.fields())
        return 200, {"platform_id": platform_id, **body.fields()}

    return await idempotent.run(principal.principal_id, body, handle)


@router.get("/platforms", tags=["platforms registry"])
async def list_platforms(principal: Caller, app: App) -> JSONResponse:
    """Every registered platform (case workers pick one for a location here)."""
    require_role(principal, "partner", *domain.STAFF)
    return JSONResponse({"items": [platform_view(r) for r in await queries.platforms(app.engine)]})


@router.get("/platforms/{platform_id}/webhook-secret", tags=["platforms registry"])
async def webhook_secret(platform_id: str, principal: Caller, app: App) -> JSONResponse:
    """The platform's webhook signing secret (admins only; derived, never stored)."""
    require_role(principal, "admin")
    row = await queries.platform(app.engine, platform_id)
    if row is None:
        raise not_found("platform")
    secret = app.webhook_secret(row.platform_id, row.secret_version)
    return JSONResponse({"platform_id": row.platform_id, "secret": secret})


@router.get("/deliveries", tags=["deliveries"])
async def list_deliveries(
    principal: Caller,
    app: App,
    status: Literal["pending", "manual", "delivered", "dead", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    """Notices and cancellations to deliver: `dead` = gave up after the bound (retry them),
    `manual` = a case worker sends them (web form, e-mail) and confirms."""
    require_role(principal, *domain.STAFF)
    rows = await queries.deliveries(app.engine, status, limit)
    return JSONResponse({"items": [delivery_view(r) for r in rows]})


@router.post("/deliveries/{delivery_id}/retry", tags=["deliveries"])
async def retry_delivery(delivery_id: str, principal: Caller, app: App) -> JSONResponse:
    """Try a dead delivery again, from its first attempt (retrying twice is harmless), or an
    escalation left to a case worker once its authority is registered."""
    require_role(principal, *domain.STAFF)
    row = await queries.delivery(app.engine, delivery_id)
    if row is None:
        raise not_found("delivery")
    # a dead letter, or an escalation that waited for its authority to be registered
    waiting = row.kind == "escalation" and row.status == "manual"
    if row.status == "dead" or waiting:
        async with write_transaction(app.engine) as conn:
            await conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == row.id, DELIVERIES.c.status == row.status)
                .values(status="pending", attempts=0, next_attempt_at=None)
            )
        for worker in app.workers:
            worker.nudge()
    row = await queries.delivery(app.engine, delivery_id)
    return JSONResponse(delivery_view(row))
