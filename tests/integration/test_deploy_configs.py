"""The server configurations in deploy/ parse, and their permissions hold on a real server:
a service may publish only its own event types."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from ncii_cli.services import all_services
from ncii_contracts import ALL_EVENTS
from ncii_contracts.base import DomainEvent
from ncii_contracts.principals import PRINCIPAL_EVENTS
from ncii_events.embedded import free_port, nats_server_binary
from ncii_events.stream import ensure_streams

from tests.conftest import ROOT
from tests.support.eventually import eventually, eventually_sync

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

    def started() -> bool:
        assert process.poll() is None, "nats-server refused the configuration"
        return _listening(port)

    eventually_sync(started, what="nats-server listening")
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
        await eventually(
            lambda: any("permissions violation" in e.lower() for e in errors),
            what="the server's permissions violation",
        )
    finally:
        await nc.close()


async def test_a_platform_facing_service_cannot_issue_api_keys(secured_server: str) -> None:
    errors: list[str] = []
    nc = await _as(secured_server, "hashmatch", errors)
    try:
        with pytest.raises(Exception):  # noqa: B017
            await nc.jetstream().publish("nciiref.principal.p1.PrincipalCreated", b"{}", timeout=1)
        await eventually(
            lambda: any("permissions violation" in e.lower() for e in errors),
            what="the server's permissions violation",
        )
    finally:
        await nc.close()


def _emitters() -> dict[str, tuple[type[DomainEvent], ...]]:
    """Each NATS user and the events it emits: what each service's spec declares, and the
    operator's CLI, which issues and revokes API keys."""
    emitters = {name: tuple(spec.emits) for name, spec in all_services().items()}
    emitters["operator"] = PRINCIPAL_EVENTS
    return emitters


def _subjects(event: type[DomainEvent]) -> list[str]:
    return [s.subject("c1", event.aggregate, "a1", event.event_type) for s in event.streams]


def test_every_event_has_one_emitter_and_every_user_is_a_known_emitter() -> None:
    emitters = _emitters()
    users = set(re.findall(r"^\s*user:\s*(\w+)", (DEPLOY / "accounts.conf").read_text(), re.M))
    assert users == set(emitters)
    emitted = [event for events in emitters.values() for event in events]
    assert sorted(e.event_type for e in emitted) == sorted(e.event_type for e in ALL_EVENTS)


@pytest.mark.parametrize("user", sorted(_emitters()))
async def test_a_user_may_publish_exactly_the_events_its_service_emits(
    secured_server: str, user: str
) -> None:
    own = set(_emitters()[user])
    refused: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def on_error(exc: Exception) -> None:
        # nats-py lower-cases the server's "-ERR 'Permissions Violation for Publish to "<s>"'"
        found = re.search(r'permissions violation for publish to "([^"]+)"', str(exc).lower())
        if found:
            refused[found.group(1)].set()

    password = PASSWORDS[f"NCII_NATS_PASSWORD_{user.upper()}"]
    nc = await nats.connect(
        secured_server, user=user, password=password, error_cb=on_error, allow_reconnect=False
    )
    wrong: list[str] = []
    denied: list[str] = []
    try:
        for event in ALL_EVENTS:
            for subject in _subjects(event):
                if event in own:
                    ack = await nc.jetstream().publish(subject, b"{}")
                    assert ack.seq > 0
                else:
                    await nc.publish(subject, b"{}")
                    denied.append(subject)
        await nc.flush()
        for subject in denied:
            try:
                # the refusal comes back asynchronously (not always before the flush's PONG);
                # the timeout only bounds a failure
                await asyncio.wait_for(refused[subject.lower()].wait(), 10)
            except TimeoutError:
                wrong.append(f"{subject}: publishable by {user}, who does not emit it")
    finally:
        await nc.close()
    assert wrong == []


def test_the_deploy_folder_is_found() -> None:
    assert Path(DEPLOY / "accounts.conf").is_file()
