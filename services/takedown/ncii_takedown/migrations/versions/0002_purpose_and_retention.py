"""takedown: each takedown's purpose (the platform's list shows it), when it ended, when its
evidence is due for erasure and when it was erased (decisions 0032, 0044)

Takedowns opened before this revision read ``removal`` until ``ncii projections rebuild``
folds their TakedownOpened again (a freeze or preserve notice then shows its own purpose).

Revision ID: takedown_0002
Revises: takedown_0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "takedown_0002"
down_revision = "takedown_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("td_takedowns") as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(20), nullable=False, server_default="removal")
        )
        batch.add_column(sa.Column("ended_at", sa.String(40)))
        batch.add_column(sa.Column("erase_at", sa.String(40)))
        batch.add_column(sa.Column("evidence_erased_at", sa.String(40)))
        batch.create_index("ix_td_takedowns_erase_at", ["erase_at"])


def downgrade() -> None:
    with op.batch_alter_table("td_takedowns") as batch:
        batch.drop_index("ix_td_takedowns_erase_at")
        batch.drop_column("evidence_erased_at")
        batch.drop_column("erase_at")
        batch.drop_column("ended_at")
        batch.drop_column("purpose")
