"""Dashboard benchmark (issue 13): rebuilding the dashboard's projections from the log, and its
JSON endpoints at 100,000 cases, 16 concurrent clients over HTTP (target p99 under 50 ms).

1. Rebuild. A log of N cases (about 16 events each: the opening, a location, an assessment,
   two takedowns with their notices and answers, a sighting and its count, a referral, for
   minors the art. 7 report; some closed) is appended to an embedded NATS server, each
   aggregate's events in one append, many cases in flight. Both dashboard projections then
   replay the whole log into an empty SQLite database (what ``ncii projections rebuild
   --service dashboard`` does), timed from the runners' start to the last event applied.
   Full run: 63,000 cases (just over 1,000,000 events); ``--quick``: 5,000 (79,502).
2. Endpoints. The read models of 100,000 cases are written by the projections themselves
   (``apply_batch``, without the log: what is measured is the read path); the service runs as
   its own process on them and 16 clients read every view over HTTP (summary, cases,
   takedowns, compliance, reports, referrals, matches, periods by month, by year as CSV):
   first each view's cold read (computed from the tables), then the steady load (answers from
   memory), then the same load while a case is opened every 200 ms (each commit starts one
   computation per view; requests meanwhile get the previous answer).

Run: python -m bench.bench_dashboard [--quick] [--rebuild-cases N] [--cases N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from ncii_contracts import ALL_EVENTS
from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import MatchFound, SightingsCounted
from ncii_contracts.intake import (
    CaseClosed,
    CaseOpened,
    Consents,
    LegalAssessmentRecorded,
    LocationReported,
)
from ncii_contracts.referral import (
    MandatoryReportDue,
    MandatoryReportSubmitted,
    ReferralCompleted,
    ReferralOffered,
)
from ncii_contracts.takedown import (
    ContentRemoved,
    NoticeSent,
    PlatformRegistered,
    TakedownOpened,
    TakedownRefused,
    TakedownRequested,
)
from ncii_dashboard.read_models.projections import CasesProjection, PlatformsProjection
from ncii_events.auth import create_principal
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, migrate
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.envelope import Actor, Envelope
from ncii_events.model import NEW, AggregateRef, Cause, RecordedEvent, Version
from ncii_events.projection import ProjectionRunner
from ncii_events.registry import EventRegistry
from ncii_events.signing import OPERATOR, key_path, load_signing_key, provision
from ncii_events.store import EventStore
from ncii_events.stream import REFERENCE, REFERENCE_CASE, ensure_streams
from ncii_events.transport import connect

from bench import scratch_dir, wait_ready
from bench.bench_intake import _RawClient

TARGET_P99_MS = 50.0
REPEATS = 6
"""Each view computed this many times in process: the first from a cold page cache."""
CAUSE = Cause(Actor("centre", "bench", "caseworker"), "bench", "bench")
REGISTRY = EventRegistry(*ALL_EVENTS)
PLATFORMS = 40
WRITERS = 128
ORGS = [f"ngo-{i}" for i in range(12)]
CATEGORIES = [
    "secret_recording_319_1",
    "forced_recording_319_2",
    "distribution_without_consent_319_3",
    "synthetic_image_319_4",
    "threat_sextortion",
    "child_sexual_exploitation",
    "sexual_audio_315_1",
]
PATHS = [
    "/v1/dashboard/summary",
    "/v1/dashboard/cases",
    "/v1/dashboard/takedowns",
    "/v1/dashboard/compliance",
    "/v1/dashboard/reports",
    "/v1/dashboard/referrals",
    "/v1/dashboard/matches",
    "/v1/dashboard/periods?period=month",
    "/v1/dashboard/periods?period=year&format=csv",
]
MIGRATIONS = Path(__file__).resolve().parents[1] / "services/dashboard/ncii_dashboard/migrations"


def _cpu(pid: int | None = None) -> float:
    """User plus system CPU seconds of this process (or of ``pid``)."""
    if pid is None:
        return time.process_time()
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _t(day: int, hours: float = 0.0) -> str:
    """A time in 2026 ``day`` days and ``hours`` hours after 1 January (RFC 3339, UTC)."""
    seconds = int(day * 86400 + hours * 3600)
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(1767225600 + seconds))


def _platform(i: int) -> PlatformRegistered:
    return PlatformRegistered(
        platform_id=f"p{i}",
        name=f"Platform {i}",
        kind="social",
        jurisdiction=["TW", "US", "GB", "EU"][i % 4],
        regimes=["tw"],
        channel="webhook",
        webhook_url="https://example.invalid/hook",
        api_organisation=f"plat-{i}",
    )


def _case(n: int, rng: random.Random) -> list[tuple[AggregateRef, list[DomainEvent]]]:
    """One case's aggregates and their events (about 16), the case's own first."""
    case = str(uuid.uuid4())
    day = rng.randint(0, 330)
    minor = rng.random() < 0.25
    case_events: list[DomainEvent] = [
        CaseOpened(
            organisation=rng.choice(ORGS),
            reference="ABCD-EFGH-JKLM",
            age_group="minor" if minor else "adult",
            harm_categories=rng.sample(CATEGORIES, k=rng.randint(1, 2)),
            spread_status="spread",
            intake_channel=rng.choice(["phone", "web_form", "voicemail", "partner_api"]),
            learned_at=_t(day),
            consents=Consents(takedown=True, share_hashes=True, referral=True),
        ),
        LocationReported(location_id=f"l{n}", channel_kind="social_platform"),
        LegalAssessmentRecorded(
            categories=[rng.choice(CATEGORIES)],
            how_obtained="unknown",
            depicts=["other_sexual_acts"],
        ),
    ]
    if rng.random() < 0.4:
        case_events.append(CaseClosed(reason="resolved"))
    out: list[tuple[AggregateRef, list[DomainEvent]]] = [
        (AggregateRef(case, "case", case), case_events)
    ]
    for k in range(2):
        takedown = f"t{n}-{k}"
        platform_id = f"p{rng.randrange(PLATFORMS)}"
        hours = 24 if minor else 72
        answer: DomainEvent
        if rng.random() < 0.88:
            answer = ContentRemoved(
                takedown_id=takedown,
                notice_id=takedown,
                removed_at=_t(day, rng.uniform(0.5, hours * 1.3)),
            )
        else:
            answer = TakedownRefused(
                takedown_id=takedown,
                notice_id=takedown,
                refused_at=_t(day, rng.uniform(1, 50)),
                reason="other",
            )
        out.append(
            (
                AggregateRef(case, "takedown", takedown),
                [
                    TakedownOpened(
                        takedown_id=takedown,
                        source="location",
                        source_event_id="e",
                        platform_id=platform_id,
                    ),
                    TakedownRequested(
                        takedown_id=takedown,
                        notice_id=takedown,
                        platform_id=platform_id,
                        channel="webhook",
                        regimes=["tw"],
                        deadline_regime="tw",
                        deadline_hours=hours,
                        legal=True,
                    ),
                    NoticeSent(
                        takedown_id=takedown,
                        notice_id=takedown,
                        channel="webhook",
                        sent_at=_t(day),
                        deadline_at=_t(day, hours),
                    ),
                    answer,
                ],
            )
        )
    match = f"m{n}"
    out.append(
        (
            AggregateRef(case, "match", match),
            [
                MatchFound(
                    match_id=match,
                    sighting_id=match,
                    bank="b",
                    entry_key="k",
                    algorithm="pdq",
                    distance=4,
                    platform=f"plat-{rng.randrange(PLATFORMS)}",
                    seen_at=_t(day, 5),
                ),
                SightingsCounted(
                    match_id=match,
                    entry_key="k",
                    platform="plat-1",
                    window_start=_t(day, 5),
                    window_end=_t(day, 6),
                    sightings=rng.randint(1, 30),
                    first_seen_at=_t(day, 5),
                    last_seen_at=_t(day, 5.5),
                ),
            ],
        )
    )
    referral = f"r{n}"
    out.append(
        (
            AggregateRef(case, "referral", referral),
            [
                ReferralOffered(
                    referral_id=referral,
                    partner_id="partner-1",
                    partner_organisation=f"partner-{rng.randrange(8)}",
                    service="counselling",
                    needs=["emotional_support"],
                    consent_basis="victim_consent",
                    age_group="minor" if minor else "adult",
                ),
                ReferralCompleted(referral_id=referral, completed_at=_t(day + 20)),
            ],
        )
    )
    if minor:
        report = f"rep{n}"
        out.append(
            (
                AggregateRef(case, "mandatory_report", report),
                [
                    MandatoryReportDue(report_id=report, learned_at=_t(day), due_at=_t(day, 24)),
                    MandatoryReportSubmitted(
                        report_id=report, filed_at=_t(day, rng.uniform(1, 30)), late=False
                    ),
                ],
            )
        )
    return out


async def fill_log(nc: Any, store: EventStore, ref_store: EventStore, cases: int) -> int:
    """The log of ``cases`` cases; the number of events written."""
    for i in range(PLATFORMS):
        ref = AggregateRef(REFERENCE_CASE, "platform", f"p{i}")
        await ref_store.append(ref, [_platform(i)], expected=NEW, cause=CAUSE)
    rng = random.Random(13)
    written = PLATFORMS
    queue: asyncio.Queue[list[tuple[AggregateRef, list[DomainEvent]]] | None] = asyncio.Queue(1024)

    async def writer() -> None:
        nonlocal written
        while (parts := await queue.get()) is not None:
            # a case's aggregates in order: its opening before its takedowns (the fold's order);
            # an event per append, chained by version: the same messages as one append of the
            # aggregate's events, but an atomic batch costs the server ~7 ms and it takes them
            # one at a time (~200 events/s, whatever the writers), single ones ~3,600/s
            for ref, events in parts:
                version = NEW
                for event in events:
                    (stored,) = await store.append(ref, [event], expected=version, cause=CAUSE)
                    version = Version(stored.seq, stored.envelope.hash, version.count + 1)
                    written += 1

    writers = [asyncio.create_task(writer()) for _ in range(WRITERS)]
    started = time.perf_counter()
    for n in range(cases):
        await queue.put(_case(n, rng))
        if n and n % 10_000 == 0:
            rate = written / (time.perf_counter() - started)
            print(f"  {n} cases, {written} events appended ({rate:.0f}/s)", flush=True)
    for _ in writers:
        await queue.put(None)
    await asyncio.gather(*writers)
    return written


async def rebuild(
    db_url: str, store: EventStore, ref_store: EventStore, nats_pid: int
) -> dict[str, Any]:
    engine = make_engine(db_url)
    await migrate(engine, MIGRATIONS, "alembic_version_dashboard")
    runners = [
        ProjectionRunner(None, engine, store, CasesProjection()),
        ProjectionRunner(None, engine, ref_store, PlatformsProjection()),
    ]
    load_before, cpu_before, nats_before = _load(), _cpu(), _cpu(nats_pid)
    started = time.perf_counter()
    try:
        for runner in runners:
            await runner.start()
        for runner in runners:
            await runner.wait_caught_up(3600)
        elapsed = time.perf_counter() - started
        cpu_s, nats_s = _cpu() - cpu_before, _cpu(nats_pid) - nats_before
    finally:
        for runner in runners:
            await runner.stop()
        await engine.dispose()
    applied = sum(r.applied for r in runners)
    return {
        "events_applied": applied,
        "seconds": round(elapsed, 2),
        "events_per_s": round(applied / elapsed),
        # the runners' process (decode, fold, SQLite) and the NATS server, per event applied
        "cpu_s": round(cpu_s, 1),
        "cpu_us_per_event": round(cpu_s / applied * 1e6, 1),
        "nats_cpu_s": round(nats_s, 1),
        "load_average": [load_before, _load()],
    }


def seed(db_path: Path, cases: int) -> tuple[int, float]:
    """The read models of ``cases`` cases written by the dashboard's own projections, in
    batches, without the log (what is measured next is the read path): events, seconds."""
    from sqlalchemy import create_engine

    rng = random.Random(99)
    engine = create_engine(f"sqlite:///{db_path}")
    cases_projection, platforms_projection = CasesProjection(), PlatformsProjection()
    seq, batch = 1, []
    started = time.perf_counter()
    with engine.begin() as conn:
        platforms_projection.apply_batch(
            conn,
            [
                _recorded(i + 1, REFERENCE_CASE, "platform", _platform(i), _t(0))
                for i in range(PLATFORMS)
            ],
        )
        for n in range(cases):
            parts = _case(n, rng)
            at = _t(rng.randint(0, 330))
            for ref, events in parts:
                for event in events:
                    batch.append(_recorded(seq, ref.case_id, ref.aggregate, event, at))
                    seq += 1
            if len(batch) >= 5000:
                cases_projection.apply_batch(conn, batch)
                batch = []
        if batch:
            cases_projection.apply_batch(conn, batch)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return seq - 1, time.perf_counter() - started


def _recorded(seq: int, case_id: str, aggregate: str, event: DomainEvent, at: str) -> RecordedEvent:
    envelope = Envelope(
        event_id=str(seq),
        type=event.event_type,
        schema_version=type(event).version,
        case_id=case_id,
        aggregate=aggregate,
        aggregate_id=case_id,
        occurred_at=at,
        actor=CAUSE.actor,
        correlation_id="bench",
        causation_id="bench",
        traceparent=None,
        payload={},
        prev_hash="",
        hash="",
    )
    return RecordedEvent(seq, envelope, event)


def start_dashboard(
    workdir: Path, nats_url: str, db_url: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "NCII_NATS_URL": nats_url,
        "NCII_VAR_DIR": str(workdir),
        "NCII_MASTER_KEY_FILE": str(workdir / "master.key"),
        "NCII_DATABASE_URL": db_url,
        "NCII_PORT": str(port),
    }
    with open(workdir / "dashboard.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ncii_dashboard.main"], env=env, stdout=log, stderr=log
        )
    return process, f"http://127.0.0.1:{port}"


async def computations(db_url: str) -> dict[str, dict[str, float]]:
    """Each view computed in this process as the service computes it (the query, then the
    JSON), beside a ticker that wakes every millisecond: the longest the event loop went
    without it is how long a request arriving meanwhile would have waited for the
    computation (``loop_stall_ms``: the median of the runs after the first, and the longest
    of all). Wall and this process's CPU per computation too."""
    from ncii_dashboard.read_models import queries

    views: dict[str, Any] = {
        "summary": queries.summary,
        "cases": queries.cases,
        "takedowns": queries.takedowns,
        "compliance": queries.compliance,
        "reports": queries.reports,
        "referrals": queries.referrals,
        "matches": queries.matches,
        "periods-month": lambda c: queries.periods(c, "month"),
        "periods-year": lambda c: queries.periods(c, "year"),
    }
    engine = make_engine(db_url)
    out: dict[str, dict[str, float]] = {}
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
            for name, view in views.items():
                runs = []
                for _ in range(REPEATS):
                    stop, gaps = asyncio.Event(), [0.0]
                    ticker = asyncio.create_task(_tick(stop, gaps))
                    await asyncio.sleep(0.01)
                    gaps[0] = 0.0
                    started, cpu = time.perf_counter(), _cpu()
                    json.dumps(await view(conn))
                    runs.append((time.perf_counter() - started, _cpu() - cpu, gaps[0]))
                    stop.set()
                    await ticker
                first, rest = runs[0], runs[1:]
                out[name] = {
                    "first_ms": round(first[0] * 1000, 1),
                    "ms": round(statistics.median(r[0] for r in rest) * 1000, 1),
                    # this process's CPU: the loop's and the SQLite thread's
                    "cpu_ms": round(statistics.median(r[1] for r in rest) * 1000, 1),
                    "loop_stall_ms": round(statistics.median(r[2] for r in rest) * 1000, 1),
                    "loop_stall_max_ms": round(max(r[2] for r in runs) * 1000, 1),
                }
    finally:
        await engine.dispose()
    return out


