"""The counts the dashboard shows, kept by the projection itself (decision 0054).

Every count is a function of the rows of the dashboard's tables: each row *contributes* to a
few counters (a case row to ``cases.status``/its status, and while open to its age group,
organisation...; a takedown row to its platform's ``takedowns.removed``...), and a counter's
value is the sum of the contributions of the rows there are. So the fold, which knows each
row it touches before and after the batch, moves a counter by the difference (after minus
before) in the batch's own transaction, and ``dash_counts`` always equals a recount of the
rows (``recount``): a rebuild that writes the same rows writes the same counts, whatever the
batch boundaries (integer sums; a counter that reaches 0 is deleted, so none is left at 0).

A view is then a read of a few hundred small rows instead of a scan of every case. Counters
hold codes, ids, months and registered names (organisation, partner organisation, platform
organisation): nothing a row of the tables does not already hold, and no case id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ncii_dashboard.read_models.schema import (
    CASE_CATEGORIES,
    CASES,
    COUNTS,
    LOCATIONS,
    MATCHES,
    REFERRALS,
    REPORTS,
    TAKEDOWNS,
)

Key = tuple[str, str, str]
"""(counter, key, sub): ``("takedowns.removed", platform_id, "")``."""
Row = Mapping[Any, Any]
ENDED = ("removed", "fulfilled", "refused", "cancelled")
ANSWERED = ("removed", "fulfilled", "refused")
PLATFORM_FIELDS = (
    "takedowns",
    "notices_sent",
    "removal_notices_sent",
    "removed",
    "fulfilled",
    "refused",
    "cancelled",
    "open",
    "overdue_open",
    "ever_overdue",
    "escalated",
)
"""A platform's takedown counters (``takedowns.<field>``, keyed by platform id)."""


def _month(at: str | None) -> str | None:
    return at[:7] if at else None


def _period(column: str, at: str | None, amount: int = 1) -> Iterator[tuple[Key, int]]:
    """One fact in the month it happened (``YYYY-MM`` of the stored RFC 3339 text); years are
    the sums of their months."""
    month = _month(at)
    if month is not None:
        yield (f"period.{column}", month, ""), amount


def case(row: Row, categories: Iterable[str]) -> Iterator[tuple[Key, int]]:
    """A case (its row and its legal categories)."""
    status = row["status"]
    yield ("cases.status", status, ""), 1
    if status == "open":
        for counter in ("age_group", "organisation", "intake_channel", "spread_status"):
            yield (f"open.{counter}", row[counter], ""), 1
        for category in categories:
            yield ("open.category", category, ""), 1
    yield from _period("cases_opened", row["opened_at"])
    if row["age_group"] == "minor":
        yield from _period("minors_opened", row["opened_at"])
    if status == "closed":
        yield from _period("cases_closed", row["closed_at"])


def location(row: Row) -> Iterator[tuple[Key, int]]:
    yield ("locations.channel_kind", row["channel_kind"], ""), 1


def takedown(row: Row) -> Iterator[tuple[Key, int]]:
    """A takedown: its platform's counts, its legal clock's scorecard, its periods."""
    p, status = row["platform_id"] or "", row["status"]
    sent = row["sent_at"] is not None

    def platform(field: str) -> tuple[Key, int]:
        return (f"takedowns.{field}", p, ""), 1

    yield platform("takedowns")
    if sent:
        yield platform("notices_sent")
        if row["purpose"] == "removal" and status != "cancelled":
            yield platform("removal_notices_sent")
    if status in ENDED:
        yield platform(status)
    else:
        yield platform("open")
        if row["overdue"]:
            yield platform("overdue_open")
    if row["overdue"]:
        yield platform("ever_overdue")
    if row["escalated"]:
        yield platform("escalated")
    if status == "refused":
        yield ("takedowns.refusal", p, row["refusal_reason"] or "other"), 1
    if status == "removed" and row["hours_to_end"] is not None:
        # how many values the median of this platform is taken over (read by index)
        yield platform("timed_removals")
    if row["legal"] is True and sent:
        regime = row["deadline_regime"] or ""
        if status in ANSWERED:
            field = "answered_in_time" if row["in_time"] else "answered_late"
        elif status in ENDED:
            field = "cancelled"
        elif row["overdue"]:
            field = "overdue_open"
        else:
            field = "within_clock"
        yield ("compliance.notices", p, regime), 1
        yield (f"compliance.{field}", p, regime), 1
    yield from _period("takedowns_opened", row["opened_at"])
    yield from _period("notices_sent", row["sent_at"])
    if status == "removed":
        yield from _period("content_removed", row["ended_at"])
    if status == "refused":
        yield from _period("takedowns_refused", row["ended_at"])
    if row["in_time"] is False and row["legal"] is True:
        yield from _period("answered_late", row["ended_at"])


