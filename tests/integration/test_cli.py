"""The `ncii` command line against the run's NATS server."""

from __future__ import annotations

import asyncio
import re

from ncii_cli.main import app
from ncii_events.embedded import EmbeddedNats
from ncii_events.store import NEW, EventStore
from typer.testing import CliRunner

from tests.support.events import NoteAdded
from tests.support.factories import CAUSE, new_case, note_ref


def _env(nats_server: EmbeddedNats, tmp_path: object) -> dict[str, str]:
    return {"NCII_NATS_URL": nats_server.url, "NCII_VAR_DIR": str(tmp_path)}


def test_log_stats_reports_both_streams_append_only(
    nats_server: EmbeddedNats, tmp_path: object
) -> None:
    result = CliRunner().invoke(app, ["log", "stats", "--json"], env=_env(nats_server, tmp_path))
    assert result.exit_code == 0, result.output
    assert '"stream": "NCII"' in result.output and '"stream": "NCII_REF"' in result.output
    assert '"deny_delete": true' in result.output


async def test_log_verify_checks_every_chain_of_a_case(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: object
) -> None:
    case = new_case()
    await store.append(
        note_ref(case), [NoteAdded(text="a"), NoteAdded(text="b")], expected=NEW, cause=CAUSE
    )
    # the command runs its own event loop, as it does from a shell
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["log", "verify", "--case", case], env=_env(nats_server, tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "2 events in 1 aggregates verify" in result.output


def test_keys_are_shown_once_listed_by_hint_and_revoked(
    nats_server: EmbeddedNats, tmp_path: object
) -> None:
    env = _env(nats_server, tmp_path)
    runner = CliRunner()
    created = runner.invoke(
        app, ["keys", "create", "--org", "cli-test-org", "--role", "auditor"], env=env
    )
    assert created.exit_code == 0, created.output
    key = re.search(r"ncii_live_\S+", created.output)
    principal = re.search(r"principal (\S+)", created.output)
    assert key and principal
    listed = runner.invoke(app, ["keys", "list"], env=env)
    assert "cli-test-org" in listed.output and key.group(0) not in listed.output
    assert runner.invoke(app, ["keys", "revoke", principal.group(1)], env=env).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", "no-such"], env=env).exit_code == 1


def test_a_bad_role_is_a_usage_error(nats_server: EmbeddedNats, tmp_path: object) -> None:
    result = CliRunner().invoke(
        app,
        ["keys", "create", "--org", "x", "--role", "superuser"],
        env=_env(nats_server, tmp_path),
    )
    assert result.exit_code == 2
