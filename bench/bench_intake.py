"""Intake benchmark: case opens per second and latency at 16 concurrent clients over loopback.

Each open is a real request to the intake service running as its own process (uvicorn), with
authentication, validation, a new case key in the key bucket, an append to the log and the
idempotency record; the NATS server is the embedded one from the wheel. Target on this 2-core
machine: at least 500 opens/s with p99 under 50 ms.

With ``--get-case``, also ``GET /v1/cases/{id}`` of a 50-event case at the same number of
clients (target: p99 under 20 ms). ``--transport stock|fast`` sets ``NCII_NATS_TRANSPORT`` for
the service (default: the setting's own default).

Run: python -m bench.bench_intake [--quick] [--transport stock|fast] [--get-case]
        [--out bench/results/intake.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ncii_contracts import ALL_EVENTS
from ncii_events.auth import create_principal
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.projection import ProjectionRunner
from ncii_events.registry import EventRegistry
from ncii_events.signing import OPERATOR, key_path, load_signing_key, provision
from ncii_events.store import EventStore
from ncii_events.stream import CASES, REFERENCE, ensure_streams
from ncii_events.transport import connect
from ncii_intake.read_models.projections import CasesProjection

from bench import scratch_dir, wait_ready
from bench.bench_eventlog import fresh_pg_database, pg_reachable

ROOT = Path(__file__).resolve().parents[1]
TARGET_OPENS_PER_S = 500
TARGET_P99_MS = 50.0
TARGET_GET_P99_MS = 20.0
GET_CASE_EVENTS = 50


REGISTRY = EventRegistry(*ALL_EVENTS)


def _body() -> dict[str, Any]:
    learned = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "pseudonym": "Sparrow",
        "age_group": "adult",
        "harm_categories": ["distribution_without_consent_319_3", "threat_sextortion"],
        "spread_status": "spread",
        "channels": [{"kind": "messaging_app", "platform": "LINE"}],
        "intake_channel": "partner_api",
        "learned_at": learned,
        "consents": {"takedown": True, "share_hashes": True, "referral": True},
        "contact": {"email": "sparrow@example.org", "preferred": "email"},
    }


class _RawClient:
    """A keep-alive HTTP/1.1 client on asyncio streams: a load generator should cost as little
    CPU as possible on a 2-core machine shared with the server (httpx costs about 1 ms a
    request). It sends exactly what a client would: JSON body, bearer key, Idempotency-Key."""

    def __init__(self, url: str, key: str) -> None:
        host_port = url.split("://", 1)[1]
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.key = key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, idempotency_key: str) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: {idempotency_key}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        status, _ = await self._exchange(head.encode() + body)
        return status

    async def get(self, path: str) -> tuple[int, bytes]:
        head = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.key}\r\n\r\n"
        )
        return await self._exchange(head.encode())

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return int(status_line.split()[1]), body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _client_loop(
    url: str, key: str, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    body = json.dumps(_body()).encode()
    client = _RawClient(url, key)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status = await client.post("/v1/cases", body, str(uuid.uuid4()))
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 201:
                errors.append(status)
    finally:
        await client.close()


async def _measure(url: str, key: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_client_loop(url, key, deadline, latencies, errors) for _ in range(clients))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "opens": len(latencies),
        "opens_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49], 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(latencies[-1], 2),
        "errors": len(errors),
    }


async def _case_of(url: str, key: str, events: int) -> str:
    """A case opened over HTTP, then given locations until it holds ``events`` events."""
    client = _RawClient(url, key)
    try:
        status, body = await _post_json(client, "/v1/cases", _body())
        if status != 201:
            raise RuntimeError(f"opening the case answered {status}")
        case_id = str(json.loads(body)["case_id"])
        history = await _history_length(client, case_id)
        for i in range(events - history):
            location = {
                "url": f"https://example.org/post/{i}",
                "platform": "LINE",
                "channel_kind": "messaging_app",
            }
            status, _ = await _post_json(client, f"/v1/cases/{case_id}/locations", location)
            if status not in (200, 201):
                raise RuntimeError(f"reporting a location answered {status}")
        if await _history_length(client, case_id) != events:
            raise RuntimeError(f"the case does not hold {events} events")
        return case_id
    finally:
        await client.close()


async def _post_json(client: _RawClient, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {client.host}\r\n"
        f"Authorization: Bearer {client.key}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: {uuid.uuid4()}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return await client._exchange(head.encode() + data)


async def _history_length(client: _RawClient, case_id: str) -> int:
    status, body = await client.get(f"/v1/cases/{case_id}")
    if status != 200:
        raise RuntimeError(f"GET the case answered {status}")
    return len(json.loads(body)["timeline"])


async def _measure_get(
    url: str, key: str, case_id: str, clients: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[int] = []
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        client = _RawClient(url, key)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, _ = await client.get(f"/v1/cases/{case_id}")
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    errors.append(status)
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "clients": clients,
        "case_events": GET_CASE_EVENTS,
        "gets": len(latencies),
        "gets_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(latencies[-1], 2),
        "errors": len(errors),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), warm-up included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _start_intake(
    workdir: Path, nats_url: str, transport: str | None
) -> tuple[subprocess.Popen[bytes], str]:
    master = workdir / "master.key"
    MasterKey.load_or_create(master)
    provision(workdir / "keys", ["intake", OPERATOR])  # var/keys, as `ncii run` makes it
    port = free_port()
    env = {
        **os.environ,
        "NCII_NATS_URL": nats_url,
        "NCII_VAR_DIR": str(workdir),
        "NCII_MASTER_KEY_FILE": str(master),
        "NCII_PORT": str(port),
        # The bench's one partner key writes far faster than a partner's budget (decision 24);
        # the figure measured is the service's, not the limiter's refusals.
        "NCII_RATE_CASE_WRITES_PER_MINUTE": "10000000",
        "NCII_RATE_CASE_WRITES_BURST": "1000000",
    }
    if transport:
        env["NCII_NATS_TRANSPORT"] = transport
    command = [sys.executable, "-m", "ncii_intake.main"]
    if os.environ.get("NCII_BENCH_PROFILE"):  # where the time goes: python -m pstats FILE
        command[1:1] = ["-m", "cProfile", "-o", os.environ["NCII_BENCH_PROFILE"]]
    with open(workdir / "intake.log", "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    return process, f"http://127.0.0.1:{port}"


async def _issue_key(nats_url: str, workdir: Path) -> str:
    operator = load_signing_key(key_path(workdir / "keys", OPERATOR), OPERATOR)
    nc = await connect(nats_url, name="bench")
    try:
        await ensure_streams(nc)
        _pid, key = await create_principal(
            EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=operator),
            organisation="bench-ngo",
            role="partner",
        )
    finally:
        await nc.close()
    return key


async def _rebuild_cases(nats_url: str, db_url: str) -> dict[str, Any]:
    """Intake's own cases projection, replayed from the log the load above wrote (what a
    rebuild or a new replica does), timed from the runner's start to the last event applied."""
    # The projection runner still needs the fast client's direct paths (its rework lifts that).
    nc = await connect(nats_url, name="bench-rebuild", transport="fast")
    engine = make_engine(db_url)
    projection = CasesProjection()
    try:
        info = await nc.jetstream().stream_info(CASES.name, subjects_filter=projection.subjects[0])
        events = sum((info.state.subjects or {}).values())
        runner = ProjectionRunner(nc, engine, EventStore(nc, None, registry=REGISTRY), projection)
        t0 = time.perf_counter()
        await runner.start()
        while runner.applied < events and time.perf_counter() - t0 < 300:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # polls the runner's counter, as the event-log bench
        elapsed = time.perf_counter() - t0
        await runner.stop()
    finally:
        await engine.dispose()
        await nc.close()
    return {
        "events": events,
        "applied": runner.applied,
        "seconds": round(elapsed, 3),
        "events_per_s": round(runner.applied / elapsed, 1),
    }