async def _tick(stop: asyncio.Event, gaps: list[float]) -> None:
    """Wake every millisecond until ``stop``; ``gaps[0]``: the longest it overslept."""
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        gaps[0] = max(gaps[0], now - last - 0.001)
        last = now


async def cold(url: str, key: str) -> dict[str, float]:
    """Each view's first read: computed from the tables."""
    client = _RawClient(url, key)
    out: dict[str, float] = {}
    try:
        for path in PATHS:
            started = time.perf_counter()
            status, _ = await client.get(path)
            out[path] = round((time.perf_counter() - started) * 1000, 1)
            assert status == 200, (path, status)
    finally:
        await client.close()
    return out


async def load(
    url: str, key: str, clients: int, seconds: float, store: EventStore | None, service_pid: int
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[int] = []
    by_path: dict[str, list[float]] = {}
    deadline = time.perf_counter() + seconds
    trickled = 0

    async def loop(offset: int) -> None:
        client = _RawClient(url, key)
        i = offset
        try:
            while time.perf_counter() < deadline:
                path = PATHS[i % len(PATHS)]
                i += 1
                started = time.perf_counter()
                status, _ = await client.get(path)
                ms = (time.perf_counter() - started) * 1000
                latencies.append(ms)
                by_path.setdefault(path, []).append(ms)
                if status != 200:
                    errors.append(status)
        finally:
            await client.close()

    async def trickle() -> None:
        """A case opened every 200 ms: each commit makes every view stale."""
        nonlocal trickled
        rng = random.Random(7)
        assert store is not None
        while time.perf_counter() < deadline:
            ref, events = _case(10_000_000 + trickled, rng)[0]
            await store.append(ref, events[:1], expected=NEW, cause=CAUSE)
            trickled += 1
            await asyncio.sleep(0.2)

    load_before, service_before = _load(), _cpu(service_pid)
    started = time.perf_counter()
    tasks = [loop(c) for c in range(clients)]
    if store is not None:
        tasks.append(trickle())
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    service_cpu = _cpu(service_pid) - service_before
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(latencies[-1], 2),
        "errors": len(errors),
        "cases_opened_meanwhile": trickled,
        # the service's CPU (requests, and the projections and views while events arrive)
        "service_cpu_s": round(service_cpu, 2),
        "service_cpu_share": round(service_cpu / elapsed, 2),
        "service_cpu_ms_per_request": round(service_cpu / max(1, len(latencies)) * 1000, 3),
        "load_average": [load_before, _load()],
        "p99_ms_by_path": {
            p: round(statistics.quantiles(v, n=100)[98], 2) if len(v) > 1 else round(v[0], 2)
            for p, v in sorted(by_path.items())
        },
    }


