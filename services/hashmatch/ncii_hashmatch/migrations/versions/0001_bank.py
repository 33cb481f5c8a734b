"""hashmatch read model: the bank (banks, entries, changes, negative bank, matches, outbox)

Revision ID: hashmatch_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "hashmatch_0001"
down_revision = None
branch_labels = None
depends_on = None

ENTRY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hm_banks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("organisation", sa.String(100)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("pdq_threshold", sa.Integer, nullable=False),
        sa.Column("match_dihedral", sa.Boolean, nullable=False),
        sa.Column("vpdq_query_match_percent", sa.Integer, nullable=False),
        sa.Column("vpdq_compared_match_percent", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "hm_entries",
        sa.Column("entry_id", ENTRY_ID, primary_key=True, autoincrement=True),
        sa.Column("entry_key", sa.String(36), nullable=False, unique=True),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("case_id", sa.String(36), index=True),
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("media", sa.String(8), nullable=False),
        sa.Column("ident", sa.String(72), nullable=False),
        sa.Column("value", sa.String(64)),
        sa.Column("aliases", sa.Text),
        sa.Column("frames", sa.Text),
        sa.Column("quality", sa.Integer),
        sa.Column("live", sa.Boolean, nullable=False),
        sa.Column("listed", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("added_at", sa.String(40), nullable=False),
        sa.Column("removed_at", sa.String(40)),
    )
    op.create_index("ix_hm_entries_bank_ident", "hm_entries", ["bank", "algorithm", "ident"])
    op.create_index("ix_hm_entries_value", "hm_entries", ["algorithm", "value"])
    op.create_table(
        "hm_changes",
        sa.Column("stream", sa.String(1), primary_key=True),
        sa.Column("key", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("entry_key", sa.String(36)),
        sa.Column("negative_id", sa.String(36)),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_table(
        "hm_negatives",
        sa.Column("neg_no", ENTRY_ID, primary_key=True, autoincrement=True),
        sa.Column("negative_id", sa.String(36), nullable=False, unique=True),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("match_id", sa.String(80), nullable=False),
        sa.Column("added_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_hm_negatives_value", "hm_negatives", ["algorithm", "value"])
    op.create_table(
        "hm_closed_cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_table(
        "hm_matches",
        sa.Column("match_id", sa.String(80), primary_key=True),
        sa.Column("match_uuid", sa.String(36), nullable=False),
        sa.Column("platform", sa.String(100), nullable=False),
        sa.Column("entry_key", sa.String(36), nullable=False, index=True),
        sa.Column("sightings", sa.Integer, nullable=False),
        sa.Column("last_seen_at", sa.String(40)),
        sa.Column("verdict", sa.String(20)),
        sa.Column("verdict_at", sa.String(40)),
        sa.Column("content_algorithm", sa.String(8)),
        sa.Column("content_value", sa.String(64)),
        sa.Column("fp_confirmed", sa.Boolean, nullable=False),
    )
    op.create_table(
        "hm_outbox",
        sa.Column("id", ENTRY_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("stream", sa.String(1), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("aggregate", sa.String(30), nullable=False),
        sa.Column("aggregate_id", sa.String(80), nullable=False),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("causation_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("published_at", sa.String(40), index=True),
    )
    op.create_table(
        "hm_instance",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "hm_instance",
        "hm_outbox",
        "hm_matches",
        "hm_closed_cases",
        "hm_negatives",
        "hm_changes",
        "hm_entries",
        "hm_banks",
    ):
        op.drop_table(table)
