"""The server configurations in deploy/ parse, and their permissions hold on a real server:
a service may publish only its own event types."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from ncii_events.embedded import free_port, nats_server_binary
from ncii_events.stream import ensure_streams

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy" / "nats"
PASSWORDS = {
    f"NCII_NATS_PASSWORD_{name}": f"test-{name.lower()}"
    for name in ("INTAKE", "HASHMATCH", "TAKEDOWN", "REFERRAL", "OPERATOR")
}


@pytest.mark.parametrize(
    "config", ["single.conf", "cluster/n1.conf", "cluster/n2.conf", "cluster/n3.conf"]
)
def test_each_server_configuration_is_valid(config: str) -> None:
    result = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(DEPLOY / config)],
        env={**os.environ, **PASSWORDS},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (DEPLOY / config).read_text()
    assert "sync_interval: always" in text


@pytest.fixture(scope="module")
def secured_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with deploy/nats/accounts.conf: each service its own user."""
    work = tmp_path_factory.mktemp("secured")
    port = free_port()
    # nats-server resolves include paths relative to the including file, even absolute ones
    (work / "accounts.conf").write_text((DEPLOY / "accounts.conf").read_text())
    (work / "server.conf").write_text(
        f"listen: 127.0.0.1:{port}\n"
        f'jetstream {{ store_dir: "{work}/js" }}\n'
        'include "accounts.conf"\n'
    )
    process = subprocess.Popen(
        [str(nats_server_binary()), "-c", str(work / "server.conf")],
        env={**os.environ, **PASSWORDS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _listening(port):
        assert process.poll() is None, "nats-server refused the configuration"
        assert time.monotonic() < deadline, "nats-server did not start"
        time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
async def secured_server(secured_process: str) -> str:
    password = PASSWORDS["NCII_NATS_PASSWORD_OPERATOR"]
    nc = await nats.connect(secured_process, user="operator", password=password)
    await ensure_streams(nc)
    await nc.close()
    return secured_process


async def _as(url: str, user: str, errors: list[str]) -> NATS:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    password = PASSWORDS[f"NCII_NATS_PASSWORD_{user.upper()}"]
    return await nats.connect(
        url, user=user, password=password, error_cb=on_error, allow_reconnect=False
    )


@pytest.mark.parametrize(
    ("user", "subject"),
    [
        ("intake", "ncii.c1.case.c1.CaseOpened"),
        ("hashmatch", "ncii.c1.banking.c1.HashesBanked"),
        ("hashmatch", "ncii.c1.match.m1.MatchFound"),
        ("hashmatch", "nciiref.bank.PARTNER.BankConfigured"),
        ("hashmatch", "nciiref.hash_list.l1.HashListImported"),
        ("hashmatch", "nciiref.negative_bank.n1.FalsePositiveConfirmed"),
        ("operator", "nciiref.principal.p1.PrincipalCreated"),
    ],
)
async def test_a_service_can_append_its_own_events(
    secured_server: str, user: str, subject: str
) -> None:
    errors: list[str] = []
    nc = await _as(secured_server, user, errors)
    try:
        ack = await nc.jetstream().publish(subject, b"{}")
        assert ack.seq > 0
    finally:
        await nc.close()


async def test_a_service_cannot_publish_another_services_events(secured_server: str) -> None:
    errors: list[str] = []
    nc = await _as(secured_server, "intake", errors)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the server drops it, so no ack comes
            await nc.jetstream().publish("ncii.c1.match.m1.MatchFound", b"{}", timeout=1)
        await asyncio.sleep(0.1)
    finally:
        await nc.close()
    assert any("permissions violation" in e.lower() for e in errors), errors


async def test_a_platform_facing_service_cannot_issue_api_keys(secured_server: str) -> None:
    errors: list[str] = []
    nc = await _as(secured_server, "hashmatch", errors)
    try:
        with pytest.raises(Exception):  # noqa: B017
            await nc.jetstream().publish("nciiref.principal.p1.PrincipalCreated", b"{}", timeout=1)
        await asyncio.sleep(0.1)
    finally:
        await nc.close()
    assert any("permissions violation" in e.lower() for e in errors), errors


def test_the_deploy_folder_is_found() -> None:
    assert Path(DEPLOY / "accounts.conf").is_file()
