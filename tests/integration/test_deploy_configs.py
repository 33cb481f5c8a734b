"""The server configurations in deploy/ parse, and their permissions hold on a real server
(decision 22): a service may publish only its own event types; no service may delete, purge or
reconfigure a stream or bucket, write case keys (but intake), touch another service's
idempotency records or replies; and the services work under exactly these permissions (F1, F2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from ncii_cli.nats_auth import shipped_accounts
from ncii_cli.services import all_services
from ncii_contracts import ALL_EVENTS
from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import INTAKE_RETIRED
from ncii_contracts.principals import PRINCIPAL_EVENTS
from ncii_events.auth import create_principal
from ncii_events.embedded import free_port, nats_server_binary
from ncii_events.permissions import ALL_STREAMS, OPERATOR, password_variable
from ncii_events.service import has_writes
from ncii_events.signing import SigningKey
from ncii_events.store import EventStore
from ncii_events.stream import (
    CASES,
    REFERENCE,
    StreamsMissingError,
    ensure_streams,
    stream_config,
)
from ncii_events.transport import connect, inbox_prefix

from tests.conftest import ROOT
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_dashboard import _summary as dashboard_view
from tests.e2e.test_intake_api import ago, case_body
from tests.support.events import REGISTRY
from tests.support.eventually import eventually, eventually_sync

DEPLOY = ROOT / "deploy" / "nats"
SERVICES = list(all_services())
WRITERS = [name for name, spec in all_services().items() if has_writes(spec)]
PASSWORDS = {
    password_variable(name): f"test-{name}-{uuid.uuid4().hex}" for name in [*SERVICES, OPERATOR]
}


def test_the_shipped_accounts_file_is_rendered_from_the_permission_table() -> None:
    # One definition for the shipped file and the embedded server's: they cannot drift.
    assert (DEPLOY / "accounts.conf").read_text() == shipped_accounts(), (
        "regenerate it: python -m ncii_cli.nats_auth > deploy/nats/accounts.conf"
    )


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


def _shipped_server(work: Path) -> Iterator[str]:
    """A server with deploy/nats/accounts.conf: each service its own user."""
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

    try:
        eventually_sync(started, what="nats-server listening")
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def secured_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """For the permission probes (their test messages are no events: no service reads it)."""
    yield from _shipped_server(tmp_path_factory.mktemp("secured"))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
async def secured_server(secured_process: str) -> str:
    nc = await _operator(secured_process)
    await ensure_streams(nc)
    await nc.close()
    return secured_process


async def _operator(url: str) -> NATS:
    password = PASSWORDS["NCII_NATS_PASSWORD_OPERATOR"]
    return await connect(url, name="operator", user="operator", password=password)


async def _as(url: str, user: str, errors: list[str]) -> NATS:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    password = PASSWORDS[f"NCII_NATS_PASSWORD_{user.upper()}"]
    return await nats.connect(
        url,
        user=user,
        password=password,
        error_cb=on_error,
        allow_reconnect=False,
        inbox_prefix=inbox_prefix(user),
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


def test_every_event_but_a_retired_one_has_one_emitter_and_every_user_emits() -> None:
    emitters = _emitters()
    users = set(re.findall(r"^\s*user:\s*(\w+)", (DEPLOY / "accounts.conf").read_text(), re.M))
    assert users == set(emitters)
    emitted = [event for events in emitters.values() for event in events]
    retired = [e.event_type for e in INTAKE_RETIRED]  # in old logs, written by nobody now
    assert sorted([*(e.event_type for e in emitted), *retired]) == sorted(
        e.event_type for e in ALL_EVENTS
    )


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
        secured_server,
        user=user,
        password=password,
        error_cb=on_error,
        allow_reconnect=False,
        inbox_prefix=inbox_prefix(user),
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
    # nine ports held open together until all are chosen: ports taken one at a time and
    # released at once can come back twice, and a node then refuses its configuration
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(3 * len(NODES))]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        free = iter(int(s.getsockname()[1]) for s in sockets)
        ports = Ports(*({n: next(free) for n in NODES} for _ in range(3)))
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


# -- F1: what a compromised service can no longer do --------------------------------------------


class Refusals:
    """The server's permission violations seen by one connection, by subject."""

    def __init__(self) -> None:
        self.seen: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def on_error(self, exc: Exception) -> None:
        # nats-py lower-cases "Permissions Violation for Publish to / Subscription to "<s>""
        found = re.search(
            r'permissions violation for (?:publish|subscription) to "([^"]+)"', str(exc).lower()
        )
        if found:
            self.seen[found.group(1)].set()

    async def missing(self, subjects: list[str]) -> list[str]:
        """The subjects the server did not refuse (the timeout only bounds a failure)."""

        async def refused(subject: str) -> bool:
            try:
                await asyncio.wait_for(self.seen[subject.lower()].wait(), 10)
            except TimeoutError:
                return False
            return True

        answers = await asyncio.gather(*(refused(s) for s in subjects))
        return [s for s, ok in zip(subjects, answers, strict=True) if not ok]


