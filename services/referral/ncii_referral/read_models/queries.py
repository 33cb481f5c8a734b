"""What the application and the routes read (one async function per need)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_referral.read_models.schema import (
    CASES,
    GUIDANCE,
    OFFENDERS,
    PARTNERS,
    REFERRALS,
    REPORTS,
)


async def _first(engine: AsyncEngine, query: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(query)).first()


async def _all(engine: AsyncEngine, query: Any) -> Sequence[Any]:
    async with engine.connect() as conn:
        return (await conn.execute(query)).all()


async def overdue_counts(engine: AsyncEngine) -> list[tuple[str, int]]:
    """Art. 7 reports past their due time and not filed, by kind."""
    query = (
        select(REPORTS.c.kind, func.count())
        .where(REPORTS.c.status == "overdue")
        .group_by(REPORTS.c.kind)
    )
    return [(str(kind), int(n)) for kind, n in await _all(engine, query)]


async def partner(engine: AsyncEngine, partner_id: str) -> Any:
    return await _first(engine, select(PARTNERS).where(PARTNERS.c.partner_id == partner_id))


async def partners(engine: AsyncEngine) -> Sequence[Any]:
    return await _all(engine, select(PARTNERS).order_by(PARTNERS.c.name, PARTNERS.c.partner_id))


async def case(engine: AsyncEngine, case_id: str) -> Any:
    return await _first(engine, select(CASES).where(CASES.c.case_id == case_id))


async def referral(engine: AsyncEngine, referral_id: str) -> Any:
    return await _first(engine, select(REFERRALS).where(REFERRALS.c.referral_id == referral_id))


async def case_referrals(engine: AsyncEngine, case_id: str) -> Sequence[Any]:
    query = (
        select(REFERRALS)
        .where(REFERRALS.c.case_id == case_id)
        .order_by(REFERRALS.c.offered_at, REFERRALS.c.referral_id)
    )
    return await _all(engine, query)


async def referrals_for(engine: AsyncEngine, organisation: str, limit: int) -> Sequence[Any]:
    """The referrals addressed to a partner organisation, the newest first."""
    query = (
        select(REFERRALS)
        .where(REFERRALS.c.partner_organisation == organisation)
        .order_by(REFERRALS.c.offered_at.desc(), REFERRALS.c.referral_id)
        .limit(limit)
    )
    return await _all(engine, query)


async def report(engine: AsyncEngine, report_id: str) -> Any:
    return await _first(engine, select(REPORTS).where(REPORTS.c.report_id == report_id))


async def case_reports(engine: AsyncEngine, case_id: str) -> Sequence[Any]:
    query = select(REPORTS).where(REPORTS.c.case_id == case_id).order_by(REPORTS.c.due_at)
    return await _all(engine, query)


async def past_due(
    engine: AsyncEngine, now_text: str, limit: int, after: tuple[str, str] | None = None
) -> Sequence[Any]:
    """Reports still due whose 24 hours have passed (strictly: one filed at the instant is in
    time), the earliest first; keyset paged on (due_at, report_id)."""
    query = select(REPORTS.c.report_id, REPORTS.c.case_id, REPORTS.c.kind, REPORTS.c.due_at).where(
        REPORTS.c.status == "due", REPORTS.c.due_at < now_text
    )
    if after is not None:
        query = query.where(
            (REPORTS.c.due_at > after[0])
            | ((REPORTS.c.due_at == after[0]) & (REPORTS.c.report_id > after[1]))
        )
    query = query.order_by(REPORTS.c.due_at, REPORTS.c.report_id).limit(limit)
    return await _all(engine, query)


async def open_reports(
    engine: AsyncEngine, status: str | None, after: tuple[str, str] | None, limit: int
) -> Sequence[Any]:
    """The staff view: reports not filed (due, or overdue), the earliest due first; keyset
    paged on (due_at, report_id). Each status is one range of the index on (status, due_at,
    report_id) read in order up to ``limit`` rows; both are merged here (``status IN (...)``
    ordered by due time made the database sort every open report: decision 36)."""
    statuses = ("due", "overdue") if status is None else (status,)
    rows: list[Any] = []
    async with engine.connect() as conn:
        for one in statuses:
            query = select(REPORTS).where(REPORTS.c.status == one)
            if after is not None:
                query = query.where(
                    (REPORTS.c.due_at > after[0])
                    | ((REPORTS.c.due_at == after[0]) & (REPORTS.c.report_id > after[1]))
                )
            query = query.order_by(REPORTS.c.due_at, REPORTS.c.report_id).limit(limit)
            rows += (await conn.execute(query)).all()
    rows.sort(key=lambda r: (r.due_at, r.report_id))
    return rows[:limit]


async def ticked(engine: AsyncEngine, case_id: str) -> dict[str, str]:
    rows = await _all(engine, select(GUIDANCE).where(GUIDANCE.c.case_id == case_id))
    return {r.item: r.ticked_at for r in rows}


async def offender_known(engine: AsyncEngine, case_id: str) -> bool:
    """Whether intake's latest offender details say the offender is known."""
    row = await _first(engine, select(OFFENDERS.c.known).where(OFFENDERS.c.case_id == case_id))
    return bool(row[0]) if row is not None else False
