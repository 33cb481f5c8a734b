"""What the application and the routes read (one async function per need)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_takedown import domain
from ncii_takedown.read_models.schema import CASES, DELIVERIES, PLATFORMS, TAKEDOWNS


async def _first(engine: AsyncEngine, query: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(query)).first()


async def _all(engine: AsyncEngine, query: Any) -> Sequence[Any]:
    async with engine.connect() as conn:
        return (await conn.execute(query)).all()


async def platform(engine: AsyncEngine, platform_id: str) -> Any:
    return await _first(engine, select(PLATFORMS).where(PLATFORMS.c.platform_id == platform_id))


async def platforms(engine: AsyncEngine) -> Sequence[Any]:
    return await _all(engine, select(PLATFORMS).order_by(PLATFORMS.c.name_key))


async def authority_for(engine: AsyncEngine, regime: str) -> Any:
    """The authority registered for ``regime`` (the first registered, when several are)."""
    rows = await _all(
        engine,
        select(PLATFORMS)
        .where(PLATFORMS.c.kind == "authority")
        .order_by(PLATFORMS.c.registered_at, PLATFORMS.c.platform_id),
    )
    return next((r for r in rows if regime in r.regimes.split(",")), None)


async def case(engine: AsyncEngine, case_id: str) -> Any:
    return await _first(engine, select(CASES).where(CASES.c.case_id == case_id))


async def takedown(engine: AsyncEngine, takedown_id: str) -> Any:
    return await _first(engine, select(TAKEDOWNS).where(TAKEDOWNS.c.takedown_id == takedown_id))


async def notice_for_platform(engine: AsyncEngine, notice_id: str, organisation: str) -> Any:
    """The takedown of a notice, only when it is addressed to this platform organisation."""
    query = (
        select(TAKEDOWNS)
        .join(PLATFORMS, PLATFORMS.c.platform_id == TAKEDOWNS.c.platform_id)
        .where(TAKEDOWNS.c.notice_id == notice_id, PLATFORMS.c.api_organisation == organisation)
    )
    return await _first(engine, query)


async def open_notices(
    engine: AsyncEngine, organisation: str, limit: int, purpose: str | None = None
) -> Sequence[Any]:
    """Notices the platform has and has not settled, the earliest deadline first (only those
    asking for ``purpose`` when given)."""
    query = (
        select(TAKEDOWNS, PLATFORMS.c.name.label("platform_name"))
        .join(PLATFORMS, PLATFORMS.c.platform_id == TAKEDOWNS.c.platform_id)
        .where(
            PLATFORMS.c.api_organisation == organisation,
            TAKEDOWNS.c.status.in_(sorted(domain.WAITING_FOR_PLATFORM)),
        )
        .order_by(TAKEDOWNS.c.deadline_at, TAKEDOWNS.c.notice_id)
        .limit(limit)
    )
    if purpose is not None:
        query = query.where(TAKEDOWNS.c.purpose == purpose)
    return await _all(engine, query)


async def due_notices(engine: AsyncEngine, now_text: str, limit: int) -> Sequence[Any]:
    """Notices whose deadline passed while the platform had not settled them."""
    query = (
        select(TAKEDOWNS.c.takedown_id, TAKEDOWNS.c.case_id, TAKEDOWNS.c.notice_id)
        .where(
            TAKEDOWNS.c.status.in_(sorted(domain.CLOCK_RUNNING)),
            TAKEDOWNS.c.deadline_at <= now_text,
        )
        .order_by(TAKEDOWNS.c.deadline_at)
        .limit(limit)
    )
    return await _all(engine, query)


async def retention_due(engine: AsyncEngine, now_text: str, limit: int) -> Sequence[Any]:
    """Ended takedowns whose evidence's retention ran out and is not erased yet, the earliest
    first (decision 0032)."""
    query = (
        select(
            TAKEDOWNS.c.takedown_id,
            TAKEDOWNS.c.case_id,
            TAKEDOWNS.c.status,
            TAKEDOWNS.c.evidence,
            TAKEDOWNS.c.ended_at,
            TAKEDOWNS.c.erase_at,
        )
        .where(TAKEDOWNS.c.erase_at <= now_text, TAKEDOWNS.c.evidence_erased_at.is_(None))
        .order_by(TAKEDOWNS.c.erase_at, TAKEDOWNS.c.takedown_id)
        .limit(limit)
    )
    return await _all(engine, query)


async def overdue(engine: AsyncEngine, limit: int) -> Sequence[Any]:
    """Overdue notices not escalated yet, the earliest deadline first."""
    query = (
        select(TAKEDOWNS)
        .where(TAKEDOWNS.c.status == "overdue")
        .order_by(TAKEDOWNS.c.deadline_at, TAKEDOWNS.c.takedown_id)
        .limit(limit)
    )
    return await _all(engine, query)


async def overdue_counts(engine: AsyncEngine) -> list[tuple[str, int]]:
    """Notices past their deadline and not answered, by status (overdue, escalated)."""
    query = (
        select(TAKEDOWNS.c.status, func.count())
        .where(TAKEDOWNS.c.status.in_(("overdue", "escalated")))
        .group_by(TAKEDOWNS.c.status)
    )
    return [(str(status), int(n)) for status, n in await _all(engine, query)]


async def deliveries_due(engine: AsyncEngine, now_text: str, limit: int) -> Sequence[Any]:
    query = (
        select(DELIVERIES)
        .where(
            DELIVERIES.c.status == "pending",
            (DELIVERIES.c.next_attempt_at.is_(None)) | (DELIVERIES.c.next_attempt_at <= now_text),
        )
        .order_by(DELIVERIES.c.id)
        .limit(limit)
    )
    return await _all(engine, query)


async def never_tried(engine: AsyncEngine) -> int:
    query = select(func.count()).where(DELIVERIES.c.status == "pending", DELIVERIES.c.attempts == 0)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def deliveries(engine: AsyncEngine, status: str | None, limit: int) -> Sequence[Any]:
    query = select(DELIVERIES).order_by(DELIVERIES.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(DELIVERIES.c.status == status)
    return await _all(engine, query)


async def delivery(engine: AsyncEngine, delivery_id: str) -> Any:
    return await _first(engine, select(DELIVERIES).where(DELIVERIES.c.delivery_id == delivery_id))
