"""Intake's read model: one row per case, no personal data (that stays encrypted in the log and
is decrypted only when an authorised reader opens the case)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, ClassVar

from ncii_events.auth import Principal
from ncii_events.db import upsert
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
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_intake.domain import MANDATORY_REPORT_HOURS, format_time, parse_time
from ncii_intake.events import (
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    HashesSubmitted,
    LocationReported,
    MandatoryReportFiled,
    NonConsentRecorded,
)

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
    name: ClassVar[str] = "cases"
    metadata: ClassVar[MetaData] = METADATA
    subjects: ClassVar[tuple[str, ...]] = ("ncii.*.case.*.>",)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        at = event.envelope.occurred_at
        if isinstance(ev, CaseOpened):
            due = None
            if ev.age_group == "minor":
                due = format_time(parse_time(ev.learned_at) + REPORT_WINDOW)
            row: dict[str, Any] = {
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
                "last_seq": event.seq,
                "updated_at": at,
            }
            row["status"] = _status(row)
            upsert(conn, CASES, row, ["case_id"])
            return
        changes: dict[str, Any]
        if isinstance(ev, NonConsentRecorded):
            changes = {"statement_recorded_at": ev.stated_at}
        elif isinstance(ev, LocationReported):
            changes = {"locations": CASES.c.locations + 1}
        elif isinstance(ev, HashesSubmitted):
            changes = {"hashes": CASES.c.hashes + len(ev.hashes)}
        elif isinstance(ev, MandatoryReportFiled):
            changes = {"report_filed_at": ev.filed_at}
        elif isinstance(ev, CaseWithdrawn):
            changes = {"withdrawn_at": at}
        elif isinstance(ev, CaseErased):
            changes = {"erased_at": at}
        else:
            changes = {}
        changes.update(last_seq=event.seq, updated_at=at)
        conn.execute(update(CASES).where(CASES.c.case_id == event.case_id).values(**changes))
        if not isinstance(ev, NonConsentRecorded | CaseWithdrawn | CaseErased):
            return
        current = (
            conn.execute(select(CASES).where(CASES.c.case_id == event.case_id)).mappings().first()
        )
        if current is not None and current["status"] != _status(dict(current)):
            conn.execute(
                update(CASES)
                .where(CASES.c.case_id == event.case_id)
                .values(status=_status(dict(current)))
            )


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