async def _watched(url: str, user: str) -> tuple[NATS, Refusals]:
    refusals = Refusals()
    nc = await nats.connect(
        url,
        user=user,
        password=PASSWORDS[password_variable(user)],
        error_cb=refusals.on_error,
        allow_reconnect=False,
        inbox_prefix=inbox_prefix(user),
    )
    return nc, refusals


async def _publish_all(nc: NATS, sends: list[tuple[str, bytes]]) -> list[str]:
    for subject, body in sends:
        await nc.publish(subject, body)
    await nc.flush()
    return [subject for subject, _ in sends]


def _forging_update(stream: str) -> bytes:
    """F1 rows 4-5: a stream update that re-maps an allowed subject onto another service's."""
    if stream == REFERENCE.name:
        config = stream_config(REFERENCE)
        config["subject_transform"] = {
            "src": "nciiref.bank.*.*",
            "dest": "nciiref.principal.{{wildcard(1)}}.{{wildcard(2)}}",
        }
    else:
        config = stream_config(CASES)
        config["subject_transform"] = {
            "src": "ncii.*.takedown.*.*",
            "dest": "ncii.{{wildcard(1)}}.case.{{wildcard(2)}}.{{wildcard(3)}}",
        }
    config["name"] = stream
    return json.dumps(config).encode()


@pytest.mark.parametrize("user", SERVICES)
async def test_no_service_may_delete_purge_reconfigure_or_consume_any_stream_or_bucket(
    secured_server: str, user: str
) -> None:
    nc, refusals = await _watched(secured_server, user)
    sends: list[tuple[str, bytes]] = []
    for stream in ALL_STREAMS:
        if not (user == "intake" and stream == "KV_ncii_case_keys"):  # erasure (tested below)
            sends.append((f"$JS.API.STREAM.MSG.DELETE.{stream}", b'{"seq":1}'))
        sends += [
            (f"$JS.API.STREAM.DELETE.{stream}", b""),
            (f"$JS.API.STREAM.PURGE.{stream}", b""),
            (f"$JS.API.STREAM.UPDATE.{stream}", _forging_update(stream)),
            (f"$JS.API.CONSUMER.CREATE.{stream}", b"{}"),
        ]
    sends.append(("$JS.API.STREAM.CREATE.NCII_FORGED", b'{"subjects":["ncii.>"]}'))
    try:
        subjects = await _publish_all(nc, sends)
        assert await refusals.missing(subjects) == []
    finally:
        await nc.close()
    # and the streams are as the operator made them
    operator = await _operator(secured_server)
    try:
        for stream in ALL_STREAMS:
            reply = await operator.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
            info = json.loads(reply.data)
            assert "error" not in info and "subject_transform" not in info["config"], stream
    finally:
        await operator.close()


