"""What the dashboard shows, read from the counts the projection keeps (``dash_counts``,
decision 0054) and folded here into the shapes the API returns: a view reads a few hundred
small rows, whatever the number of cases. Medians of time to removal are read by index (the
middle one or two values of the removals, ``OFFSET`` into an index in order), so they stay
exact without reading every removal. Every function takes a connection and returns plain
JSON values."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ncii_dashboard.read_models.counts import PLATFORM_FIELDS
from ncii_dashboard.read_models.schema import COUNTS, ERASURES, PLATFORMS, TAKEDOWNS

TAIWAN_REMOVAL_RATE = (0.87, 0.90)
"""The removal rate Taiwan's centre reports (87-90%), the page's reference band."""
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
REPORT_STATES = ("due", "overdue", "filed_in_time", "filed_late")
COMPLIANCE_FIELDS = (
    "notices",
    "answered_in_time",
    "answered_late",
    "overdue_open",
    "within_clock",
    "cancelled",
)

Counts = dict[str, dict[tuple[str, str], int]]
"""counter -> (key, sub) -> count."""


async def read_counts(conn: AsyncConnection, *groups: str) -> Counts:
    """The counters of these groups (``cases`` for ``cases.*``), or every counter."""
    c = COUNTS.c
    query = select(c.counter, c.key, c.sub, c.n)
    if groups:
        # a prefix as a range of the primary key ('/' follows '.')
        query = query.where(or_(*(and_(c.counter >= f"{g}.", c.counter < f"{g}/") for g in groups)))
    out: Counts = defaultdict(dict)
    for counter, key, sub, n in (await conn.execute(query)).all():
        out[counter][(key, sub)] = int(n)
    return out


def _counts(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Largest first, then by key."""
    return {str(key): int(n) for key, n in sorted(rows, key=lambda r: (-r[1], str(r[0])))}


def _keyed(counts: Counts, counter: str) -> dict[str, int]:
    """A counter without sub-keys, by key."""
    return _counts((key, n) for (key, _), n in counts.get(counter, {}).items())


async def _erased(conn: AsyncConnection) -> int:
    query = select(func.coalesce(func.sum(ERASURES.c.erased), 0))
    return int((await conn.execute(query)).scalar() or 0)


async def cases(conn: AsyncConnection, counts: Counts | None = None) -> dict[str, Any]:
    """Cases by status; the open ones by age group, category, organisation, intake channel and
    spread status; reported locations by the kind of service; erasures."""
    if counts is None:
        counts = await read_counts(conn, "cases", "open", "locations")
    by_status = _keyed(counts, "cases.status")
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "open": {
            "total": by_status.get("open", 0),
            "by_age_group": _keyed(counts, "open.age_group"),
            "by_category": _keyed(counts, "open.category"),
            "by_organisation": _keyed(counts, "open.organisation"),
            "by_intake_channel": _keyed(counts, "open.intake_channel"),
            "by_spread_status": _keyed(counts, "open.spread_status"),
        },
        "locations_by_channel_kind": _keyed(counts, "locations.channel_kind"),
        "erased": await _erased(conn),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _blank_platform() -> dict[str, Any]:
    entry: dict[str, Any] = dict.fromkeys(PLATFORM_FIELDS, 0)
    entry["refusals_by_reason"] = defaultdict(int)
    return entry


def _finish(entry: dict[str, Any], median: float | None) -> dict[str, Any]:
    entry["refusals_by_reason"] = dict(sorted(entry["refusals_by_reason"].items()))
    entry["removal_rate"] = _rate(entry["removed"], entry["removal_notices_sent"])
    entry["median_hours_to_removal"] = median
    return entry


