"""Baseline for the event-log benchmark: the Python ``eventsourcing`` library.

Measures pyeventsourcing (``eventsourcing`` 9.5) with its SQLite and PostgreSQL
recorders, so that ``bench/bench_eventlog.py`` can compare our NATS JetStream event
log against it in the same run.  Three figures per backend:

1. ``append_one_at_a_time_per_s``: command-handler style writes, sequentially: for each
   event, load-or-create the aggregate, trigger one event, ``app.save(agg)`` (one save,
   i.e. one transaction, per event), spread over ~100 aggregates.
2. ``append_concurrent_per_s``: the same with ``concurrency`` threads sharing one
   ``Application``, each thread working on its own aggregates (the library is
   synchronous; threads are how it gets concurrency).
3. ``load_1000_event_aggregate_ms``: ``app.repository.get(id)`` of an aggregate that has
   ``case_events`` stored events (median of ``LOAD_RUNS`` runs; min also reported),
   with the aggregate cache disabled (no snapshots either).

Extra: ``append_save_only_per_s``, sequential one-save-per-event appends with the
aggregates held in memory (created and saved before the clock starts), i.e. phase 1
without the load: the library's raw append rate.

The library is configured only through its documented environment variables
(``PERSISTENCE_MODULE``, ``SQLITE_DBNAME``, ``POSTGRES_*``, ``AGGREGATE_CACHE_MAXSIZE``),
passed as the ``env`` mapping of the ``Application`` (which the library overlays on
``os.environ``), so the process environment is never mutated.  Each run uses a fresh
SQLite file in ``workdir`` or a fresh PostgreSQL schema (dropped afterwards), so runs
are independent.

The aggregate cache is disabled for all three phases (the library's default), so every
command in phases 1 and 2 replays the aggregate's events before appending, exactly as a
stateless command handler over this library would.

Run ``python bench/baseline_eventsourcing.py`` to measure both backends and print a
table plus JSON (PostgreSQL is skipped with a message if it is unreachable or ``psycopg_pool``,
which ``eventsourcing.postgres`` imports, is not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql

__all__ = [
    "DEFAULT_POSTGRES_DSN",
    "LOAD_RUNS",
    "Backend",
    "Case",
    "CaseApp",
    "postgres_unavailable_reason",
    "run_baseline",
]

Backend = Literal["sqlite", "postgres"]

#: Used when ``postgres_dsn`` is None; overridable with ``BENCH_POSTGRES_DSN``.
DEFAULT_POSTGRES_DSN: str = os.environ.get(
    "BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
#: Number of timed ``repository.get`` calls in the load phase (after warm-up).
LOAD_RUNS: int = 20
LOAD_WARMUP_RUNS: int = 2
#: Aggregates that the ``events`` commands are spread over (sequential phase).
AGGREGATES: int = 100
#: Events per ``save`` when building the large aggregate for the load phase (setup only).
SETUP_BATCH: int = 100

_CASE_NAMESPACE = UUID("6f1c2a4e-9a57-4a53-9a43-2d1f0b7f5e11")


class Case(Aggregate):
    """A small aggregate: a case that accumulates notes."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.notes: list[str] = []

    @staticmethod
    def create_id(key: str) -> UUID:
        """Deterministic ID, so a command handler can load-or-create by business key."""
        return uuid.uuid5(_CASE_NAMESPACE, key)

    @event("NoteAdded")
    def note_added(self, text: str) -> None:
        self.notes.append(text)


class CaseApp(Application[UUID]):
    """Application whose command handler is one save per event."""

    name = "CaseApp"

    def add_note(self, key: str, text: str) -> None:
        """Load-or-create the case, trigger one event, save (one transaction)."""
        case_id = Case.create_id(key)
        try:
            case: Case = self.repository.get(case_id)
        except AggregateNotFoundError:
            case = Case(key)
        case.note_added(text)
        self.save(case)


def _library_version() -> str:
    return importlib.metadata.version("eventsourcing")


def _pg_params(dsn: str) -> dict[str, str]:
    """Connection parameters from a DSN/URI, with this environment's defaults."""
    parsed = psycopg.conninfo.conninfo_to_dict(dsn)
    return {
        "host": str(parsed.get("host") or "127.0.0.1"),
        "port": str(parsed.get("port") or "5432"),
        "user": str(parsed.get("user") or "postgres"),
        "password": str(parsed.get("password") or ""),
        "dbname": str(parsed.get("dbname") or "test"),
    }


def _pg_connect(params: dict[str, str], timeout_s: int = 5) -> psycopg.Connection[Any]:
    conninfo = psycopg.conninfo.make_conninfo("", connect_timeout=timeout_s, **params)
    return psycopg.connect(conninfo, autocommit=True)


def postgres_unavailable_reason(postgres_dsn: str | None = None) -> str | None:
    """None if the postgres backend can run, else a one-line reason (for skipping).

    Checks that ``psycopg_pool`` is importable and that PostgreSQL answers at the DSN.
    """
    if importlib.util.find_spec("psycopg_pool") is None:
        # eventsourcing.postgres imports psycopg_pool (the "eventsourcing[postgres]" extra).
        return "module 'psycopg_pool' is not installed (needed by eventsourcing.postgres)"
    dsn = postgres_dsn or DEFAULT_POSTGRES_DSN
    try:
        with _pg_connect(_pg_params(dsn), timeout_s=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means "skip", with the reason shown
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first_line}"
    return None


