"""`ncii run` as a user starts it: the embedded NATS server and every service, each its own
process; Ctrl-C stops them all; a second start reuses the data. It runs on ports of its own
(NCII_BASE_PORT), so a `ncii run` already up on the machine does not get in its way."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from ncii_cli.services import all_services
from ncii_events.embedded import port_is_free
from ncii_events.settings import Settings

from tests.support.eventually import eventually_sync


@dataclass(frozen=True)
class Ports:
    base: int
    services: dict[str, int]
    every: list[int]

    @property
    def intake(self) -> str:
        return f"http://127.0.0.1:{self.services['intake']}"


def _ports_of_a_free_base() -> Ports:
    """A base port whose every derived port is free now. Chosen when the test starts, not when
    the module is collected: minutes may pass in between, and a parallel run may take them."""
    names = list(all_services())  # in the order of their default ports: base+1, base+2, ...
    for _ in range(200):
        base = random.randrange(20_000, 30_000)  # below the ephemeral range
        services = {name: base + offset for offset, name in enumerate(names, start=1)}
        ports = [base, base + Settings.BASE_PORT_MONITOR_OFFSET, *services.values()]
        if all(port_is_free(p) for p in ports):
            return Ports(base, services, ports)
    raise AssertionError("no free block of ports between 20000 and 30000")


def _env(ports: Ports) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCII_")}
    return {**env, "NCII_BASE_PORT": str(ports.base)}


def _start(workdir: Path, ports: Ports) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ncii_cli.main", "run"],
        cwd=workdir,
        env=_env(ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_all_ready(process: subprocess.Popen[bytes], ports: Ports) -> None:
    pending = dict(ports.services)

    def all_ready() -> bool:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        for name, port in list(pending.items()):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    del pending[name]
            except httpx.HTTPError:
                pass
        return not pending

    # Generous: the first start may compile hashmatch's kernels on a busy machine.
    eventually_sync(all_ready, what="every service becoming ready", within=300, interval=0.2)


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode()
    return output.decode()


def _cli(workdir: Path, ports: Ports, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ncii_cli.main", *args],
        cwd=workdir,
        env=_env(ports),
        capture_output=True,
        text=True,
    )


def _key(workdir: Path, ports: Ports) -> str:
    result = _cli(workdir, ports, "keys", "create", "--org", "run-test", "--role", "partner")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_ncii_run_starts_everything_stops_on_ctrl_c_and_keeps_data_across_restarts(
    tmp_path: Path,
) -> None:
    ports = _ports_of_a_free_base()
    intake = ports.intake
    first = _start(tmp_path, ports)
    try:
        _wait_all_ready(first, ports)
        key = _key(tmp_path, ports)
        headers = {"Authorization": f"Bearer {key}"}
        eventually_sync(
            lambda: httpx.get(f"{intake}/v1/cases", headers=headers).status_code != 401,
            what="the new key being projected",
            interval=0.1,
        )
        body = {
            "pseudonym": "Kite",
            "age_group": "adult",
            "harm_categories": ["threat_sextortion"],
            "spread_status": "threatened",
            "intake_channel": "phone",
            "learned_at": "2026-01-01T00:00:00Z",
            "consents": {"takedown": True, "share_hashes": False, "referral": True},
        }
        opened = httpx.post(
            f"{intake}/v1/cases", json=body, headers={**headers, "Idempotency-Key": "kite-1"}
        )
        assert opened.status_code == 201
        # every service signed with the key `ncii run` made for it, the CLI with the operator's
        keys = tmp_path / "var" / "keys"
        assert keys.stat().st_mode & 0o777 == 0o700
        for signer in (*ports.services, "operator"):
            assert (keys / f"{signer}.ed25519").stat().st_mode & 0o777 == 0o600
        verified = _cli(tmp_path, ports, "log", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        for stream in ("NCII", "NCII_REF"):  # the case's events, and the key's
            assert re.search(
                rf"^{stream}: [1-9]\d* events .*: [1-9]\d* verified, 0 unsigned .*, 0 bad$",
                verified.stdout,
                re.MULTILINE,
            ), verified.stdout
    finally:
        output = _stop(first)
    assert intake in output and "stopped" in output
    assert all(port_is_free(p) for p in ports.every), "something still listens after Ctrl-C"

    second = _start(tmp_path, ports)
    try:
        _wait_all_ready(second, ports)
        case = httpx.get(f"{intake}/v1/cases/{opened.json()['case_id']}", headers=headers)
        assert case.status_code == 200 and case.json()["pseudonym"] == "Kite"
    finally:
        _stop(second)
