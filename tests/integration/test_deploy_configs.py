"""The server configurations in deploy/ parse, and their permissions hold on a real server:
a service may publish only its own event types."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from ncii_cli.services import all_services
from ncii_contracts import ALL_EVENTS
from ncii_contracts.base import DomainEvent
from ncii_contracts.principals import PRINCIPAL_EVENTS
from ncii_events.embedded import free_port, nats_server_binary
from ncii_events.stream import ensure_streams
from ncii_events.transport import connect

from tests.conftest import ROOT
from tests.support.eventually import eventually, eventually_sync

DEPLOY = ROOT / "deploy" / "nats"
PASSWORDS = {
    f"NCII_NATS_PASSWORD_{name}": f"test-{name.lower()}"
    for name in ("INTAKE", "HASHMATCH", "TAKEDOWN", "REFERRAL", "OPERATOR")
}


# the cluster's nodes need their TLS files: test_each_cluster_node_configuration_is_valid
@pytest.mark.parametrize("config", ["single.conf"])
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


# -- the cluster: TLS on client and route connections, authenticated routes (decision 27) --------

NODES = (1, 2, 3)


def _certificates(folder: Path, trusted_ca: Path | None = None) -> Path:
    """A throwaway CA and one certificate it signed for the nodes (server and client use), in
    the files the cluster's configuration names; ``trusted_ca``: write that CA instead of the
    one that signed (a node that trusts the cluster but holds a foreign certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)

    def build(subject: str, issuer: str, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = ["ncii-n1", "ncii-n2", "ncii-n3", "ncii-nats", "localhost"]
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    node_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("ncii test CA", "ncii test CA", ca_key, ca_key, ca=True)
    node = build("ncii-nats", "ncii test CA", node_key, ca_key, ca=False)
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(trusted_ca.read_bytes() if trusted_ca else ca.public_bytes(pem))
    (folder / "tls.crt").write_bytes(node.public_bytes(pem))
    (folder / "tls.key").write_bytes(
        node_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder


def _replace(text: str, old: str, new: str) -> str:
    """``old`` must be in the configuration: the test fails when the file stops saying it."""
    assert old in text, f"the cluster configuration no longer says {old!r}"
    return text.replace(old, new)


@dataclass(frozen=True)
class Ports:
    client: dict[int, int]
    route: dict[int, int]
    monitor: dict[int, int]


def _node_config(n: int, work: Path, tls: Path, ports: Ports | None = None) -> Path:
    """deploy/nats/cluster/n<n>.conf with the TLS files in ``tls``; with ``ports``, on this
    machine's loopback (the nodes as localhost:<port> instead of ncii-n1..3:6222)."""
    text = (DEPLOY / "cluster" / f"n{n}.conf").read_text()
    text = _replace(text, '"/etc/ncii/tls/', f'"{tls}/')
    if ports is not None:
        text = _replace(text, "listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{ports.client[n]}")
        text = _replace(text, "http: 127.0.0.1:8222", f"http: 127.0.0.1:{ports.monitor[n]}")
        text = _replace(text, "listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{ports.route[n]}")
        for other in NODES:
            text = _replace(
                text,
                f"nats-route://ncii-n{other}:6222",
                f"nats-route://localhost:{ports.route[other]}",
            )
        text = _replace(text, '"/var/lib/ncii/nats"', f'"{work}/js-n{n}"')
        text += f'\nlog_file: "{work}/n{n}.log"\n'
    (work / "cluster").mkdir(parents=True, exist_ok=True)
    (work / "accounts.conf").write_text((DEPLOY / "accounts.conf").read_text())
    path = work / "cluster" / f"n{n}.conf"
    path.write_text(text)
    return path


@pytest.mark.parametrize("n", NODES)
def test_each_cluster_node_configuration_is_valid(n: int, tmp_path: Path) -> None:
    config = _node_config(n, tmp_path, _certificates(tmp_path / "tls"))
    result = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(config)],
        env={**os.environ, **PASSWORDS},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sync_interval: always" in config.read_text()


def _monitor(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return dict(json.loads(response.read()))


OTHERS = {n: {f"ncii-n{m}" for m in NODES if m != n} for n in NODES}


def _routed_to(monitor_port: int) -> set[str]:
    """The nodes this one has routes to (several connections each: nats-server pools them)."""
    return {r["remote_name"] for r in _monitor(monitor_port, "/routez")["routes"]}


def _info(port: int) -> dict[str, Any]:
    """The INFO a server sends first on a new connection (before any TLS)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        line = sock.makefile("rb").readline()
    assert line.startswith(b"INFO "), line
    return dict(json.loads(line[5:]))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ports, Path, Path]]:
    """The three nodes of deploy/nats/cluster, on this machine's loopback, with a throwaway CA."""
    work = tmp_path_factory.mktemp("cluster")
    tls = _certificates(work / "tls")
    ports = Ports(
        client={n: free_port() for n in NODES},
        route={n: free_port() for n in NODES},
        monitor={n: free_port() for n in NODES},
    )
    processes = [
        subprocess.Popen(
            [str(nats_server_binary()), "-c", str(_node_config(n, work, tls, ports))],
            env={**os.environ, **PASSWORDS},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in NODES
    ]

    def started() -> bool:
        assert all(p.poll() is None for p in processes), "a node refused its configuration"
        return all(_listening(p[n]) for n in NODES for p in (ports.monitor, ports.client))

    eventually_sync(started, what="the three nodes listening")
    yield ports, work, tls
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(10)


def test_the_cluster_requires_tls_from_clients_and_mutual_tls_on_routes(
    cluster: tuple[Ports, Path, Path],
) -> None:
    ports, _, _ = cluster
    for n in NODES:
        assert _info(ports.client[n])["tls_required"] is True
        varz = _monitor(ports.monitor[n], "/varz")
        assert varz["http_host"] == "127.0.0.1"  # monitoring on the loopback only
        assert (varz["cluster"]["tls_required"], varz["cluster"]["tls_verify"]) == (True, True)
    # with TLS and the certificate check both ways, the nodes still form the cluster
    eventually_sync(
        lambda: all(_routed_to(ports.monitor[n]) == OTHERS[n] for n in NODES),
        what="every node routed to the two others",
    )


def test_a_node_without_a_certificate_of_the_clusters_ca_cannot_route(
    cluster: tuple[Ports, Path, Path], tmp_path: Path
) -> None:
    ports, work, tls = cluster
    # node 1's configuration with its own ports, routing to nodes 2 and 3: it trusts the
    # cluster's CA, but its own certificate comes from another CA
    foreign = _certificates(tmp_path / "tls", trusted_ca=tls / "ca.crt")
    intruder = Ports(
        client={1: free_port()},
        route={1: free_port(), 2: ports.route[2], 3: ports.route[3]},
        monitor={1: free_port()},
    )
    config = _node_config(1, tmp_path, foreign, intruder)
    config.write_text(
        _replace(config.read_text(), "server_name: ncii-n1", "server_name: ncii-intruder")
    )
    node2_log = work / "n2.log"
    process = subprocess.Popen(
        [str(nats_server_binary()), "-c", str(config)],
        env={**os.environ, **PASSWORDS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually_sync(
            lambda: "certificate signed by unknown authority" in node2_log.read_text(),
            what="node 2 refusing the intruder's certificate",
        )
        assert _routed_to(ports.monitor[2]) == OTHERS[2]
    finally:
        process.terminate()
        process.wait(10)


async def test_a_service_connects_to_the_cluster_over_tls_with_the_ca_and_not_without(
    cluster: tuple[Ports, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ports, _, tls = cluster
    url = f"tls://localhost:{ports.client[1]}"
    password = PASSWORDS["NCII_NATS_PASSWORD_INTAKE"]
    with pytest.raises(Exception):  # noqa: B017 - the certificate is not one the system trusts
        await nats.connect(url, user="intake", password=password, allow_reconnect=False)
    monkeypatch.setenv("NCII_NATS_CA_FILE", str(tls / "ca.crt"))
    nc = await connect(url, name="ncii-test", user="intake", password=password)
    try:
        await nc.flush()
        assert nc.is_connected
        connz = _monitor(ports.monitor[1], "/connz?auth=true")
        [mine] = [c for c in connz["connections"] if c.get("name") == "ncii-test"]
        assert mine["tls_version"] and mine["authorized_user"] == "intake"
    finally:
        await nc.close()
