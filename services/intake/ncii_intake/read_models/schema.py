"""The ``cases`` table: one row per case, no personal data (that stays encrypted in the log and
is decrypted only when an authorised reader opens the case). Alembic migrations in
``ncii_intake/migrations`` create it; keep the two in step."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

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
    Column("withdrawn_at", String(40)),
    Column("erased_at", String(40)),
    Column("closed_at", String(40)),
    Column("assignee", String(64)),
    Column("erasure_due_at", String(40), index=True),
    Column("locations", Integer, nullable=False),
    Column("hashes", Integer, nullable=False),
    Column("victim_access_resets", Integer, nullable=False, server_default="0"),
    Column("pin_generation", Integer, nullable=False, server_default="0"),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", String(40), nullable=False),
    # the case list: newest first, scanned in index order until a page is full, within an
    # organisation, a status or an assignee; by update time when filtered on it (decision 35)
    Index("ix_cases_opened", "opened_at", "case_id"),
    Index("ix_cases_updated", "updated_at", "case_id"),
    Index("ix_cases_org_opened", "organisation", "opened_at", "case_id"),
    Index("ix_cases_org_updated", "organisation", "updated_at", "case_id"),
    Index("ix_cases_status_opened", "status", "opened_at", "case_id"),
    Index("ix_cases_assignee_opened", "assignee", "opened_at", "case_id"),
)