def report(row: Row) -> Iterator[tuple[Key, int]]:
    status = row["status"]
    if status == "filed":
        status = "filed_late" if row["late"] else "filed_in_time"
    yield ("reports.status", row["kind"], status), 1
    yield from _period("reports_due", row["due_at"])
    yield from _period("reports_filed", row["filed_at"])
    if row["late"] is True:
        yield from _period("reports_filed_late", row["filed_at"])


def referral(row: Row) -> Iterator[tuple[Key, int]]:
    yield ("referrals.service", row["service"], row["status"]), 1
    yield ("referrals.partner", row["partner_organisation"], row["status"]), 1
    yield from _period("referrals_offered", row["offered_at"])
    if row["status"] == "completed":
        yield from _period("referrals_completed", row["offered_at"])


def match(row: Row) -> Iterator[tuple[Key, int]]:
    listed = "list" if row["case_id"] is None else "case"
    sightings = int(row["sightings"] or 0)
    yield ("matches.count", row["platform"], listed), 1
    yield ("matches.sightings", row["platform"], listed), sightings
    if row["verdict"] is not None:
        yield ("matches.verdict", row["verdict"], ""), 1
    yield from _period("matches", row["seen_at"])
    yield from _period("sightings", row["seen_at"], sightings)


CONTRIBUTIONS = {
    "dash_locations": location,
    "dash_takedowns": takedown,
    "dash_reports": report,
    "dash_referrals": referral,
    "dash_matches": match,
}
"""How each row of a table besides ``dash_cases`` contributes (a case also needs its
categories: ``case``)."""
CASE_ROW_TABLES = (LOCATIONS, TAKEDOWNS, REPORTS, REFERRALS, MATCHES)


class Tally:
    """Counter moves of one batch."""

    def __init__(self) -> None:
        self.delta: dict[Key, int] = defaultdict(int)

    def add(self, contributions: Iterable[tuple[Key, int]], sign: int = 1) -> None:
        delta = self.delta
        for key, amount in contributions:
            delta[key] += sign * amount

    def write(self, conn: Connection) -> None:
        """Move the counters in the batch's transaction; delete those that reach 0 (so the
        table equals a recount, which has no zero). Keys in order: two projections moving the
        same counters (sightings) lock them in the same order on PostgreSQL."""
        moves = sorted((k, n) for k, n in self.delta.items() if n)
        if not moves:
            return
        base = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(COUNTS)
        conn.execute(
            base.on_conflict_do_update(
                index_elements=["counter", "key", "sub"],
                set_={"n": COUNTS.c.n + base.excluded.n},
            ),
            [{"counter": c, "key": k, "sub": s, "n": n} for (c, k, s), n in moves],
        )
        lowered = [{"c": c, "k": k, "s": s} for (c, k, s), n in moves if n < 0]
        if lowered:
            conn.execute(
                delete(COUNTS).where(
                    COUNTS.c.counter == bindparam("c"),
                    COUNTS.c.key == bindparam("k"),
                    COUNTS.c.sub == bindparam("s"),
                    COUNTS.c.n == 0,
                ),
                lowered,
            )


def categories_of(conn: Connection, case_ids: list[str]) -> dict[str, list[str]]:
    """The stored categories of these cases."""
    found: dict[str, list[str]] = defaultdict(list)
    for chunk in _chunks(sorted(case_ids)):
        query = select(CASE_CATEGORIES).where(CASE_CATEGORIES.c.case_id.in_(chunk))
        for case_id, category in conn.execute(query).all():
            found[case_id].append(category)
    return found


def recount(conn: Connection) -> dict[Key, int]:
    """Every counter, counted again from the rows (the migration fills the table with it; the
    tests compare it with what the fold kept)."""
    tally = Tally()
    categories: dict[str, list[str]] = defaultdict(list)
    for case_id, category in conn.execute(select(CASE_CATEGORIES)).all():
        categories[case_id].append(category)
    for row in conn.execute(select(CASES)).mappings():
        tally.add(case(row, categories.get(row["case_id"], ())))
    for table in CASE_ROW_TABLES:
        contribute = CONTRIBUTIONS[table.name]
        for row in conn.execute(select(table)).mappings():
            tally.add(contribute(row))
    return {k: n for k, n in sorted(tally.delta.items()) if n}


def stored(conn: Connection) -> dict[Key, int]:
    """The counters as the table holds them."""
    query = select(COUNTS.c.counter, COUNTS.c.key, COUNTS.c.sub, COUNTS.c.n)
    return {(c, k, s): int(n) for c, k, s, n in conn.execute(query).all()}


def fill(conn: Connection) -> None:
    """Replace the counters with a recount of the rows."""
    conn.execute(delete(COUNTS))
    rows = [{"counter": c, "key": k, "sub": s, "n": n} for (c, k, s), n in recount(conn).items()]
    if rows:
        conn.execute(insert(COUNTS), rows)


def _chunks(keys: list[str], size: int = 500) -> list[list[str]]:
    return [keys[i : i + size] for i in range(0, len(keys), size)]
