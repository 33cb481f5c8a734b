"""Every migration line (each service's own and the runtime's) has one head and revision ids
alembic can store: two branches that each add a revision after the same one leave two heads,
and a service then refuses to start ("Multiple head revisions")."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.conftest import ROOT

LINES = sorted(
    [*ROOT.glob("services/*/ncii_*/migrations"), ROOT / "libs/events/ncii_events/migrations"]
)


@pytest.mark.parametrize("location", LINES, ids=lambda p: p.parent.name)
def test_a_migration_line_has_one_head_and_short_unique_revision_ids(location: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(location))
    script = ScriptDirectory.from_config(config)
    assert len(script.get_heads()) == 1, f"{location}: heads {script.get_heads()}"
    revisions = [r.revision for r in script.walk_revisions()]
    assert len(revisions) == len(set(revisions))
    # alembic's version table holds 32 characters
    assert all(len(r) <= 32 for r in revisions), [r for r in revisions if len(r) > 32]
