"""hashmatch: hm_changes.mix (the delta feed's order within a release window) and the hash
values of already-erased cases overwritten (decision 26)

Revision ID: hashmatch_0004
Revises: hashmatch_0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from ncii_hashmatch.domain import feed_mix

revision = "hashmatch_0004"
down_revision = "hashmatch_0003"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("hm_changes") as batch:
        batch.add_column(sa.Column("mix", sa.BigInteger))
    conn = op.get_bind()
    changes = sa.table(
        "hm_changes",
        sa.column("stream", sa.String),
        sa.column("key", sa.BigInteger),
        sa.column("entry_key", sa.String),
        sa.column("mix", sa.BigInteger),
    )
    while True:
        rows = conn.execute(
            sa.select(changes.c.stream, changes.c.key, changes.c.entry_key)
            .where(changes.c.mix.is_(None))
            .limit(BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            sa.update(changes)
            .where(changes.c.stream == sa.bindparam("s"), changes.c.key == sa.bindparam("k"))
            .values(mix=sa.bindparam("m")),
            [
                {"s": r.stream, "k": r.key, "m": feed_mix(r.stream, r.key, r.entry_key)}
                for r in rows
            ],
        )
    # cases erased before this revision kept their hash values: overwrite them now
    conn.execute(
        sa.text(
            "UPDATE hm_entries SET ident = entry_key, value = NULL, aliases = NULL,"
            " frames = NULL, quality = NULL WHERE case_id IN"
            " (SELECT case_id FROM hm_closed_cases WHERE state = 'erased')"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("hm_changes") as batch:
        batch.drop_column("mix")