@contextlib.contextmanager
def _sqlite_env(workdir: Path) -> Iterator[dict[str, str]]:
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / f"eventsourcing-baseline-{uuid.uuid4().hex[:12]}.sqlite"
    try:
        yield {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(db_path),
        }
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def _postgres_env(postgres_dsn: str | None, concurrency: int) -> Iterator[dict[str, str]]:
    params = _pg_params(postgres_dsn or DEFAULT_POSTGRES_DSN)
    schema = f"es_baseline_{uuid.uuid4().hex[:12]}"
    with _pg_connect(params) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": params["dbname"],
            "POSTGRES_HOST": params["host"],
            "POSTGRES_PORT": params["port"],
            "POSTGRES_USER": params["user"],
            "POSTGRES_PASSWORD": params["password"],
            "POSTGRES_SCHEMA": schema,
            # One pooled connection per worker thread (library default is 5 + 10 overflow).
            "POSTGRES_POOL_SIZE": str(max(1, concurrency)),
            "POSTGRES_MAX_OVERFLOW": "2",
        }
    finally:
        with _pg_connect(params) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _append_sequential(app: CaseApp, prefix: str, events: int, aggregates: int) -> float:
    """Seconds to run ``events`` one-save-per-event commands over ``aggregates`` cases."""
    start = time.perf_counter()
    for i in range(events):
        app.add_note(f"{prefix}-{i % aggregates}", f"note {i}")
    return time.perf_counter() - start


def _append_save_only(app: CaseApp, prefix: str, events: int, aggregates: int) -> float:
    """Seconds for ``events`` saves of one event each, aggregates kept in memory."""
    cases = [Case(f"{prefix}-{j}") for j in range(aggregates)]
    app.save(*cases)
    start = time.perf_counter()
    for i in range(events):
        case = cases[i % aggregates]
        case.note_added(f"note {i}")
        app.save(case)
    return time.perf_counter() - start


def _append_concurrent(
    app: CaseApp, prefix: str, events: int, concurrency: int, aggregates: int
) -> float:
    """Seconds for ``concurrency`` threads to run ``events`` commands in total.

    Each thread owns ``aggregates // concurrency`` (at least 1) cases, so there are no
    version conflicts between threads; the clock starts when all threads are released.
    """
    threads_n = max(1, min(concurrency, events))
    per_thread_aggs = max(1, aggregates // threads_n)
    base, extra = divmod(events, threads_n)
    barrier = threading.Barrier(threads_n + 1)
    errors: list[BaseException] = []

    def worker(t: int, n: int) -> None:
        try:
            barrier.wait()
            for i in range(n):
                app.add_note(f"{prefix}-t{t}-{i % per_thread_aggs}", f"note {i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(t, base + (1 if t < extra else 0)), daemon=True)
        for t in range(threads_n)
    ]
    for th in threads:
        th.start()
    barrier.wait()
    start = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} worker thread(s) failed") from errors[0]
    return elapsed


def _build_case(app: CaseApp, key: str, case_events: int) -> UUID:
    """Create a case with ``case_events`` stored events in total (Created + notes)."""
    case = Case(key)
    pending = 1
    for i in range(max(0, case_events - 1)):
        case.note_added(f"note {i}")
        pending += 1
        if pending >= SETUP_BATCH:
            app.save(case)
            pending = 0
    if pending:
        app.save(case)
    return case.id


def _time_loads(app: CaseApp, case_id: UUID, expected_version: int) -> list[float]:
    """Milliseconds per ``repository.get`` (after warm-up), cache disabled."""
    for _ in range(LOAD_WARMUP_RUNS):
        app.repository.get(case_id)
    samples: list[float] = []
    for _ in range(LOAD_RUNS):
        start = time.perf_counter()
        case: Case = app.repository.get(case_id)
        samples.append((time.perf_counter() - start) * 1000.0)
        if case.version != expected_version:  # sanity check of the data, not of timing
            raise RuntimeError(f"loaded version {case.version}, expected {expected_version}")
    return samples