@pytest.mark.parametrize("user", SERVICES)
async def test_only_intake_may_write_or_erase_case_keys(secured_server: str, user: str) -> None:
    nc, refusals = await _watched(secured_server, user)
    case = str(uuid.uuid4())
    try:
        if user == "intake":  # the owner of cases: it creates a case's key and erases it
            ack = await nc.jetstream().publish(f"$KV.ncii_case_keys.{case}", b"wrapped")
            assert ack.seq > 0
            return
        sends = [
            (f"$KV.ncii_case_keys.{case}", b'{"erased_at": "2026-11-29T00:00:00Z"}'),
            ("$JS.API.STREAM.MSG.DELETE.KV_ncii_case_keys", b'{"seq":1}'),
        ]
        assert await refusals.missing(await _publish_all(nc, sends)) == []
    finally:
        await nc.close()


@pytest.mark.parametrize("user", SERVICES)
async def test_only_takedown_may_write_evidence_keys_below_a_case_and_nothing_else_there(
    secured_server: str, user: str
) -> None:
    nc, refusals = await _watched(secured_server, user)
    case, evidence = str(uuid.uuid4()), str(uuid.uuid4())
    own = f"$KV.ncii_case_keys.{case}.evidence.{evidence}"
    try:
        sends = [
            (f"$KV.ncii_case_keys.{case}.other.{evidence}", b"wrapped"),
            (f"$KV.ncii_case_keys.{case}.evidence.{evidence}.more", b"wrapped"),
        ]
        if user == "takedown":  # a key per evidence record (decision 0032), and its purge
            ack = await nc.jetstream().publish(own, b"wrapped")
            assert ack.seq > 0
            purge = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
            assert (await nc.jetstream().publish(own, b"", headers=purge)).seq > ack.seq
        elif user != "intake":  # intake writes the whole bucket (case keys)
            sends.append((own, b"wrapped"))
        if user != "intake":
            assert await refusals.missing(await _publish_all(nc, sends)) == []
    finally:
        await nc.close()


@pytest.mark.parametrize("user", WRITERS)
async def test_a_service_cannot_read_or_write_another_services_idempotency_records(
    secured_server: str, user: str
) -> None:
    nc, refusals = await _watched(secured_server, user)
    try:
        own = await nc.jetstream().publish(f"$KV.ncii_idempotency.{user}.{uuid.uuid4().hex}", b"{}")
        assert own.seq > 0
        sends: list[tuple[str, bytes]] = []
        for other in SERVICES:
            if other != user:
                sends += [
                    (f"$KV.ncii_idempotency.{other}.{uuid.uuid4().hex}", b"{}"),
                    (f"$JS.API.DIRECT.GET.KV_ncii_idempotency.$KV.ncii_idempotency.{other}.x", b""),
                ]
        sends.append((f"$KV.ncii_idempotency.{uuid.uuid4().hex}", b"{}"))  # the old, shared layout
        assert await refusals.missing(await _publish_all(nc, sends)) == []
    finally:
        await nc.close()


async def test_the_dashboard_may_not_read_the_case_keys_nor_keep_idempotency_records(
    secured_server: str,
) -> None:
    # Decision 0057: the dashboard holds codes and counts and never decrypts, so its user gets
    # no part of the key bucket: not a key by its case (a kv.get is a Direct Get of the last
    # message on the key's subject), not the bucket's messages by sequence, not its stream's
    # info, not its changes. It has no write routes, hence no idempotency records either.
    case = str(uuid.uuid4())
    operator = await _operator(secured_server)
    try:  # a key that is there to be read
        assert (await operator.jetstream().publish(f"$KV.ncii_case_keys.{case}", b"k")).seq > 0
    finally:
        await operator.close()
    nc, refusals = await _watched(secured_server, "dashboard")
    try:
        await nc.subscribe("$KV.ncii_case_keys.>")
        sends = [
            (f"$JS.API.DIRECT.GET.KV_ncii_case_keys.$KV.ncii_case_keys.{case}", b""),
            ("$JS.API.DIRECT.GET.KV_ncii_case_keys", b'{"seq":1}'),
            ("$JS.API.DIRECT.GET.KV_ncii_case_keys", b'{"last_by_subj":"$KV.ncii_case_keys.>"}'),
            ("$JS.API.STREAM.INFO.KV_ncii_case_keys", b""),
            ("$JS.API.STREAM.INFO.KV_ncii_idempotency", b""),
            ("$JS.API.DIRECT.GET.KV_ncii_idempotency.$KV.ncii_idempotency.dashboard.x", b""),
            (f"$KV.ncii_idempotency.dashboard.{uuid.uuid4().hex}", b"{}"),
        ]
        subjects = ["$KV.ncii_case_keys.>", *await _publish_all(nc, sends)]
        assert await refusals.missing(subjects) == []
    finally:
        await nc.close()


