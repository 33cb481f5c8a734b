"""Art. 7 reports and the case's guidance checklist.

Staff (case workers, admins) see every report that is due or late (``GET /v1/reports``: no
personal data, so it is one indexed query); the case's side reads a case's reports with the
authority they go to, files one, and opens the known suspect's report; and ticks the guidance
items the case's facts call for."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from ncii_contracts.referral import (
    GuidanceItem,
    MandatoryReportDue,
    MandatoryReportSubmitted,
    SuspectReportDue,
    SuspectReportFiled,
)
from ncii_events.auth import require_role
from ncii_events.http import IdempotentWrite, decode_cursor, encode_cursor
from ncii_events.http.rate_limits import CASE_WRITES, rate_limited
from ncii_events.service import ServiceRoute

from ncii_referral import domain
from ncii_referral.http import App, Caller, command_problems
from ncii_referral.http.bodies import FileReport, SuspectKnown
from ncii_referral.read_models import queries

router = APIRouter(prefix="/v1", route_class=ServiceRoute)
WRITE_LIMIT = rate_limited(CASE_WRITES)
"""Every write counts against the caller's case-write budget, checked before the body (24)."""


def report_row(row: Any) -> dict[str, Any]:
    return {
        "report_id": row.report_id,
        "case_id": row.case_id,
        "kind": row.kind,
        "status": row.status,
        "learned_at": row.learned_at,
        "due_at": row.due_at,
        "filed_at": row.filed_at,
        "late": row.late,
        "overdue_at": row.overdue_at,
    }


@router.get("/reports", tags=["mandatory reports"])
async def due_and_late(
    principal: Caller,
    app: App,
    status: Literal["due", "overdue"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> JSONResponse:
    """Every art. 7 report not yet filed (the minor's and the known suspect's), the earliest
    due first: `due` (within its 24 hours) and `overdue` (late)."""
    require_role(principal, *domain.STAFF)
    after = None
    if cursor is not None:
        data = decode_cursor(cursor)
        after = (str(data.get("due_at", "")), str(data.get("report_id", "")))
    rows = await queries.open_reports(app.engine, status, after, limit)
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = encode_cursor({"due_at": last.due_at, "report_id": last.report_id})
    return JSONResponse(
        {
            "now": domain.format_time(app.now()),
            "items": [report_row(r) for r in rows],
            "next_cursor": next_cursor,
        }
    )


@router.get("/cases/{case_id}/reports", tags=["mandatory reports"])
async def case_reports(case_id: str, principal: Caller, app: App) -> JSONResponse:
    """The case's reports, each with the local authority of the case's city or county it goes
    to, and, once filed, the authority and reference recorded."""
    require_role(principal, *domain.CASE_WRITERS)
    with command_problems("case"):
        found = await app.case_reports(principal, case_id)
    items = []
    for row, events in found:
        view = report_row(row)
        for e in events:
            ev = e.event
            if isinstance(ev, (MandatoryReportDue, SuspectReportDue)):
                view["region"] = ev.region
                view["authority"] = domain.authority_of(ev.region) if ev.region else None
            elif isinstance(ev, (MandatoryReportSubmitted, SuspectReportFiled)):
                view["filed_with"] = {
                    "region": ev.authority_region,
                    "authority": domain.authority_of(ev.authority_region)
                    if ev.authority_region
                    else None,
                    "reference": ev.authority_reference,
                }
        items.append(view)
    return JSONResponse({"items": items})


@router.post(
    "/cases/{case_id}/reports/{report_id}/filing",
    tags=["mandatory reports"],
    openapi_extra=WRITE_LIMIT,
)
async def file_report(
    case_id: str,
    report_id: str,
    body: FileReport,
    principal: Caller,
    app: App,
    idempotent: IdempotentWrite,
) -> JSONResponse:
    """Record that the report was filed with the local authority: when, which city's or
    county's, and its reference (both encrypted). Filed after its 24 hours it is recorded as
    late."""
    require_role(principal, *domain.CASE_WRITERS)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems("report"):
            await app.file_report(
                principal,
                idempotent.key,
                case_id,
                report_id,
                filed_at=body.filed_at,
                region=body.authority_region,
                reference=body.authority_reference,
            )
        return 200, {
            "report_id": report_id,
            "filed_at": domain.format_time(body.filed_at),
            "authority": domain.authority_of(body.authority_region),
        }

    return await idempotent.run(principal.principal_id, body, handle)


@router.post(
    "/cases/{case_id}/reports/suspect",
    status_code=201,
    tags=["mandatory reports"],
    openapi_extra=WRITE_LIMIT,
)
async def suspect_known(
    case_id: str, body: SuspectKnown, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """Staff learned who the suspect is in a minor's case: reporting them is due within 24
    hours (art. 7 para 2). Once per case."""
    require_role(principal, *domain.CASE_WRITERS)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems("case"):
            report_id = await app.open_suspect_report(
                principal, idempotent.key, case_id, body.learned_at
            )
        return 201, {"report_id": report_id, "kind": "known_suspect"}

    return await idempotent.run(principal.principal_id, body, handle)


@router.get("/cases/{case_id}/guidance", tags=["guidance"])
async def guidance(case_id: str, principal: Caller, app: App) -> JSONResponse:
    """The checklist the centre's advice calls for in this case, and what staff ticked."""
    require_role(principal, *domain.CASE_READERS)
    with command_problems("case"):
        items, ticked = await app.guidance(principal, case_id)
    return JSONResponse({"items": [{"item": i, "ticked_at": ticked.get(i)} for i in items]})


@router.post("/cases/{case_id}/guidance/{item}", tags=["guidance"], openapi_extra=WRITE_LIMIT)
async def tick(
    case_id: str, item: GuidanceItem, principal: Caller, app: App, idempotent: IdempotentWrite
) -> JSONResponse:
    """Tick an item done with the victim (each tick is an event)."""
    require_role(principal, *domain.CASE_WRITERS)

    async def handle() -> tuple[int, dict[str, Any]]:
        with command_problems("case"):
            await app.tick(principal, idempotent.key, case_id, item)
        return 200, {"item": item}

    return await idempotent.run(principal.principal_id, None, handle)
