"""hashmatch: hm_sighting_windows, the running count of a platform's sightings of one entry in
one window until its SightingsCounted is in the log (decision 24)

Revision ID: hashmatch_0003
Revises: hashmatch_0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "hashmatch_0003"
down_revision = "hashmatch_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hm_sighting_windows",
        sa.Column("match_uuid", sa.String(36), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("window_end", sa.BigInteger, nullable=False, index=True),
        sa.Column("stream", sa.String(1), nullable=False),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("match_id", sa.String(80), nullable=False),
        sa.Column("entry_key", sa.String(36), nullable=False),
        sa.Column("platform", sa.String(100), nullable=False),
        sa.Column("sightings", sa.Integer, nullable=False),
        sa.Column("first_seen_at", sa.String(40), nullable=False),
        sa.Column("last_seen_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hm_sighting_windows")
