"""Intake's read model: one row per case, no personal data (that stays encrypted in the log and
is decrypted only when an authorised reader opens the case)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from ncii_contracts.intake import (
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    HashesSubmitted,
    LocationReported,
    MandatoryReportFiled,
    NonConsentRecorded,
)
from ncii_events.auth import Principal
from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_intake.domain import MANDATORY_REPORT_HOURS, format_time, parse_time

REPORT_WINDOW = timedelta(hours=MANDATORY_REPORT_HOURS)
METADATA = MetaData()
CASES = Table(
    "cases",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("organisation", String(100), nullable=False, index=True),
    Column("reference", String(20), nullable=False, unique=True),
    Column("age_group", String(10), nullable=False),
    Column("status", String(30), nullable=False, index=True),
    Column("harm_categories", Text, nullable=False),
    Column("spread_status", String(20), nullable=False),
    Column("intake_channel", String(20), nullable=False),
    Column("learned_at", String(40), nullable=False),
    Column("opened_at", String(40), nullable=False),
    Column("statement_recorded_at", String(40)),
    Column("report_due_at", String(40), index=True),
    Column("report_filed_at", String(40)),
    Column("withdrawn_at", String(40)),
    Column("erased_at", String(40)),
    Column("locations", Integer, nullable=False),
    Column("hashes", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", String(40), nullable=False),
)


def _status(row: dict[str, Any]) -> str:
    if row["erased_at"]:
        return "erased"
    if row["withdrawn_at"]:
        return "withdrawn"
    if row["age_group"] == "adult" and not row["statement_recorded_at"]:
        return "awaiting_statement"
    return "active"


class CasesProjection(Projection):
    """A batch is folded into the rows it touches in memory, then written with one select and
    at most one insert and one update statement (``executemany``): a statement per event cost
    0.4-0.8 ms, which made a rebuild run at 2-3k events/s."""

    name: ClassVar[str] = "cases"
    metadata: ClassVar[MetaData] = METADATA
    subjects: ClassVar[tuple[str, ...]] = ("ncii.*.case.*.>",)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        self.apply_batch(conn, [event])

    def apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        touched = sorted({e.case_id for e in events})
        stored = {
            r["case_id"]: dict(r)
            for r in conn.execute(select(CASES).where(CASES.c.case_id.in_(touched))).mappings()
        }
        rows = {case_id: dict(row) for case_id, row in stored.items()}
        for event in events:
            fold(rows, event)
        new = [row for case_id, row in rows.items() if case_id not in stored]
        changed = [
            {"key": case_id, **row}
            for case_id, row in rows.items()
            if case_id in stored and row != stored[case_id]
        ]
        if new:
            conn.execute(insert(CASES), new)
        if changed:
            conn.execute(_UPDATE_ROW, changed)


_UPDATE_ROW = (
    update(CASES)
    .where(CASES.c.case_id == bindparam("key"))
    .values({c.name: bindparam(c.name) for c in CASES.columns if c.name != "case_id"})
)


def fold(rows: dict[str, dict[str, Any]], event: RecordedEvent) -> None:
    """Apply one event to the rows of its case (plain data, no I/O)."""
    ev = event.event
    at = event.envelope.occurred_at
    if isinstance(ev, CaseOpened):
        due = None
        if ev.age_group == "minor":
            due = format_time(parse_time(ev.learned_at) + REPORT_WINDOW)
        rows[event.case_id] = {
            "case_id": event.case_id,
            "organisation": ev.organisation,
            "reference": ev.reference,
            "age_group": ev.age_group,
            "harm_categories": json.dumps(ev.harm_categories),
            "spread_status": ev.spread_status,
            "intake_channel": ev.intake_channel,
            "learned_at": ev.learned_at,
            "opened_at": at,
            "statement_recorded_at": None,
            "report_due_at": due,
            "report_filed_at": None,
            "withdrawn_at": None,
            "erased_at": None,
            "locations": 0,
            "hashes": 0,
        }
    row = rows.get(event.case_id)
    if row is None:  # the case opened before this projection's history (nothing to update)
        return
    if isinstance(ev, NonConsentRecorded):
        row["statement_recorded_at"] = ev.stated_at
    elif isinstance(ev, LocationReported):
        row["locations"] += 1
    elif isinstance(ev, HashesSubmitted):
        row["hashes"] += len(ev.hashes)
    elif isinstance(ev, MandatoryReportFiled):
        row["report_filed_at"] = ev.filed_at
    elif isinstance(ev, CaseWithdrawn):
        row["withdrawn_at"] = at
    elif isinstance(ev, CaseErased):
        row["erased_at"] = at
    row["status"] = _status(row)
    row["last_seq"] = event.seq
    row["updated_at"] = at


def _visible(principal: Principal) -> Any:
    if principal.role == "partner":
        return CASES.c.organisation == principal.organisation
    return CASES.c.case_id.is_not(None)


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


async def case_id_for_reference(engine: AsyncEngine, reference: str) -> str | None:
    async with engine.connect() as conn:
        value = (
            await conn.execute(select(CASES.c.case_id).where(CASES.c.reference == reference))
        ).scalar_one_or_none()
    return str(value) if value is not None else None


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
        row["report_state"] = "late" if now > parse_time(row["report_due_at"]) else "due"
    return rows