async def test_the_audit_service_has_no_idempotency_records_but_reads_case_keys(
    secured_server: str,
) -> None:
    # The auditors' service only reads (its reveals are recorded as events, decision 37): no
    # write route, no idempotency records. It decrypts for a recorded reveal: the keys stay.
    nc, refusals = await _watched(secured_server, "audit")
    try:
        sends = [
            ("$JS.API.STREAM.INFO.KV_ncii_idempotency", b""),
            (f"$KV.ncii_idempotency.audit.{uuid.uuid4().hex}", b"{}"),
        ]
        assert await refusals.missing(await _publish_all(nc, sends)) == []
        assert (await nc.jetstream().key_value("ncii_case_keys")) is not None
    finally:
        await nc.close()


@pytest.mark.parametrize("user", SERVICES)
async def test_a_service_can_neither_read_nor_forge_another_users_replies(
    secured_server: str, user: str
) -> None:
    # A forged reply to another service's Direct Get would be an event it never stored.
    nc, refusals = await _watched(secured_server, user)
    try:
        others = [u for u in [*SERVICES, OPERATOR] if u != user]
        listens = ["_INBOX.>", *(f"{inbox_prefix(o)}.>" for o in others)]
        for subject in listens:
            await nc.subscribe(subject)
        forged = [(f"{inbox_prefix(o)}.x.y", b"{}") for o in others]
        subjects = [*listens, *await _publish_all(nc, forged)]
        assert await refusals.missing(subjects) == []
    finally:
        await nc.close()


# -- F2: the services work under exactly the shipped permissions ---------------------------------


@dataclass(frozen=True)
class ShippedNats:
    """The server of deploy/nats/accounts.conf, joined with the passwords given to it."""

    plain_url: str

    def login(self, user: str) -> dict[str, str]:
        return {"NCII_NATS_USER": user, "NCII_NATS_PASSWORD": PASSWORDS[password_variable(user)]}