async def rebuild_run(cases: int) -> dict[str, Any]:
    """A log of ``cases`` cases, then both projections rebuilt from it."""
    workdir = scratch_dir("ncii-bench-dashboard-rebuild-")
    provision(workdir / "keys", ["intake"])
    server = EmbeddedNats(
        workdir / "nats", port=free_port(), monitor_port=free_port(), sync_always=False
    )
    server.start()
    try:
        nc = await connect(server.url, name="bench-dashboard")
        await ensure_streams(nc)
        signing = load_signing_key(key_path(workdir / "keys", "intake"), "intake")
        store = EventStore(nc, None, registry=REGISTRY, signing=signing)
        ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=signing)
        started = time.perf_counter()
        written = await fill_log(nc, store, ref_store, cases)
        fill_s = time.perf_counter() - started
        print(f"log: {written} events of {cases} cases in {fill_s:.0f} s", flush=True)
        db_url = f"sqlite+aiosqlite:///{workdir / 'dashboard.db'}"
        assert server.process is not None
        rebuilt = await rebuild(db_url, store, ref_store, server.process.pid)
        print(f"rebuild: {rebuilt}", flush=True)
        await nc.close()
    finally:
        server.stop()
    return {"cases": cases, "events": written, "log_fill_s": round(fill_s, 1), **rebuilt}