async def _rebuild_everywhere(nats_url: str, workdir: Path) -> dict[str, Any]:
    out = {"sqlite": await _rebuild_cases(nats_url, f"sqlite+aiosqlite:///{workdir}/rebuild.db")}
    reason = pg_reachable()
    if reason is None:
        async with fresh_pg_database() as url:
            out["postgres"] = await _rebuild_cases(nats_url, url)
    else:
        out["postgres"] = {"skipped": reason}
    return out


def _run(seconds: float, clients: int, transport: str | None, get_case: bool) -> dict[str, Any]:
    workdir = scratch_dir("ncii-bench-intake-")
    # as before durable became the default: the numbers stay comparable with earlier runs
    server = EmbeddedNats(
        workdir / "nats", port=free_port(), monitor_port=free_port(), sync_always=False
    )
    server.start()
    service, url = _start_intake(workdir, server.url, transport)
    try:
        key = asyncio.run(_issue_key(server.url, workdir))
        asyncio.run(wait_ready(url, "intake"))
        # warm-up: the first requests pay for lazy imports, connections and caches
        asyncio.run(_client_loop(url, key, time.perf_counter() + 1.0, [], []))
        cpu_before = _cpu_seconds(service.pid)
        result = asyncio.run(_measure(url, key, clients, seconds))
        cpu = _cpu_seconds(service.pid) - cpu_before
        # CPU time the service spent per open: independent of other load on the machine
        result["service_cpu_ms_per_open"] = round(cpu * 1000 / max(1, result["opens"]), 3)
        if get_case:
            case_id = asyncio.run(_case_of(url, key, GET_CASE_EVENTS))
            cpu_before = _cpu_seconds(service.pid)
            got = asyncio.run(_measure_get(url, key, case_id, clients, seconds))
            cpu = _cpu_seconds(service.pid) - cpu_before
            got["service_cpu_ms_per_get"] = round(cpu * 1000 / max(1, got["gets"]), 3)
            result["get_case"] = got
        service.terminate()
        service.wait(15)
        result["cases_projection_rebuild"] = asyncio.run(_rebuild_everywhere(server.url, workdir))
    finally:
        service.terminate()
        service.wait(15)
        server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("bench/results/intake.json"))
    parser.add_argument(
        "--transport",
        choices=["stock", "fast"],
        default=None,
        help="NCII_NATS_TRANSPORT for the service (default: the setting's default)",
    )
    parser.add_argument(
        "--get-case", action="store_true", help="also GET a 50-event case at the same clients"
    )
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else 20.0
    result = _run(seconds, args.clients, args.transport, args.get_case)
    result["transport"] = args.transport or "default"
    result["target"] = {"opens_per_s": TARGET_OPENS_PER_S, "p99_ms": TARGET_P99_MS}
    result["met"] = {
        "opens_per_s": result["opens_per_s"] >= TARGET_OPENS_PER_S,
        "p99_ms": result["p99_ms"] < TARGET_P99_MS,
    }
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    print(
        f"intake: case opens over HTTP, each a real append to the log "
        f"(transport: {result['transport']})"
    )
    print(
        f"  {result['clients']} clients, {result['opens']} opens in {result['seconds']} s: "
        f"{result['opens_per_s']:.0f}/s (target >= {TARGET_OPENS_PER_S}: "
        f"{'met' if result['met']['opens_per_s'] else 'NOT met'})"
    )
    print(
        f"  latency p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, "
        f"p99 {result['p99_ms']} ms "
        f"(target < {TARGET_P99_MS}: {'met' if result['met']['p99_ms'] else 'NOT met'}), "
        f"errors {result['errors']}"
    )
    print(f"  service CPU per open: {result.get('service_cpu_ms_per_open')} ms")
    if "get_case" in result:
        got = result["get_case"]
        met = got["p99_ms"] < TARGET_GET_P99_MS
        result["met"]["get_case_p99_ms"] = met
        print(
            f"  GET /v1/cases/{{id}} of a {got['case_events']}-event case, {got['clients']} "
            f"clients: {got['gets_per_s']:.0f}/s, p50 {got['p50_ms']} ms, p99 {got['p99_ms']} ms "
            f"(target < {TARGET_GET_P99_MS:.0f}: {'met' if met else 'NOT met'}), "
            f"errors {got['errors']}; service CPU per GET {got['service_cpu_ms_per_get']} ms"
        )
    for backend, rebuild in result["cases_projection_rebuild"].items():
        if "skipped" in rebuild:
            why = rebuild["skipped"]
            print(f"  cases projection rebuilt from the log, {backend}: skipped ({why})")
            continue
        print(
            f"  cases projection rebuilt from the log, {backend}: {rebuild['applied']:,} events "
            f"in {rebuild['seconds']} s, {rebuild['events_per_s']:,.0f} events/s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
