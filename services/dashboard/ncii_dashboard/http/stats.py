"""The dashboard's JSON API: one route per view, the centre's staff only (roles ``caseworker``
and ``admin``; decision 0047). Every answer holds counts, codes and registered names, nothing
personal, and says which state of the read models it reflects (``version``)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from ncii_events.auth import Principal, require_role
from ncii_events.service import ServiceRoute, app_of, authenticated

from ncii_dashboard.app import DashboardApp, View
from ncii_dashboard.read_models import queries

router = APIRouter(prefix="/v1/dashboard", route_class=ServiceRoute, tags=["dashboard"])
STAFF = ("caseworker", "admin")
App = Annotated[DashboardApp, Depends(app_of(DashboardApp))]


async def staff(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """The centre's staff: other roles get 403 (partners, platforms, counsellors, auditors)."""
    require_role(principal, *STAFF)
    return principal


Staff = Annotated[Principal, Depends(staff)]


async def _answer(state: DashboardApp, name: str, compute: View) -> JSONResponse:
    version = state.version_tag()
    body = await state.view(name, compute)
    return JSONResponse({"version": version, name: body})


@router.get("/summary")
async def summary(_: Staff, state: App) -> JSONResponse:
    """Every view at once (what the page reads): cases, takedowns, compliance, reports,
    referrals, matches."""
    version = state.version_tag()
    body = await state.view("summary", queries.summary)
    return JSONResponse({"version": version, **body})


@router.get("/version")
async def version(_: Staff, state: App) -> dict[str, str]:
    """The state of the read models (changes whenever a projection commits): poll it cheaply."""
    return {"version": state.version_tag()}


@router.get("/cases")
async def cases(_: Staff, state: App) -> JSONResponse:
    """Cases by status; the open ones by age group, legal category, organisation, intake
    channel and spread status; reported locations by the kind of service; erasures."""
    return await _answer(state, "cases", queries.cases)


@router.get("/takedowns")
async def takedowns(_: Staff, state: App) -> JSONResponse:
    """Per registered platform and per jurisdiction: notices, removals, the removal rate
    (against the 87-90% Taiwan's centre reports), median hours from notice to removal,
    overdue, refused (by reason), escalated."""
    return await _answer(state, "takedowns", queries.takedowns)


@router.get("/compliance")
async def compliance(_: Staff, state: App) -> JSONResponse:
    """Per platform and legal regime: notices under a legal clock answered in time, late,
    overdue and unanswered, still within the clock, and the compliance rate."""
    return await _answer(state, "compliance", queries.compliance)


@router.get("/reports")
async def reports(_: Staff, state: App) -> JSONResponse:
    """Art. 7 reports (the minor's, the known suspect's): due, overdue, filed in time, late."""
    return await _answer(state, "reports", queries.reports)


@router.get("/referrals")
async def referrals(_: Staff, state: App) -> JSONResponse:
    """Referral outcomes by status, by service and by partner organisation."""
    return await _answer(state, "referrals", queries.referrals)


@router.get("/matches")
async def matches(_: Staff, state: App) -> JSONResponse:
    """Matches and sightings per platform organisation, and the platforms' verdicts."""
    return await _answer(state, "matches", queries.matches)


@router.get("/periods", response_model=None)
async def periods(
    _: Staff,
    state: App,
    period: Annotated[
        Literal["month", "year"], Query(description="`month` (YYYY-MM) or `year` (YYYY)")
    ] = "month",
    format: Annotated[
        Literal["json", "csv"], Query(description="`csv`: a file for the annual report")
    ] = "json",
) -> Response:
    """Counts per month or year for the annual report: cases opened (minors), closed, takedowns
    opened, notices sent, content removed, refused, answered late, reports due, filed, filed
    late, referrals offered (and of those completed), matches, sightings, cases erased."""
    tag = state.version_tag()

    async def compute(conn: Any) -> Any:
        return await queries.periods(conn, period)

    rows = await state.view(f"periods-{period}", compute)
    if format == "json":
        return JSONResponse({"version": tag, "period": period, "rows": rows})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=queries.PERIOD_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ncii-{period}s.csv"'},
    )