async def endpoints_run(cases: int, clients: int, seconds: float) -> dict[str, Any]:
    """The service on read models of ``cases`` cases, read by ``clients`` clients."""
    workdir = scratch_dir("ncii-bench-dashboard-http-")
    provision(workdir / "keys", ["intake", "dashboard", OPERATOR])
    MasterKey.load_or_create(workdir / "master.key")
    db_url = f"sqlite+aiosqlite:///{workdir / 'dashboard.db'}"
    engine = make_engine(db_url)
    await migrate(engine, MIGRATIONS, "alembic_version_dashboard")  # as the service would
    await engine.dispose()
    events, seed_s = seed(workdir / "dashboard.db", cases)
    print(f"seeded {cases} cases ({events} events) through the projections in {seed_s:.0f} s")
    computed = await computations(db_url)
    print(f"computations in process (ms; load average {_load()}): {computed}", flush=True)
    server = EmbeddedNats(
        workdir / "nats", port=free_port(), monitor_port=free_port(), sync_always=False
    )
    server.start()
    service = None
    try:
        nc = await connect(server.url, name="bench-dashboard")
        await ensure_streams(nc)
        signing = load_signing_key(key_path(workdir / "keys", "intake"), "intake")
        store = EventStore(nc, None, registry=REGISTRY, signing=signing)
        operator = load_signing_key(key_path(workdir / "keys", OPERATOR), OPERATOR)
        op_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=operator)
        _pid, key = await create_principal(op_store, organisation="centre", role="caseworker")
        service, url = start_dashboard(workdir, server.url, db_url)
        await wait_ready(url, "the dashboard", seconds=300)
        first = await cold(url, key)
        print(f"cold reads (ms): {first}", flush=True)
        steady = await load(url, key, clients, seconds, None, service.pid)
        print(f"steady: {steady}", flush=True)
        moving = await load(url, key, clients, seconds, store, service.pid)
        print(f"while events arrive: {moving}", flush=True)
        await nc.close()
    finally:
        if service is not None:
            service.terminate()
            service.wait(15)
        server.stop()
    return {
        "cases": cases,
        "seeded_events": events,
        "seed_s": round(seed_s, 1),
        "computations": computed,
        "cold_read_ms": first,
        "steady": steady,
        "while_events_arrive": moving,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a log of 5,000 cases to rebuild")
    parser.add_argument(
        "--rebuild-cases", type=int, default=None, help="0: measure the endpoints only"
    )
    parser.add_argument("--cases", type=int, default=100_000, help="cases read over HTTP")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dashboard.json"))
    args = parser.parse_args(argv)
    # 15.9 events a case: 63,000 cases make just over a million events
    rebuild_cases = args.rebuild_cases
    if rebuild_cases is None:
        rebuild_cases = 5_000 if args.quick else 63_000
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    rebuilt = asyncio.run(rebuild_run(rebuild_cases)) if rebuild_cases else None
    http = asyncio.run(endpoints_run(args.cases, args.clients, seconds))
    result = {
        "benchmark": "dashboard: projections rebuild and JSON endpoints (issue 13)",
        "machine": platform.platform(),
        "rebuild": rebuilt,
        "endpoints": http,
        "target_p99_ms": TARGET_P99_MS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    steady, moving = http["steady"], http["while_events_arrive"]
    ok = all(p["p99_ms"] < TARGET_P99_MS and not p["errors"] for p in (steady, moving))
    if rebuilt is not None:
        print(
            f"rebuild: {rebuilt['events']} events ({rebuilt['events_applied']} applied) in "
            f"{rebuilt['seconds']} s, {rebuilt['events_per_s']} events/s, "
            f"{rebuilt['cpu_us_per_event']} us CPU per event (+ NATS {rebuilt['nats_cpu_s']} s), "
            f"load average {rebuilt['load_average']}; log filled in {rebuilt['log_fill_s']} s"
        )
    worst = max(http["computations"].items(), key=lambda kv: kv[1]["loop_stall_ms"])
    print(
        f"a view's computation held the event loop at most {worst[1]['loop_stall_ms']} ms "
        f"(median of {REPEATS - 1} runs; {worst[0]}, computed in {worst[1]['ms']} ms, "
        f"{worst[1]['cpu_ms']} ms CPU)"
    )
    for name, phase in (("steady", steady), ("while events arrive", moving)):
        print(
            f"{name}: p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, "
            f"{phase['requests_per_s']} requests/s, service CPU "
            f"{phase['service_cpu_ms_per_request']} ms per request "
            f"({phase['service_cpu_share']} of a core), load average {phase['load_average']}"
        )
    print(
        f"target p99 < {TARGET_P99_MS} ms at {args.cases} cases, steady and while events "
        f"arrive: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
