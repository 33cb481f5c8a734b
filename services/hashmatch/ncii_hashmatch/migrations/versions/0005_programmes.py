"""hashmatch: programmes (decision 39): hm_banks.programme and hm_platform_programmes

Banks that exist are in the adults' programme. Case banks created before this held minors'
hashes beside adults' (one bank per organisation): rebuild the bank (stop hashmatch, drop its
database, start it) so a replay routes each case's hashes by its age group.

Revision ID: hashmatch_0005_programmes
Revises: hashmatch_0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "hashmatch_0005_programmes"
down_revision = "hashmatch_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hm_banks") as batch:
        batch.add_column(
            sa.Column("programme", sa.String(20), nullable=False, server_default="adults")
        )
    op.create_table(
        "hm_platform_programmes",
        sa.Column("platform", sa.String(100), primary_key=True),
        sa.Column("programmes", sa.String(60), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hm_platform_programmes")
    with op.batch_alter_table("hm_banks") as batch:
        batch.drop_column("programme")
