"""``ncii projections rebuild --service dashboard``: both dashboard projections (and the
principals) are dropped and replayed from the log; the erased case leaves nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

from nats.aio.client import Client as NATS
from ncii_events.signing import SigningKey
from ncii_events.store import EventStore
from ncii_events.stream import REFERENCE

from tests.conftest import SuiteNats
from tests.integration.test_cli import _cli, _env, _scalar
from tests.support.dashboard_events import append_scenario, case_ids
from tests.support.events import REGISTRY


async def test_projections_rebuild_replays_the_dashboards_projections(
    nats_server: SuiteNats, nc: NATS, store: EventStore, test_signing: SigningKey, tmp_path: Path
) -> None:
    ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=test_signing)
    prefix = uuid.uuid4().hex[:8]
    ids = case_ids(prefix)
    await append_scenario(store, ref_store, prefix)
    result = await _cli(
        _env(nats_server, tmp_path), "projections", "rebuild", "--service", "dashboard"
    )
    assert result.exit_code == 0, result.output
    for name in ("principals", "dashboard_cases", "dashboard_platforms"):
        assert f"{name}: " in result.output
    db = tmp_path / "dashboard.db"
    status = "SELECT status FROM dash_cases WHERE case_id = ?"
    assert await _scalar(db, status, ids["a"]) == "open"
    assert await _scalar(db, status, ids["c"]) is None
    named = "SELECT count(*) FROM dash_platforms WHERE name = ?"
    assert await _scalar(db, named, f"FaceSpace {prefix}") == 1
    removed = "SELECT status FROM dash_takedowns WHERE takedown_id = ?"
    assert await _scalar(db, removed, f"{prefix}-ta1") == "removed"
