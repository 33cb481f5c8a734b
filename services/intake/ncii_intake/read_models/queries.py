"""What intake's API reads from the ``cases`` table. Who sees which rows is the domain's rule
(``case_scope``), not restated here."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ncii_events.auth import PRINCIPALS, Principal
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_intake.domain import case_scope
from ncii_intake.read_models.reader import read_rows
from ncii_intake.read_models.schema import CASES


def _visible(principal: Principal) -> ColumnElement[bool]:
    scope = case_scope(principal)
    return true() if scope is None else CASES.c.organisation == scope


@dataclass(frozen=True)
class CaseFilter:
    """What a case worker looks a case up by (decision 35); None: any."""

    status: str | None = None
    reference: str | None = None
    """Normalised (``normalise_case_reference``): as read aloud, typed any way."""
    age_group: str | None = None
    category: str | None = None
    assignee: str | None = None
    opened_from: str | None = None
    opened_before: str | None = None
    updated_from: str | None = None
    updated_before: str | None = None

    @property
    def by_updated(self) -> bool:
        """Filtered on update time: the list is ordered by it too (an index range, not a scan
        of every newer case)."""
        return self.updated_from is not None or self.updated_before is not None


SUMMARY_COLUMNS = (
    "case_id",
    "reference",
    "status",
    "age_group",
    "harm_categories",
    "spread_status",
    "intake_channel",
    "learned_at",
    "opened_at",
    "updated_at",
    "assignee",
    "locations",
    "hashes",
)
"""What a case list shows of each case (``views.summary_item``): nothing else is read."""


FILTERS = (
    "status",
    "reference",
    "age_group",
    "category",
    "assignee",
    "opened_from",
    "opened_before",
    "updated_from",
    "updated_before",
)


@dataclass(frozen=True)
class PageShape:
    """Which parts a page's query has: the statement is built (and compiled) once per shape,
    and each request only binds its values (building a ``Select`` per request cost more CPU
    than SQLite's work for it)."""

    scoped: bool
    filters: tuple[str, ...]
    by_updated: bool
    after: bool


@functools.lru_cache(maxsize=512)
def page_statement(shape: PageShape) -> Select[Any]:
    """The page's query: newest first (by update time when filtered on it: ``by_updated``);
    ``after_at``/``after_id``: the (time, case_id) of the last row already seen."""
    c = CASES.c
    query = select(*(c[name] for name in SUMMARY_COLUMNS))
    if shape.scoped:
        query = query.where(c.organisation == bindparam("organisation"))
    conditions = {
        "status": lambda: c.status == bindparam("status"),
        "reference": lambda: c.reference == bindparam("reference"),
        "age_group": lambda: c.age_group == bindparam("age_group"),
        # a JSON list of closed values: the quoted name matches one element exactly
        "category": lambda: c.harm_categories.contains(bindparam("category")),
        "assignee": lambda: c.assignee == bindparam("assignee"),
        "opened_from": lambda: c.opened_at >= bindparam("opened_from"),
        "opened_before": lambda: c.opened_at < bindparam("opened_before"),
        "updated_from": lambda: c.updated_at >= bindparam("updated_from"),
        "updated_before": lambda: c.updated_at < bindparam("updated_before"),
    }
    for name in shape.filters:
        query = query.where(conditions[name]())
    at = c.updated_at if shape.by_updated else c.opened_at
    if shape.after:
        last: BindParameter[str] = bindparam("after_at", type_=String)
        query = query.where(or_(at < last, and_(at == last, c.case_id < bindparam("after_id"))))
    return query.order_by(at.desc(), c.case_id.desc()).limit(bindparam("limit", type_=Integer))


def page_values(
    principal: Principal, *, limit: int, after: tuple[str, str] | None, where: CaseFilter
) -> tuple[PageShape, dict[str, Any]]:
    """The page's shape and the values its statement binds."""
    scope = case_scope(principal)
    values: dict[str, Any] = {"limit": limit}
    if scope is not None:
        values["organisation"] = scope
    present = tuple(name for name in FILTERS if getattr(where, name) is not None)
    for name in present:
        value = getattr(where, name)
        values[name] = f'"{value}"' if name == "category" else value
    if after is not None:
        values["after_at"], values["after_id"] = after
    shape = PageShape(scope is not None, present, where.by_updated, after is not None)
    return shape, values


async def list_cases(
    engine: AsyncEngine,
    principal: Principal,
    *,
    status: str | None = None,
    limit: int,
    after: tuple[str, str] | None,
    where: CaseFilter | None = None,
) -> list[dict[str, Any]]:
    """A page of the case list (``page_statement``), as ``SUMMARY_COLUMNS`` per case, read in
    one step (``reader.read_rows``)."""
    shape, values = page_values(
        principal, limit=limit, after=after, where=where or CaseFilter(status=status)
    )
    return await read_rows(engine, page_statement(shape), values)


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


@dataclass(frozen=True)
class Worker:
    organisation: str
    role: str


async def principal(engine: AsyncEngine, principal_id: str) -> Worker | None:
    """A principal that is not revoked (an assignee must be one)."""
    query = select(PRINCIPALS.c.organisation, PRINCIPALS.c.role).where(
        PRINCIPALS.c.principal_id == principal_id, PRINCIPALS.c.revoked.is_(False)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return Worker(str(row[0]), str(row[1])) if row is not None else None


async def caseload(engine: AsyncEngine, principal: Principal) -> list[dict[str, Any]]:
    """Open cases (not closed, withdrawn or erased) per assignee, unassigned ones as None."""
    query = (
        select(CASES.c.assignee, func.count().label("open_cases"))
        .where(_visible(principal))
        .where(CASES.c.status.in_(("awaiting_statement", "active")))
        .group_by(CASES.c.assignee)
        .order_by(func.count().desc())
    )
    async with engine.connect() as conn:
        return [
            {"assignee": r[0], "open_cases": int(r[1])} for r in (await conn.execute(query)).all()
        ]


async def erasures_due(engine: AsyncEngine, now: str, limit: int = 50) -> list[str]:
    """Cases whose victim asked for erasure and whose delay has passed (not erased yet)."""
    query = (
        select(CASES.c.case_id)
        .where(CASES.c.erasure_due_at <= now, CASES.c.erased_at.is_(None))
        .order_by(CASES.c.erasure_due_at)
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [str(r[0]) for r in (await conn.execute(query)).all()]
