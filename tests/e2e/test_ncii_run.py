"""`ncii run` as a user starts it: the embedded NATS server and every service, each its own
process; Ctrl-C stops them all; a second start reuses the data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from ncii_cli.services import all_services
from ncii_events.embedded import port_is_free
from ncii_events.settings import EMBEDDED_NATS_MONITOR_PORT, EMBEDDED_NATS_PORT

SERVICE_PORTS = {name: spec.port for name, spec in all_services().items()}
PORTS = [EMBEDDED_NATS_PORT, EMBEDDED_NATS_MONITOR_PORT, *SERVICE_PORTS.values()]

pytestmark = pytest.mark.skipif(
    not all(port_is_free(p) for p in PORTS),
    reason=f"the embedded ports {PORTS} are in use (is `ncii run` already running here?)",
)


def _start(workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCII_")}
    return subprocess.Popen(
        [sys.executable, "-m", "ncii_cli.main", "run"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_all_ready(process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(SERVICE_PORTS)
    while pending and time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        for name, port in list(pending.items()):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    del pending[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    assert not pending, f"not ready: {pending}"


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode()
    return output.decode()


def _key(workdir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCII_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ncii_cli.main",
            "keys",
            "create",
            "--org",
            "run-test",
            "--role",
            "partner",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_ncii_run_starts_everything_stops_on_ctrl_c_and_keeps_data_across_restarts(
    tmp_path: Path,
) -> None:
    first = _start(tmp_path)
    try:
        _wait_all_ready(first)
        key = _key(tmp_path)
        headers = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 10
        while httpx.get("http://127.0.0.1:18101/v1/cases", headers=headers).status_code == 401:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        body = {
            "pseudonym": "Kite",
            "age_group": "adult",
            "harm_categories": ["threat_sextortion"],
            "spread_status": "threatened",
            "intake_channel": "phone",
            "learned_at": "2026-01-01T00:00:00Z",
            "consents": {"takedown": True, "share_hashes": False, "referral": True},
        }
        opened = httpx.post("http://127.0.0.1:18101/v1/cases", json=body, headers=headers)
        assert opened.status_code == 201
    finally:
        output = _stop(first)
    assert "http://127.0.0.1:18101" in output and "stopped" in output
    assert all(port_is_free(p) for p in PORTS), "something still listens after Ctrl-C"

    second = _start(tmp_path)
    try:
        _wait_all_ready(second)
        case = httpx.get(
            f"http://127.0.0.1:18101/v1/cases/{opened.json()['case_id']}", headers=headers
        )
        assert case.status_code == 200 and case.json()["pseudonym"] == "Kite"
    finally:
        _stop(second)
