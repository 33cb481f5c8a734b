"""Auditor benchmarks (issue 13): ``ncii audit verify``'s rate over a log of N signed events on
worker processes, and replay / as-of of a 1,000-event case (first read: every signature
verified; later reads: signatures remembered, hashes and links recomputed). Its own NATS server
on a temporary store; results in bench/results/audit.json. Beside the wall rate, the CPU each
process spent per event (reader, verify workers, NATS server) and the load average it ran
under: on a shared machine the wall rate follows the load (figures: decision 51)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import time
import uuid
from datetime import datetime
from pathlib import Path

import psutil
from ncii_audit.app import AuditApp, settle_heap
from ncii_audit.verify import verify_store
from ncii_contracts import ALL_EVENTS
from ncii_contracts.intake import PoliceReportDecisionRecorded
from ncii_events.crypto import MasterKey
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.envelope import Actor
from ncii_events.keys import NatsCaseKeys
from ncii_events.model import NEW, AggregateRef, Cause, Version
from ncii_events.registry import EventRegistry
from ncii_events.signing import allowed_signers, key_path, load_signing_key, provision
from ncii_events.store import EventStore
from ncii_events.stream import ensure_streams
from ncii_events.transport import connect

from bench import scratch_dir

CAUSE = Cause(Actor("org-bench", "p", "caseworker"), "c", "c")


async def run(events: int, workers: int | None) -> dict[str, object]:
    folder = scratch_dir("ncii-bench-audit-")
    provision(folder / "keys", ["intake", "audit"])
    keys_doc = json.loads((folder / "keys" / "public-keys.json").read_text())
    server = EmbeddedNats(
        folder / "nats", port=free_port(), monitor_port=free_port(), sync_always=False
    )
    server.start()
    try:
        nc = await connect(server.url, name="bench-audit")
        await ensure_streams(nc)
        registry = EventRegistry(*ALL_EVENTS)
        signing = load_signing_key(key_path(folder / "keys", "intake"), "intake")
        keys = NatsCaseKeys(nc, MasterKey.load_or_create(folder / "master.key"), writer=True)
        store = EventStore(nc, keys, registry=registry, signing=signing)
        allowed = allowed_signers({"intake": [PoliceReportDecisionRecorded]})
        # one case of 1,000 events, the rest spread over cases of 100
        big = str(uuid.uuid4())
        cases = [big] * 10 + [str(uuid.uuid4()) for _ in range(max(0, events // 100 - 10))]
        versions: dict[str, Version] = {}
        for case in cases:
            version = versions.get(case, NEW)
            for _ in range(10):
                batch = [PoliceReportDecisionRecorded(decision="declined")] * 10
                written = await store.append(
                    AggregateRef(case, "case", case), batch, expected=version, cause=CAUSE
                )
                version = Version(written[-1].seq, written[-1].envelope.hash, version.count + 10)
            versions[case] = version
        total = await store.last_sequence()
        load = os.getloadavg()[0]
        cpu_before = _cpu_seconds(server)
        started = time.perf_counter()
        report = await verify_store(store, keys_doc, allowed, workers=workers)
        verify_s = time.perf_counter() - started
        cpu_after = _cpu_seconds(server)
        split = [after - before for after, before in zip(cpu_after, cpu_before, strict=True)]
        verify_cpu_s = sum(split)
        assert report.bad == 0 and report.checked == total, report
        auditor = AuditApp(store, keys_doc, allowed, None)
        settle_heap()  # as the audit service does once started
        actor = Actor("centre", "a", "auditor")
        t0 = time.perf_counter()
        history = await auditor.replay(big, actor)
        first_ms = (time.perf_counter() - t0) * 1000
        assert len(history.entries) == 1000 and history.ok
        replays, as_ofs, replay_cpu, as_of_cpu = [], [], [], []
        middle = datetime.fromisoformat(history.entries[499].occurred_at.replace("Z", "+00:00"))
        for _ in range(20):
            t0, c0 = time.perf_counter(), time.process_time()
            await auditor.replay(big, actor)
            replays.append((time.perf_counter() - t0) * 1000)
            replay_cpu.append((time.process_time() - c0) * 1000)
            t0, c0 = time.perf_counter(), time.process_time()
            await auditor.replay(big, actor, as_of=middle)
            as_ofs.append((time.perf_counter() - t0) * 1000)
            as_of_cpu.append((time.process_time() - c0) * 1000)
        await nc.close()
    finally:
        server.stop()
    cores = len(os.sched_getaffinity(0))
    return {
        "events": total,
        "load_average_1min_before_verify": round(load, 1),
        "verify_workers": workers or "one per core",
        "verify_seconds": round(verify_s, 2),
        "verify_events_per_s": round(total / verify_s),
        # CPU spent by this process, its worker processes and the NATS server, per event: what
        # the rate would be on idle cores (the machine is shared, so the wall rate wanders)
        "verify_cpu_us_per_event": round(verify_cpu_s / total * 1e6, 1),
        "verify_cpu_us_per_event_reader_workers_nats": [round(t / total * 1e6, 1) for t in split],
        f"verify_cpu_bound_events_per_s_on_{cores}_idle_cores": round(cores * total / verify_cpu_s),
        "replay_1000_first_ms": round(first_ms, 1),
        "replay_1000_median_ms": round(statistics.median(replays), 1),
        "as_of_1000_median_ms": round(statistics.median(as_ofs), 1),
        "replay_1000_cpu_median_ms": round(statistics.median(replay_cpu), 1),
        "as_of_1000_cpu_median_ms": round(statistics.median(as_of_cpu), 1),
        "load_average_1min_after": round(os.getloadavg()[0], 1),
    }


def _cpu_seconds(server: EmbeddedNats) -> tuple[float, float, float]:
    """User and system CPU of this process (the reader), its finished children (the verify
    workers, once their pool is shut down) and the NATS server."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    nats = 0.0
    if server.process is not None:
        times = psutil.Process(server.process.pid).cpu_times()
        nats = times.user + times.system
    return (
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
        nats,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument("--out", default="bench/results/audit.json")
    args = parser.parse_args(argv)
    result = asyncio.run(run(20_000 if args.quick else args.events, args.workers))
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
