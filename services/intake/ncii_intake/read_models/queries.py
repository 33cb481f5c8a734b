"""What intake's API reads from the ``cases`` table. Who sees which rows, and when a report is
late, are the domain's rules (``case_scope``, ``report_state``), not restated here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ncii_events.auth import Principal
from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_intake.domain import case_scope, report_state
from ncii_intake.read_models.schema import CASES


def _visible(principal: Principal) -> ColumnElement[bool]:
    scope = case_scope(principal)
    return true() if scope is None else CASES.c.organisation == scope


async def list_cases(
    engine: AsyncEngine,
    principal: Principal,
    *,
    status: str | None,
    limit: int,
    after: tuple[str, str] | None,
) -> list[dict[str, Any]]:
    """Newest first; ``after`` is the (opened_at, case_id) of the last row already seen."""
    query = select(CASES).where(_visible(principal))
    if status is not None:
        query = query.where(CASES.c.status == status)
    if after is not None:
        opened, case_id = after
        query = query.where(
            or_(
                CASES.c.opened_at < opened,
                and_(CASES.c.opened_at == opened, CASES.c.case_id < case_id),
            )
        )
    query = query.order_by(CASES.c.opened_at.desc(), CASES.c.case_id.desc()).limit(limit)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


@dataclass(frozen=True)
class VictimAccessRow:
    case_id: str
    resets: int
    """How often the victim's access was reset (the throttles' generation of the reference)."""
    pin_generation: int


async def victim_access(engine: AsyncEngine, reference: str) -> VictimAccessRow | None:
    """The case a reference names, with what the victim's access check needs: one query,
    the same for a known reference and an unknown one."""
    query = select(CASES.c.case_id, CASES.c.victim_access_resets, CASES.c.pin_generation).where(
        CASES.c.reference == reference
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return VictimAccessRow(str(row[0]), int(row[1]), int(row[2]))


async def mandatory_reports(
    engine: AsyncEngine, principal: Principal, now: datetime
) -> list[dict[str, Any]]:
    """Minors' cases whose report to the authority is not yet filed: due, or late."""
    query = (
        select(CASES)
        .where(_visible(principal))
        .where(CASES.c.report_due_at.is_not(None), CASES.c.report_filed_at.is_(None))
        .where(CASES.c.withdrawn_at.is_(None), CASES.c.erased_at.is_(None))
        .order_by(CASES.c.report_due_at)
    )
    async with engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(query)).mappings().all()]
    for row in rows:
        row["report_state"] = report_state(row["report_due_at"], row["report_filed_at"], now)
    return rows