def run_baseline(
    backend: Literal["sqlite", "postgres"],
    *,
    events: int = 5000,
    concurrency: int = 16,
    case_events: int = 1000,
    workdir: Path,
    postgres_dsn: str | None = None,
) -> dict[str, float | int | str]:
    """Measure the ``eventsourcing`` library on one backend; return a flat result dict.

    ``events`` one-save-per-event commands are timed sequentially and again with
    ``concurrency`` threads (plus a save-only variant without the load, see the module
    docstring); then an aggregate of ``case_events`` events is loaded
    ``LOAD_RUNS`` times.  SQLite uses a fresh file in ``workdir`` (deleted afterwards);
    PostgreSQL a fresh schema at ``postgres_dsn`` (default ``DEFAULT_POSTGRES_DSN``),
    dropped afterwards.  Raises if PostgreSQL is unreachable (see
    ``postgres_unavailable_reason`` to check first).
    """
    if backend not in ("sqlite", "postgres"):
        raise ValueError(f"unknown backend {backend!r}")
    if events < 1 or concurrency < 1 or case_events < 1:
        raise ValueError("events, concurrency and case_events must be >= 1")
    wall_start = time.perf_counter()
    aggregates = max(1, min(AGGREGATES, events))
    env_cm = (
        _sqlite_env(Path(workdir))
        if backend == "sqlite"
        else _postgres_env(postgres_dsn, concurrency)
    )
    with env_cm as backend_env:
        env = {
            **backend_env,
            "AGGREGATE_CACHE_MAXSIZE": "",  # empty = no aggregate cache
            "IS_SNAPSHOTTING_ENABLED": "no",
            "CREATE_TABLE": "y",
        }
        app = CaseApp(env=env)
        try:
            # Warm-up: table creation, pool connections, code paths.
            for i in range(20):
                app.add_note(f"warmup-{i % 2}", "warm-up")

            seq_s = _append_sequential(app, "seq", events, aggregates)
            save_only_s = _append_save_only(app, "mem", events, aggregates)
            conc_s = _append_concurrent(app, "conc", events, concurrency, aggregates)

            case_id = _build_case(app, "big-case", case_events)
            load_ms = _time_loads(app, case_id, expected_version=case_events)
            max_notification_id = app.recorder.max_notification_id() or 0
        finally:
            app.close()

    conc_threads = max(1, min(concurrency, events))
    conc_aggregates = conc_threads * max(1, aggregates // conc_threads)
    return {
        "library": "eventsourcing",
        "library_version": _library_version(),
        "backend": backend,
        "persistence_module": backend_env["PERSISTENCE_MODULE"],
        "events": events,
        "aggregates": aggregates,
        "concurrency": concurrency,
        "case_events": case_events,
        "append_one_at_a_time_per_s": events / seq_s,
        "append_one_at_a_time_s": seq_s,
        # Stored events include one Created event per new aggregate (saved together
        # with that aggregate's first note, in the same transaction).
        "append_one_at_a_time_stored_events": events + aggregates,
        "append_save_only_per_s": events / save_only_s,
        "append_save_only_s": save_only_s,
        "append_concurrent_per_s": events / conc_s,
        "append_concurrent_s": conc_s,
        "append_concurrent_threads": conc_threads,
        "append_concurrent_aggregates": conc_aggregates,
        "append_concurrent_stored_events": events + min(conc_aggregates, events),
        "load_1000_event_aggregate_ms": statistics.median(load_ms),
        "load_1000_event_aggregate_min_ms": min(load_ms),
        "load_1000_event_aggregate_max_ms": max(load_ms),
        "load_runs": len(load_ms),
        "total_stored_events": int(max_notification_id),
        "aggregate_cache": "disabled",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count() or 0,
        "wall_s": time.perf_counter() - wall_start,
    }


_TABLE_ROWS: list[tuple[str, str, str]] = [
    ("append one at a time (load+save)", "append_one_at_a_time_per_s", "{:,.0f} ev/s"),
    ("append, save only (no load)", "append_save_only_per_s", "{:,.0f} ev/s"),
    ("append concurrent", "append_concurrent_per_s", "{:,.0f} ev/s"),
    ("load aggregate (median)", "load_1000_event_aggregate_ms", "{:.2f} ms"),
    ("load aggregate (min)", "load_1000_event_aggregate_min_ms", "{:.2f} ms"),
    ("wall time", "wall_s", "{:.1f} s"),
]


def _print_table(results: list[dict[str, float | int | str]]) -> None:
    if not results:
        return
    headers = ["metric", *[str(r["backend"]) for r in results]]
    rows = [[label, *[fmt.format(r[key]) for r in results]] for label, key, fmt in _TABLE_ROWS]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    first = results[0]
    print(
        f"eventsourcing {first['library_version']}: events={first['events']} "
        f"over {first['aggregates']} aggregates, concurrency={first['concurrency']}, "
        f"load of a {first['case_events']}-event aggregate x{first['load_runs']}"
    )
    for row in [headers, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--case-events", type=int, default=1000)
    parser.add_argument("--postgres-dsn", default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append", default=None)
    args = parser.parse_args(argv)
    backends: list[Backend] = args.backend or ["sqlite", "postgres"]

    results: list[dict[str, float | int | str]] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="es-baseline-") as tmp:
        workdir = args.workdir or Path(tmp)
        for backend in backends:
            if backend == "postgres":
                reason = postgres_unavailable_reason(args.postgres_dsn)
                if reason is not None:
                    skipped[backend] = f"postgres backend unavailable, skipped ({reason})"
                    print(f"postgres: {skipped[backend]}", file=sys.stderr)
                    continue
            results.append(
                run_baseline(
                    backend,
                    events=args.events,
                    concurrency=args.concurrency,
                    case_events=args.case_events,
                    workdir=workdir,
                    postgres_dsn=args.postgres_dsn,
                )
            )
    _print_table(results)
    print(json.dumps({"results": results, "skipped": skipped}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
