"""intake read model: the victim's access resets (decision 25)

Revision ID: intake_0002_victim_access
Revises: intake_0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0002_victim_access"
down_revision = "intake_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # read with the reference on every victim request, so a reset takes effect on every
    # replica and a known reference costs the same work as an unknown one (one query)
    with op.batch_alter_table("cases") as batch:
        batch.add_column(
            sa.Column("victim_access_resets", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("pin_generation", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("pin_generation")
        batch.drop_column("victim_access_resets")
