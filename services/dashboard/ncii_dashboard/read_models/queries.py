"""What the dashboard shows, computed from its tables: counts grouped in SQL, folded here into
the shapes the API returns. Every function takes a connection and returns plain JSON values."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ncii_dashboard.read_models.schema import (
    CASE_CATEGORIES,
    CASES,
    ERASURES,
    LOCATIONS,
    MATCHES,
    PLATFORMS,
    REFERRALS,
    REPORTS,
    TAKEDOWNS,
)

TAIWAN_REMOVAL_RATE = (0.87, 0.90)
"""The removal rate Taiwan's centre reports (87-90%), the page's reference band."""
ENDED = ("removed", "fulfilled", "refused", "cancelled")
Period = Literal["month", "year"]
PERIOD_COLUMNS = (
    "period",
    "cases_opened",
    "minors_opened",
    "cases_closed",
    "takedowns_opened",
    "notices_sent",
    "content_removed",
    "takedowns_refused",
    "answered_late",
    "reports_due",
    "reports_filed",
    "reports_filed_late",
    "referrals_offered",
    "referrals_completed",
    "matches",
    "sightings",
    "cases_erased",
)


def _counts(rows: Iterable[Any]) -> dict[str, int]:
    return {str(key): int(n) for key, n in sorted(rows, key=lambda r: (-r[1], str(r[0])))}


async def _grouped(
    conn: AsyncConnection, column: Any, *where: ColumnElement[bool]
) -> dict[str, int]:
    query = select(column, func.count()).select_from(column.table).group_by(column)
    if where:
        query = query.where(*where)
    return _counts((await conn.execute(query)).all())


async def cases(conn: AsyncConnection) -> dict[str, Any]:
    """Cases by status; the open ones by age group, category, organisation, intake channel and
    spread status; reported locations by the kind of service; erasures."""
    is_open = CASES.c.status == "open"
    category = (
        select(CASE_CATEGORIES.c.category, func.count())
        .select_from(CASE_CATEGORIES.join(CASES, CASES.c.case_id == CASE_CATEGORIES.c.case_id))
        .where(is_open)
        .group_by(CASE_CATEGORIES.c.category)
    )
    erased = (await conn.execute(select(func.coalesce(func.sum(ERASURES.c.erased), 0)))).scalar()
    by_status = await _grouped(conn, CASES.c.status)
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "open": {
            "total": by_status.get("open", 0),
            "by_age_group": await _grouped(conn, CASES.c.age_group, is_open),
            "by_category": _counts((await conn.execute(category)).all()),
            "by_organisation": await _grouped(conn, CASES.c.organisation, is_open),
            "by_intake_channel": await _grouped(conn, CASES.c.intake_channel, is_open),
            "by_spread_status": await _grouped(conn, CASES.c.spread_status, is_open),
        },
        "locations_by_channel_kind": await _grouped(conn, LOCATIONS.c.channel_kind),
        "erased": int(erased or 0),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _blank_platform() -> dict[str, Any]:
    return {
        "takedowns": 0,
        "notices_sent": 0,
        "removal_notices_sent": 0,
        "removed": 0,
        "fulfilled": 0,
        "refused": 0,
        "cancelled": 0,
        "open": 0,
        "overdue_open": 0,
        "ever_overdue": 0,
        "escalated": 0,
        "refusals_by_reason": defaultdict(int),
    }


def _finish(
    entry: dict[str, Any], hours: list[float], legal_hours: list[float] | None = None
) -> dict[str, Any]:
    entry["refusals_by_reason"] = dict(sorted(entry["refusals_by_reason"].items()))
    entry["removal_rate"] = _rate(entry["removed"], entry["removal_notices_sent"])
    entry["median_hours_to_removal"] = _median(hours)
    return entry


async def takedowns(conn: AsyncConnection) -> dict[str, Any]:
    """Per platform and per jurisdiction: notices, removals, the removal rate (against the
    87-90% Taiwan's centre reports), the median time from notice to removal, overdue, refused."""
    names = {
        r.platform_id: r
        for r in (
            await conn.execute(
                select(PLATFORMS.c.platform_id, PLATFORMS.c.name, PLATFORMS.c.jurisdiction)
            )
        ).all()
    }
    t = TAKEDOWNS.c
    query = select(
        t.platform_id,
        t.purpose,
        t.status,
        t.sent_at.is_not(None).label("sent"),
        t.overdue,
        t.escalated,
        t.refusal_reason,
        func.count().label("n"),
    ).group_by(t.platform_id, t.purpose, t.status, "sent", t.overdue, t.escalated, t.refusal_reason)
    per: dict[str, dict[str, Any]] = defaultdict(_blank_platform)
    for r in (await conn.execute(query)).all():
        p = per[r.platform_id or ""]
        n = int(r.n)
        p["takedowns"] += n
        if r.sent:
            p["notices_sent"] += n
            if r.purpose == "removal" and r.status != "cancelled":
                p["removal_notices_sent"] += n
        if r.status in ("removed", "fulfilled", "refused", "cancelled"):
            p[r.status] += n
        else:
            p["open"] += n
            if r.overdue:
                p["overdue_open"] += n
        if r.overdue:
            p["ever_overdue"] += n
        if r.escalated:
            p["escalated"] += n
        if r.status == "refused":
            p["refusals_by_reason"][r.refusal_reason or "other"] += n
    hours: dict[str, list[float]] = defaultdict(list)
    removed = select(t.platform_id, t.hours_to_end).where(
        t.status == "removed", t.hours_to_end.is_not(None)
    )
    for r in (await conn.execute(removed)).all():
        hours[r.platform_id or ""].append(float(r.hours_to_end))
    platforms = []
    by_jurisdiction: dict[str, dict[str, Any]] = defaultdict(_blank_platform)
    jurisdiction_hours: dict[str, list[float]] = defaultdict(list)
    for platform_id, entry in sorted(per.items()):
        known = names.get(platform_id)
        jurisdiction = known.jurisdiction if known is not None else ""
        j = by_jurisdiction[jurisdiction]
        for key, value in entry.items():
            if key == "refusals_by_reason":
                for reason, n in value.items():
                    j[key][reason] += n
            else:
                j[key] += value
        jurisdiction_hours[jurisdiction].extend(hours[platform_id])
        platforms.append(
            {
                "platform_id": platform_id or None,
                "name": known.name if known is not None else None,
                "jurisdiction": jurisdiction or None,
                **_finish(entry, hours[platform_id]),
            }
        )
    platforms.sort(key=lambda p: (-p["takedowns"], p["name"] or "", p["platform_id"] or ""))
    total = _blank_platform()
    for entry in by_jurisdiction.values():
        for key, value in entry.items():
            if key == "refusals_by_reason":
                for reason, n in value.items():
                    total[key][reason] += n
            else:
                total[key] += value
    all_hours = [h for hs in hours.values() for h in hs]
    return {
        "reference_removal_rate": {"low": TAIWAN_REMOVAL_RATE[0], "high": TAIWAN_REMOVAL_RATE[1]},
        "total": _finish(total, all_hours),
        "platforms": platforms,
        "by_jurisdiction": [
            {"jurisdiction": k or None, **_finish(v, jurisdiction_hours[k])}
            for k, v in sorted(by_jurisdiction.items())
        ],
    }


async def compliance(conn: AsyncConnection) -> dict[str, Any]:
    """Per platform and regime, the notices sent under a legal clock: answered (removed,
    fulfilled or refused) in time, answered late, overdue and unanswered, still within it."""
    t = TAKEDOWNS.c
    names = {
        r.platform_id: r.name
        for r in (await conn.execute(select(PLATFORMS.c.platform_id, PLATFORMS.c.name))).all()
    }
    answered = t.status.in_(("removed", "fulfilled", "refused"))
    query = (
        select(
            t.platform_id,
            t.deadline_regime,
            answered.label("answered"),
            t.in_time,
            t.status.in_(ENDED).label("ended"),
            t.overdue,
            func.count().label("n"),
        )
        .where(t.legal.is_(True), t.sent_at.is_not(None))
        .group_by(t.platform_id, t.deadline_regime, "answered", t.in_time, "ended", t.overdue)
    )
    cards: dict[tuple[str, str], dict[str, Any]] = {}
    for r in (await conn.execute(query)).all():
        key = (r.platform_id or "", r.deadline_regime or "")
        card = cards.setdefault(
            key,
            {
                "notices": 0,
                "answered_in_time": 0,
                "answered_late": 0,
                "overdue_open": 0,
                "within_clock": 0,
                "cancelled": 0,
            },
        )
        n = int(r.n)
        card["notices"] += n
        if r.answered:
            card["answered_in_time" if r.in_time else "answered_late"] += n
        elif r.ended:
            card["cancelled"] += n
        elif r.overdue:
            card["overdue_open"] += n
        else:
            card["within_clock"] += n
    scorecards = []
    for (platform_id, regime), card in sorted(cards.items()):
        judged = card["answered_in_time"] + card["answered_late"] + card["overdue_open"]
        scorecards.append(
            {
                "platform_id": platform_id or None,
                "name": names.get(platform_id),
                "regime": regime or None,
                **card,
                "compliance_rate": _rate(card["answered_in_time"], judged),
            }
        )
    return {"scorecards": scorecards}


async def reports(conn: AsyncConnection) -> dict[str, Any]:
    """Art. 7 reports by kind: due (within 24 hours), overdue (past it, not filed), filed in
    time, filed late."""
    r = REPORTS.c
    query = select(r.kind, r.status, r.late, func.count()).group_by(r.kind, r.status, r.late)
    kinds: dict[str, dict[str, int]] = {}
    for kind, status, late, n in (await conn.execute(query)).all():
        entry = kinds.setdefault(
            kind, {"due": 0, "overdue": 0, "filed_in_time": 0, "filed_late": 0}
        )
        if status == "filed":
            entry["filed_late" if late else "filed_in_time"] += int(n)
        else:
            entry[status] += int(n)
    total = {
        k: sum(e[k] for e in kinds.values())
        for k in ("due", "overdue", "filed_in_time", "filed_late")
    }
    return {"total": total, "by_kind": dict(sorted(kinds.items()))}


async def referrals(conn: AsyncConnection) -> dict[str, Any]:
    """Referral outcomes by service and by partner organisation."""
    r = REFERRALS.c

    async def by(column: Any) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        query = select(column, r.status, func.count()).group_by(column, r.status)
        for key, status, n in (await conn.execute(query)).all():
            out.setdefault(key, {})[status] = int(n)
        return dict(sorted(out.items()))

    return {
        "by_status": await _grouped(conn, r.status),
        "by_service": await by(r.service),
        "by_partner": await by(r.partner_organisation),
    }


async def matches(conn: AsyncConnection) -> dict[str, Any]:
    """Sightings reported by platforms: matches (first sightings) and every sighting counted,
    per platform organisation; the verdicts platforms gave."""
    m = MATCHES.c
    query = select(
        m.platform,
        m.case_id.is_(None).label("listed"),
        func.count().label("matches"),
        func.sum(m.sightings).label("sightings"),
    ).group_by(m.platform, "listed")
    per: dict[str, dict[str, int]] = {}
    for r in (await conn.execute(query)).all():
        entry = per.setdefault(
            r.platform, {"matches": 0, "sightings": 0, "case_matches": 0, "list_matches": 0}
        )
        entry["matches"] += int(r.matches)
        entry["sightings"] += int(r.sightings or 0)
        entry["list_matches" if r.listed else "case_matches"] += int(r.matches)
    return {
        "matches": sum(e["matches"] for e in per.values()),
        "sightings": sum(e["sightings"] for e in per.values()),
        "by_platform": [{"platform": k, **v} for k, v in sorted(per.items())],
        "verdicts": await _grouped(conn, m.verdict, m.verdict.is_not(None)),
    }


async def periods(conn: AsyncConnection, period: Period) -> list[dict[str, Any]]:
    """Counts per month (``YYYY-MM``) or year (``YYYY``) for the annual report, each by the time
    it happened (opened, sent, removed, due, filed, offered, seen, erased)."""
    width = 7 if period == "month" else 4
    rows: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(PERIOD_COLUMNS[1:], 0))

    async def add(name: str, column: Any, *where: ColumnElement[bool], value: Any = None) -> None:
        key = func.substr(column, 1, width).label("p")
        amount = func.count() if value is None else func.coalesce(func.sum(value), 0)
        query = select(key, amount).where(column.is_not(None), *where).group_by(key)
        for p, n in (await conn.execute(query)).all():
            rows[p][name] += int(n)

    c, t, r, f, m = CASES.c, TAKEDOWNS.c, REPORTS.c, REFERRALS.c, MATCHES.c
    await add("cases_opened", c.opened_at)
    await add("minors_opened", c.opened_at, c.age_group == "minor")
    await add("cases_closed", c.closed_at, c.status == "closed")
    await add("takedowns_opened", t.opened_at)
    await add("notices_sent", t.sent_at)
    await add("content_removed", t.ended_at, t.status == "removed")
    await add("takedowns_refused", t.ended_at, t.status == "refused")
    await add("answered_late", t.ended_at, and_(t.in_time.is_(False), t.legal.is_(True)))
    await add("reports_due", r.due_at)
    await add("reports_filed", r.filed_at)
    await add("reports_filed_late", r.filed_at, r.late.is_(True))
    await add("referrals_offered", f.offered_at)
    await add("referrals_completed", f.offered_at, f.status == "completed")
    await add("matches", m.seen_at)
    await add("sightings", m.seen_at, value=m.sightings)
    await add("cases_erased", ERASURES.c.month, value=ERASURES.c.erased)
    return [{"period": p, **rows[p]} for p in sorted(rows)]


async def summary(conn: AsyncConnection) -> dict[str, Any]:
    """Everything the page shows, in one read."""
    return {
        "cases": await cases(conn),
        "takedowns": await takedowns(conn),
        "compliance": await compliance(conn),
        "reports": await reports(conn),
        "referrals": await referrals(conn),
        "matches": await matches(conn),
    }
