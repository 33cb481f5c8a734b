"""The case side (partners and case workers of the case's organisation): a case's takedowns
with their timelines, evidence, a location's platform, a web-form or e-mail notice confirmed as
sent, an overdue notice escalated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from ncii_events.auth import Principal, require_role
from ncii_events.http import IdempotentWrite, not_found
from ncii_events.http.fields import utc_text
from ncii_events.service import ServiceRoute
from pydantic import BaseModel

from ncii_takedown import domain
from ncii_takedown.app import Decision, LoadedTakedown
from ncii_takedown.guidance import Language, checklist
from ncii_takedown.http import App, Caller, command_problems
from ncii_takedown.http.bodies import (
    AssignPlatform,
    ConfirmSent,
    Escalate,
    OpenRequest,
    RecordEvidence,
)
from ncii_takedown.http.views import escalation_view, state_view, takedown_view, withheld_note
from ncii_takedown.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
PATH = "/cases/{case_id}/takedowns/{takedown_id}"


async def _write(
    principal: Principal,
    idempotent: IdempotentWrite,
    body: BaseModel | None,
    action: Callable[[], Awaitable[LoadedTakedown]],
) -> JSONResponse:
    require_role(principal, *domain.CASE_WRITERS)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems():
            loaded = await action()
        return 200, state_view(loaded.takedown)

    return await idempotent.run(principal.principal_id, body, handle)


def _change(
    app: App,
    principal: Principal,
    idempotent: IdempotentWrite,
    case_id: str,
    takedown_id: str,
    what: str,
    decide: Decision,
) -> Callable[[], Awaitable[LoadedTakedown]]:
    return lambda: app.case_change(principal, idempotent.key, case_id, takedown_id, what, decide)


@router.get("/cases/{case_id}/takedowns", tags=["takedowns"])
async def list_takedowns(case_id: str, principal: Caller, app: App) -> JSONResponse:
    """The case's takedowns, each with its whole timeline from the log (the proof of when the
    platform was told and what it answered). An admin gets the timeline's personal fields
    null (`personal_data_withheld` says which, and where a read of them is recorded)."""
    require_role(principal, *domain.CASE_READERS)
    with command_problems("case"):
        found = await app.case_takedowns(principal, case_id)
    body: dict[str, Any] = {"items": [takedown_view(t, timeline) for t, timeline in found]}
    if not domain.sees_personal_data(principal.role):
        body["personal_data_withheld"] = withheld_note(case_id)
    return JSONResponse(body)


@router.post(f"{PATH}/evidence", tags=["takedowns"])
async def record_evidence(
    case_id: str,
    takedown_id: str,
    body: RecordEvidence,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Record the location's evidence: no notice leaves before it (and, for an adult, before
    the non-consent statement). The capture stays with you; send its SHA-256."""

    def decide(t: domain.Takedown) -> list[Any]:
        return t.record_evidence(
            captured_at=utc_text(body.captured_at),
            capture_method=body.capture_method,
            capture_sha256=body.capture_sha256,
            url=body.url,
            preserved_by=body.preserved_by,
            offender_account=body.offender_account,
            offender_ip=body.offender_ip,
        )

    action = _change(app, principal, idempotent, case_id, takedown_id, "evidence", decide)
    return await _write(principal, idempotent, body, action)