async def _median(conn: AsyncConnection, n: int, *where: ColumnElement[bool]) -> float | None:
    """The median of the hours to removal of the ``n`` removals ``where`` selects: the middle
    value (or the two middle ones, averaged) read by index, as ``statistics.median`` of all
    of them would give."""
    if n <= 0:
        return None
    t = TAKEDOWNS.c
    query = (
        select(t.hours_to_end)
        .where(t.status == "removed", t.hours_to_end.is_not(None), *where)
        .order_by(t.hours_to_end)
        .offset((n - 1) // 2)
        .limit(1 if n % 2 else 2)
    )
    middle = [float(v) for v in (await conn.execute(query)).scalars()]
    return round(statistics.median(middle), 2) if middle else None


def _of_platforms(platform_ids: Iterable[str]) -> ColumnElement[bool]:
    """Takedowns of these platforms ("" standing for none)."""
    ids = sorted(set(platform_ids))
    t = TAKEDOWNS.c
    named = [p for p in ids if p]
    terms: list[ColumnElement[bool]] = [t.platform_id.in_(named)] if named else []
    if "" in ids:
        terms += [t.platform_id.is_(None), t.platform_id == ""]
    return or_(*terms)


async def takedowns(conn: AsyncConnection, counts: Counts | None = None) -> dict[str, Any]:
    """Per platform and per jurisdiction: notices, removals, the removal rate (against the
    87-90% Taiwan's centre reports), the median time from notice to removal, overdue, refused."""
    if counts is None:
        counts = await read_counts(conn, "takedowns")
    names = {
        r.platform_id: r
        for r in (
            await conn.execute(
                select(PLATFORMS.c.platform_id, PLATFORMS.c.name, PLATFORMS.c.jurisdiction)
            )
        ).all()
    }
    per: dict[str, dict[str, Any]] = {}
    for platform_id, _ in counts.get("takedowns.takedowns", {}):
        entry = per[platform_id] = _blank_platform()
        for field in PLATFORM_FIELDS:
            entry[field] = counts.get(f"takedowns.{field}", {}).get((platform_id, ""), 0)
    for (platform_id, reason), n in counts.get("takedowns.refusal", {}).items():
        per.setdefault(platform_id, _blank_platform())["refusals_by_reason"][reason] += n
    timed = {p: n for (p, _), n in counts.get("takedowns.timed_removals", {}).items()}
    platforms = []
    by_jurisdiction: dict[str, dict[str, Any]] = defaultdict(_blank_platform)
    members: dict[str, list[str]] = defaultdict(list)
    for platform_id, entry in sorted(per.items()):
        known = names.get(platform_id)
        jurisdiction = known.jurisdiction if known is not None else ""
        members[jurisdiction].append(platform_id)
        j = by_jurisdiction[jurisdiction]
        for key, value in entry.items():
            if key == "refusals_by_reason":
                for reason, n in value.items():
                    j[key][reason] += n
            else:
                j[key] += value
        where = _of_platforms([platform_id])
        median = await _median(conn, timed.get(platform_id, 0), where)
        platforms.append(
            {
                "platform_id": platform_id or None,
                "name": known.name if known is not None else None,
                "jurisdiction": jurisdiction or None,
                **_finish(entry, median),
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
    jurisdictions = []
    for k, v in sorted(by_jurisdiction.items()):
        n = sum(timed.get(p, 0) for p in members[k])
        median = await _median(conn, n, _of_platforms(members[k]))
        jurisdictions.append({"jurisdiction": k or None, **_finish(v, median)})
    return {
        "reference_removal_rate": {"low": TAIWAN_REMOVAL_RATE[0], "high": TAIWAN_REMOVAL_RATE[1]},
        "total": _finish(total, await _median(conn, sum(timed.values()))),
        "platforms": platforms,
        "by_jurisdiction": jurisdictions,
    }


async def compliance(conn: AsyncConnection, counts: Counts | None = None) -> dict[str, Any]:
    """Per platform and regime, the notices sent under a legal clock: answered (removed,
    fulfilled or refused) in time, answered late, overdue and unanswered, still within it."""
    if counts is None:
        counts = await read_counts(conn, "compliance")
    names = {
        r.platform_id: r.name
        for r in (await conn.execute(select(PLATFORMS.c.platform_id, PLATFORMS.c.name))).all()
    }
    scorecards = []
    for platform_id, regime in sorted(counts.get("compliance.notices", {})):
        card = {
            field: counts.get(f"compliance.{field}", {}).get((platform_id, regime), 0)
            for field in COMPLIANCE_FIELDS
        }
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


async def reports(conn: AsyncConnection, counts: Counts | None = None) -> dict[str, Any]:
    """Art. 7 reports by kind: due (within 24 hours), overdue (past it, not filed), filed in
    time, filed late."""
    if counts is None:
        counts = await read_counts(conn, "reports")
    kinds: dict[str, dict[str, int]] = {}
    for (kind, state), n in counts.get("reports.status", {}).items():
        kinds.setdefault(kind, dict.fromkeys(REPORT_STATES, 0))[state] += n
    total = {k: sum(e[k] for e in kinds.values()) for k in REPORT_STATES}
    return {"total": total, "by_kind": dict(sorted(kinds.items()))}


async def referrals(conn: AsyncConnection, counts: Counts | None = None) -> dict[str, Any]:
    """Referral outcomes by service and by partner organisation."""
    if counts is None:
        counts = await read_counts(conn, "referrals")

    def by(counter: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (key, status), n in sorted(counts.get(counter, {}).items()):
            out.setdefault(key, {})[status] = n
        return dict(sorted(out.items()))

    by_status: dict[str, int] = defaultdict(int)
    for (_, status), n in counts.get("referrals.service", {}).items():
        by_status[status] += n
    return {
        "by_status": _counts(by_status.items()),
        "by_service": by("referrals.service"),
        "by_partner": by("referrals.partner"),
    }


async def matches(conn: AsyncConnection, counts: Counts | None = None) -> dict[str, Any]:
    """Sightings reported by platforms: matches (first sightings) and every sighting counted,
    per platform organisation; the verdicts platforms gave."""
    if counts is None:
        counts = await read_counts(conn, "matches")
    per: dict[str, dict[str, int]] = {}
    sightings = counts.get("matches.sightings", {})
    for (platform, listed), n in counts.get("matches.count", {}).items():
        entry = per.setdefault(
            platform, {"matches": 0, "sightings": 0, "case_matches": 0, "list_matches": 0}
        )
        entry["matches"] += n
        entry["sightings"] += sightings.get((platform, listed), 0)
        entry["list_matches" if listed == "list" else "case_matches"] += n
    return {
        "matches": sum(e["matches"] for e in per.values()),
        "sightings": sum(e["sightings"] for e in per.values()),
        "by_platform": [{"platform": k, **v} for k, v in sorted(per.items())],
        "verdicts": _keyed(counts, "matches.verdict"),
    }


async def periods(
    conn: AsyncConnection, period: Period, counts: Counts | None = None
) -> list[dict[str, Any]]:
    """Counts per month (``YYYY-MM``) or year (``YYYY``) for the annual report, each by the time
    it happened (opened, sent, removed, due, filed, offered, seen, erased)."""
    if counts is None:
        counts = await read_counts(conn, "period")
    width = 7 if period == "month" else 4
    rows: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(PERIOD_COLUMNS[1:], 0))
    for column in PERIOD_COLUMNS[1:-1]:
        for (month, _), n in counts.get(f"period.{column}", {}).items():
            rows[month[:width]][column] += n
    for month, n in (await conn.execute(select(ERASURES.c.month, ERASURES.c.erased))).all():
        rows[month[:width]]["cases_erased"] += int(n)
    return [{"period": p, **rows[p]} for p in sorted(rows)]


async def summary(conn: AsyncConnection) -> dict[str, Any]:
    """Everything the page shows, in one read of the counts."""
    counts = await read_counts(
        conn,
        "cases",
        "open",
        "locations",
        "takedowns",
        "compliance",
        "reports",
        "referrals",
        "matches",
    )
    return {
        "cases": await cases(conn, counts),
        "takedowns": await takedowns(conn, counts),
        "compliance": await compliance(conn, counts),
        "reports": await reports(conn, counts),
        "referrals": await referrals(conn, counts),
        "matches": await matches(conn, counts),
    }
