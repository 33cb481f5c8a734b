"""What `ncii run` leaves on the disk: a log that survives a power cut (the embedded NATS server
fsyncs before it acknowledges) and data only its owner can read (F16)."""

from __future__ import annotations

import json
import os
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from ncii_cli.nats_auth import AUTH_DIR, load_credentials
from ncii_cli.runner import nats_login, start_embedded_nats
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, migrate_runtime, write_transaction
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.settings import Settings
from ncii_events.stream import ensure_streams
from ncii_events.transport import connect
from sqlalchemy import text


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        nats_url=None,
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        master_key=None,
        master_key_file=None,
        database_url=None,
    )


@pytest.fixture
def embedded(settings: Settings) -> Iterator[EmbeddedNats]:
    server = start_embedded_nats(settings)
    yield server
    server.stop()


def test_the_embedded_nats_server_of_ncii_run_fsyncs_before_it_acknowledges(
    embedded: EmbeddedNats,
) -> None:
    # What the running server says it does, not what we asked for.
    url = f"http://127.0.0.1:{embedded.monitor_port}/varz"
    with urllib.request.urlopen(url, timeout=10) as resp:
        varz = json.load(resp)
    assert varz["jetstream"]["config"].get("sync_always") is True  # absent when off


async def test_files_under_var_are_the_owners_alone(
    settings: Settings, embedded: EmbeddedNats
) -> None:
    user, password = nats_login(settings)
    nc = await connect(embedded.url, name="local-files", user=user, password=password)
    try:
        await ensure_streams(nc)
        await nc.publish("ncii.test.perm", b"x")
    finally:
        await nc.close()
    MasterKey.load_or_create(settings.master_key_path())
    engine = make_engine(settings.database_url_for("intake"))
    try:
        await migrate_runtime(engine)
        async with write_transaction(engine) as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        var = settings.var_dir.resolve()
        assert (var / "intake.db-wal").exists() and (var / "master.key").exists()
        assert any((var / "nats" / "jetstream").rglob("*.blk")), "no stream files to check"
        found: dict[str, int] = {}
        for root, dirs, files in os.walk(var):
            for name in [*dirs, *files]:
                path = Path(root) / name
                found[str(path.relative_to(var))] = stat.S_IMODE(path.lstat().st_mode)
        found["."] = stat.S_IMODE(var.stat().st_mode)
        too_open = {
            path: oct(mode)
            for path, mode in found.items()
            if mode & 0o077 or (path != "." and not mode & 0o600)
        }
        assert too_open == {}
        assert found["."] == 0o700 and found["master.key"] == 0o600
        assert found[AUTH_DIR] == 0o700 and found[f"{AUTH_DIR}/passwords.json"] == 0o600
    finally:
        await engine.dispose()


async def test_the_embedded_nats_server_refuses_a_client_without_credentials(
    embedded: EmbeddedNats,
) -> None:
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(embedded.url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_the_generated_nats_passwords_are_made_once_and_kept_across_restarts(
    settings: Settings, embedded: EmbeddedNats
) -> None:
    first = load_credentials(settings.var_dir.resolve() / AUTH_DIR)
    assert first is not None and {"intake", "hashmatch", "operator"} <= set(first.passwords)
    embedded.stop()
    again = start_embedded_nats(settings)
    try:
        assert load_credentials(settings.var_dir.resolve() / AUTH_DIR) == first
        user, password = nats_login(settings, "intake")
        nc = await connect(again.url, name="restart", user=user, password=password)
        await nc.close()
    finally:
        again.stop()


def test_the_embedded_nats_server_listens_and_serves_monitoring_on_localhost_only(
    embedded: EmbeddedNats,
) -> None:
    url = f"http://127.0.0.1:{embedded.monitor_port}/varz"
    with urllib.request.urlopen(url, timeout=10) as resp:
        varz = json.load(resp)
    assert varz["host"] == "127.0.0.1" and varz["http_host"] == "127.0.0.1"
    assert varz["auth_required"] is True