@router.post(f"{PATH}/platform", tags=["takedowns"])
async def assign_platform(
    case_id: str,
    takedown_id: str,
    body: AssignPlatform,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Name the registered platform of a location whose platform was not recognised."""

    async def action() -> LoadedTakedown:
        return await app.assign_platform(
            principal, idempotent.key, case_id, takedown_id, body.platform_id
        )

    return await _write(principal, idempotent, body, action)


@router.post(f"{PATH}/notice-sent", tags=["takedowns"])
async def confirm_sent(
    case_id: str,
    takedown_id: str,
    body: ConfirmSent,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Confirm that you sent the notice through the platform's web form (or by e-mail): its
    deadline runs from `sent_at`. Webhook notices are confirmed by the platform's receiver."""

    def decide(t: domain.Takedown) -> list[Any]:
        if t.channel == "webhook":
            raise domain.TransitionError(
                "this platform receives notices by webhook: the service sends and confirms them"
            )
        return t.send(utc_text(body.sent_at))

    action = _change(app, principal, idempotent, case_id, takedown_id, "sent", decide)
    return await _write(principal, idempotent, body, action)


@router.post(f"{PATH}/escalate", tags=["takedowns"])
async def escalate(
    case_id: str,
    takedown_id: str,
    body: Escalate,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Record that an overdue notice was taken to the authority (art. 47). The record carries
    the takedown's whole timeline (each event's time and hash in the log) as the proof; read it
    back with `GET .../escalation`."""

    async def action() -> LoadedTakedown:
        return await app.escalate(principal, idempotent.key, case_id, takedown_id, body.authority)

    return await _write(principal, idempotent, body, action)


@router.get(f"{PATH}/escalation", tags=["takedowns"])
async def escalation(case_id: str, takedown_id: str, principal: Caller, app: App) -> JSONResponse:
    """The escalation record as JSON, for the authority: when the notice was sent, its deadline,
    every event of the takedown with its time and its hash in the log, and whether each still
    verifies against the log. 404 when the takedown was not escalated. An admin gets the
    authority null (personal: decision 56)."""
    require_role(principal, *domain.CASE_READERS)
    with command_problems():
        found = await app.escalation(principal, case_id, takedown_id)
    if found is None:
        raise not_found("escalation")
    recorded, checks = found
    return JSONResponse(escalation_view(recorded, checks))


@router.get("/escalations/due", tags=["escalations"])
async def escalations_due(
    principal: Caller, app: App, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> JSONResponse:
    """Staff: overdue notices whose regime says escalation is due now (the deadline plus the
    regime's grace: none where the law's deadline passed, a day where it was only our target).
    Ids and times only; escalate each with `POST .../escalate`."""
    require_role(principal, *domain.STAFF)
    now = app.clock.now()
    items = []
    for row in await queries.overdue(app.engine, limit):
        due_at = domain.escalation_due_at(row.deadline_at, row.deadline_regime)
        if now >= domain.parse_time(due_at):
            rule = domain.REGIMES[row.deadline_regime]
            items.append(
                {
                    "case_id": row.case_id,
                    "takedown_id": row.takedown_id,
                    "notice_id": row.notice_id,
                    "deadline_regime": row.deadline_regime,
                    "deadline_at": row.deadline_at,
                    "escalation_due_at": due_at,
                    "authority": rule.authority,
                }
            )
    return JSONResponse({"items": items})


@router.get("/retention/due", tags=["retention"])
async def retention_due(
    principal: Caller,
    app: App,
    within_days: Annotated[int, Query(ge=0, le=365)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    """Staff: ended takedowns whose evidence records are due for erasure now (or within
    `within_days`), 180 days after the takedown ended, the earliest first. The retention
    sweeper erases them when due; ids and times only."""
    require_role(principal, *domain.STAFF)
    horizon = app.clock.now() + timedelta(days=within_days)
    rows = await queries.retention_due(app.engine, domain.format_time(horizon), limit)
    items = [
        {
            "case_id": row.case_id,
            "takedown_id": row.takedown_id,
            "status": row.status,
            "evidence_records": row.evidence,
            "ended_at": row.ended_at,
            "erase_at": row.erase_at,
        }
        for row in rows
    ]
    return JSONResponse({"items": items})


@router.get("/cases/{case_id}/evidence-checklist", tags=["guidance"])
async def evidence_checklist(
    case_id: str, principal: Caller, app: App, lang: Language = "en"
) -> JSONResponse:
    """The victim's evidence checklist for this case ("delete nothing": what to keep of pages,
    accounts, conversations and friends), versioned, in English or Traditional Chinese
    (`lang=zh-TW`), for her case worker to go through with her."""
    require_role(principal, *domain.CASE_READERS)
    with command_problems("case"):
        await app.visible_case(principal, case_id)
    return JSONResponse({"case_id": case_id, **checklist(lang)})


@router.post("/cases/{case_id}/requests", tags=["takedowns"], status_code=201)
async def open_request(
    case_id: str,
    body: OpenRequest,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Ask a platform to freeze an account used to threaten the victim (`freeze_account`: needs
    `offender_account`), or to keep the page and the suspect's data for 180 days
    (`preserve_data`: needs `url` or `offender_account`), art. 8. Give the evidence as for a
    location; the notice goes by the platform's channel like any other, and the platform answers
    done or refused."""
    require_role(principal, *domain.CASE_WRITERS)
    evidence = body.model_dump(exclude={"purpose", "platform_id"})
    evidence["captured_at"] = utc_text(body.captured_at)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems("case"):
            loaded = await app.open_request(
                principal, idempotent.key, case_id, body.purpose, body.platform_id, evidence
            )
        return 201, state_view(loaded.takedown)

    return await idempotent.run(principal.principal_id, body, handle)