@pytest.fixture(scope="module")
async def services_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A log of real events only, for the service processes, prepared by the operator."""
    for url in _shipped_server(tmp_path_factory.mktemp("secured-services")):
        nc = await _operator(url)
        await ensure_streams(nc)
        await nc.close()
        yield url


@pytest.fixture(scope="module")
def shipped_intake(
    services_server: str, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service(
        "intake",
        ShippedNats(services_server),
        tmp_path_factory.mktemp("shipped-intake"),
        master_key_file,
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
def shipped_hashmatch(
    services_server: str, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service(
        "hashmatch",
        ShippedNats(services_server),
        tmp_path_factory.mktemp("shipped-hashmatch"),
        master_key_file,
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
def shipped_dashboard(
    services_server: str, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    work = tmp_path_factory.mktemp("shipped-dashboard")
    service = start_service(
        "dashboard",
        ShippedNats(services_server),
        work,
        master_key_file,
        # where no master key is: a runtime that loaded one would create it there
        extra_env={"NCII_MASTER_KEY_FILE": str(work / "absent" / "master.key")},
    )
    yield service
    stop_service(service)


async def _operator_keys(
    url: str, signing: SigningKey, organisation: str, *roles: str
) -> list[str]:
    nc = await _operator(url)
    try:
        ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=signing)
        return [
            (await create_principal(ref_store, organisation=organisation, role=role))[1]
            for role in roles
        ]
    finally:
        await nc.close()


async def _replayed_once(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST twice with one Idempotency-Key: 201, then the same answer replayed."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    first = await client.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(path, json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    result: dict[str, Any] = first.json()
    return result


async def test_intake_and_hashmatch_serve_idempotent_writes_and_catch_up_as_their_shipped_users(
    services_server: str,
    shipped_intake: RunningService,
    shipped_hashmatch: RunningService,
    operator_signing: SigningKey,
) -> None:
    partner, platform = await _operator_keys(
        services_server, operator_signing, f"ngo-{uuid.uuid4().hex[:6]}", "partner", "platform"
    )
    await caught_up(shipped_intake)
    await caught_up(shipped_hashmatch)
    value = "e64cc9d91e623842f8d1f1d9a398e78c9f199a3bd87924f2b7e11e0bf061b064"
    async with shipped_intake.client(partner) as client:
        case = await _replayed_once(client, "/v1/cases", case_body())
        case_id = case["case_id"]
        response = await client.post(
            f"/v1/cases/{case_id}/non-consent",
            json={"stated_at": ago(minutes=5), "method": "written"},
        )
        assert response.status_code == 200, response.text
        hashes = {"hashes": [{"algorithm": "pdq", "value": value, "quality": 90, "media": "image"}]}
        response = await client.post(f"/v1/cases/{case_id}/hashes", json=hashes)
        assert response.status_code == 200, response.text
    await caught_up(shipped_hashmatch)
    sighting = {
        "hash": {"algorithm": "pdq", "value": value},
        "url": "https://videos.example.com/watch/shipped",
        "seen_at": ago(minutes=1),
    }
    async with shipped_hashmatch.client(platform) as client:
        # the sighting's URL is personal: hashmatch encrypts it with the case's key, which it
        # may read but not write
        found = await _replayed_once(client, "/v1/sightings", sighting)
    assert len(found["matches"]) == 1
    await caught_up(shipped_intake)
    await caught_up(shipped_hashmatch)


async def test_the_dashboard_counts_cases_as_its_shipped_user_without_case_keys(
    services_server: str,
    shipped_intake: RunningService,
    shipped_dashboard: RunningService,
    operator_signing: SigningKey,
) -> None:
    partner, staff = await _operator_keys(
        services_server, operator_signing, f"ngo-{uuid.uuid4().hex[:6]}", "partner", "caseworker"
    )
    await caught_up(shipped_intake)
    await caught_up(shipped_dashboard)
    async with shipped_dashboard.client(staff) as client:
        before = (await dashboard_view(client))["cases"]["total"]
    async with shipped_intake.client(partner) as client:
        response = await client.post("/v1/cases", json=case_body())
        assert response.status_code == 201, response.text
    await caught_up(shipped_dashboard)
    async with shipped_dashboard.client(staff) as client:
        assert (await dashboard_view(client))["cases"]["total"] == before + 1
    assert not os.path.exists(shipped_dashboard.env["NCII_MASTER_KEY_FILE"])  # noqa: ASYNC240


async def test_a_service_refuses_to_start_until_the_operator_runs_ncii_log_init(
    tmp_path: Path, master_key_file: Path, keys_dir: Path
) -> None:
    from ncii_events.service import ServiceRuntime
    from ncii_events.settings import Settings
    from ncii_takedown.main import SPEC

    (tmp_path / "nats").mkdir()
    for url in _shipped_server(tmp_path / "nats"):
        settings = Settings(
            nats_url=url,
            nats_user="takedown",
            nats_password=PASSWORDS[password_variable("takedown")],
            var_dir=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'takedown.db'}",
            master_key_file=master_key_file,
            signing_keys_dir=keys_dir,
        )
        runtime = ServiceRuntime(SPEC, settings)
        with pytest.raises(StreamsMissingError, match="ncii log init"):
            await runtime.start()
        await runtime.stop()

        operator = {
            "NCII_NATS_USER": OPERATOR,
            "NCII_NATS_PASSWORD": PASSWORDS[password_variable(OPERATOR)],
        }
        init = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ncii_cli.main",
            "log",
            "init",
            env={**os.environ, "NCII_NATS_URL": url, "NCII_VAR_DIR": str(tmp_path), **operator},
        )
        assert await init.wait() == 0

        runtime = ServiceRuntime(SPEC, settings)
        try:
            await runtime.start()
        finally:
            await runtime.stop()
