"""The dashboard's JSON API: one route per view, the centre's staff only (roles ``caseworker``
and ``admin``; decision 0047). Every answer holds counts, codes and registered names, nothing
personal, and says which state of the read models it reflects (``version``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from ncii_events.auth import Principal, require_role
from ncii_events.service import ServiceRoute, app_of, authenticated
from sqlalchemy.ext.asyncio import AsyncConnection

from ncii_dashboard.app import Compute, DashboardApp
from ncii_dashboard.read_models import queries

router = APIRouter(prefix="/v1/dashboard", route_class=ServiceRoute, tags=["dashboard"])
STAFF = ("caseworker", "admin")
App = Annotated[DashboardApp, Depends(app_of(DashboardApp))]


async def staff(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """The centre's staff: other roles get 403 (partners, platforms, counsellors, auditors)."""
    require_role(principal, *STAFF)
    return principal


Staff = Annotated[Principal, Depends(staff)]


def _json(name: str | None, view: Callable[[AsyncConnection], Awaitable[Any]]) -> Compute:
    """``view``'s value as the JSON answer: under ``name`` (or spread, for None) beside the
    version it reflects."""

    async def compute(conn: AsyncConnection, version: str) -> bytes:
        value = await view(conn)
        body = {"version": version, **value} if name is None else {"version": version, name: value}
        return json.dumps(body, separators=(",", ":")).encode()

    return compute


async def _answer(state: DashboardApp, name: str, compute: Compute) -> Response:
    return Response(await state.answer(name, compute), media_type="application/json")


@router.get("/summary")
async def summary(_: Staff, state: App) -> Response:
    """Every view at once (what the page reads): cases, takedowns, compliance, reports,
    referrals, matches. Each answer names the ``version`` of the read models it reflects;
    while a newer one is being computed, the last one is served."""
    return await _answer(state, "summary", _json(None, queries.summary))


@router.get("/version")
async def version(_: Staff, state: App) -> dict[str, str]:
    """The current state of the read models (moves whenever a projection commits)."""
    return {"version": state.tag(state.version())}


@router.get("/cases")
async def cases(_: Staff, state: App) -> Response:
    """Cases by status; the open ones by age group, legal category, organisation, intake
    channel and spread status; reported locations by the kind of service; erasures."""
    return await _answer(state, "cases", _json("cases", queries.cases))


@router.get("/takedowns")
async def takedowns(_: Staff, state: App) -> Response:
    """Per registered platform and per jurisdiction: notices, removals, the removal rate
    (against the 87-90% Taiwan's centre reports), median hours from notice to removal,
    overdue, refused (by reason), escalated."""
    return await _answer(state, "takedowns", _json("takedowns", queries.takedowns))


@router.get("/compliance")
async def compliance(_: Staff, state: App) -> Response:
    """Per platform and legal regime: notices under a legal clock answered in time, late,
    overdue and unanswered, still within the clock, and the compliance rate."""
    return await _answer(state, "compliance", _json("compliance", queries.compliance))


@router.get("/reports")
async def reports(_: Staff, state: App) -> Response:
    """Art. 7 reports (the minor's, the known suspect's): due, overdue, filed in time, late."""
    return await _answer(state, "reports", _json("reports", queries.reports))


@router.get("/referrals")
async def referrals(_: Staff, state: App) -> Response:
    """Referral outcomes by status, by service and by partner organisation."""
    return await _answer(state, "referrals", _json("referrals", queries.referrals))


@router.get("/matches")
async def matches(_: Staff, state: App) -> Response:
    """Matches and sightings per platform organisation, and the platforms' verdicts."""
    return await _answer(state, "matches", _json("matches", queries.matches))


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

    async def rows(conn: AsyncConnection) -> dict[str, Any]:
        return {"period": period, "rows": await queries.periods(conn, period)}

    if format == "json":
        return await _answer(state, f"periods-{period}", _json(None, rows))

    async def as_csv(conn: AsyncConnection, _version: str) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=queries.PERIOD_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(await queries.periods(conn, period))
        return out.getvalue().encode()

    return Response(
        await state.answer(f"periods-{period}-csv", as_csv),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ncii-{period}s.csv"'},
    )
