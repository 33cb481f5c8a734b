"""Referral benchmark: the art. 7 due/late sweep over 10,000 open reports (beside 10,000
referrals), and the staff view of what is due and late at that size (target: p99 under 50 ms).

1. The read model (SQLite, as the embedded default) holds 10,000 open reports (a fifth past
   their 24 hours) and 10,000 referrals. The sweep (``ReportSweeper``, the service's own code)
   runs on an injected clock against the embedded NATS server from the wheel: the time to find
   what is late among 10,000 (``pending``), and to mark every late one overdue as an event.
2. The referral service then runs as its own process on that database; ``GET /v1/reports``
   (the first page of 100, and ``?status=overdue``) is timed over loopback as a case worker.

Run: python -m bench.bench_referral [--quick] [--out bench/results/referral.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import ncii_referral
from ncii_contracts import ALL_EVENTS
from ncii_events.auth import create_principal
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, migrate
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.keys import NatsCaseKeys
from ncii_events.registry import EventRegistry
from ncii_events.signing import OPERATOR, key_path, load_signing_key, provision
from ncii_events.store import EventStore
from ncii_events.stream import REFERENCE, ensure_streams
from ncii_events.transport import connect
from ncii_referral import domain
from ncii_referral.app import ReferralApp, ReferralSettings
from ncii_referral.deadlines import ReportSweeper
from ncii_referral.outbox import OutboxPublisher, minor_report_id
from ncii_referral.read_models.schema import CASES, REFERRALS, REPORTS
from sqlalchemy import insert

from bench import scratch_dir, wait_ready

REGISTRY = EventRegistry(*ALL_EVENTS)
TARGET_VIEW_P99_MS = 50.0
OPEN_REPORTS = 10_000
REFERRALS_COUNT = 10_000
LATE_SHARE = 5  # one in five is past its 24 hours


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


async def seed(db_url: str, now: datetime) -> int:
    """Cases, open reports and referrals in the read model; returns how many are late."""
    engine = make_engine(db_url)
    await migrate(
        engine, Path(ncii_referral.__file__).parent / "migrations", "alembic_version_referral"
    )
    cases, reports, referrals = [], [], []
    late = 0
    for i in range(OPEN_REPORTS):
        case_id = str(uuid.uuid4())
        past = i % LATE_SHARE == 0
        late += past
        # late ones due up to a day ago; the others within their 24 hours
        due = (
            now - timedelta(minutes=1 + i % 1440) if past else now + timedelta(minutes=1 + i % 1440)
        )
        cases.append(
            {
                "case_id": case_id,
                "organisation": f"ngo-{i % 40}",
                "age_group": "minor",
                "consents_referral": True,
                "harm_categories": "child_sexual_exploitation",
                "spread_status": "spread",
                "on_social_platform": False,
                "offender_known": False,
                "learned_at": domain.format_time(due - domain.REPORT_WINDOW),
                "closed": None,
            }
        )
        reports.append(
            {
                "report_id": minor_report_id(case_id),
                "case_id": case_id,
                "kind": "victim_minor",
                "status": "due",
                "learned_at": domain.format_time(due - domain.REPORT_WINDOW),
                "due_at": domain.format_time(due),
            }
        )
        if i < REFERRALS_COUNT:
            at = domain.format_time(now - timedelta(minutes=i))
            referrals.append(
                {
                    "referral_id": str(uuid.uuid4()),
                    "case_id": case_id,
                    "partner_id": str(uuid.uuid4()),
                    "partner_organisation": f"counsel-{i % 20}",
                    "service": "counselling",
                    "status": ("offered", "accepted", "completed")[i % 3],
                    "consent_basis": "victim_consent",
                    "offered_at": at,
                    "updated_at": at,
                }
            )
    async with engine.begin() as conn:
        await conn.execute(insert(CASES), cases)
        await conn.execute(insert(REPORTS), reports)
        await conn.execute(insert(REFERRALS), referrals)
    await engine.dispose()
    return late


async def sweep(nats_url: str, db_url: str, workdir: Path, now: datetime) -> dict[str, Any]:
    engine = make_engine(db_url)
    nc = await connect(nats_url, name="bench-referral")
    keys = NatsCaseKeys(nc, MasterKey.load_or_create(workdir / "master.key"))
    await keys.start()
    signing = load_signing_key(key_path(workdir / "keys", "referral"), "referral")
    store = EventStore(nc, keys, registry=REGISTRY, signing=signing)
    app = ReferralApp(
        engine=engine,
        store=store,
        ref_store=store,
        clock=FixedClock(now),  # type: ignore[arg-type]
        settings=ReferralSettings(),
        outbox=OutboxPublisher(engine, store, registry=REGISTRY),
        workers=[],
    )
    sweeper = ReportSweeper(app)
    try:
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            found = await sweeper.pending()
            timings.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        marked = 0
        while True:
            done = await sweeper.step()
            if done == 0:
                break
            marked += done
        elapsed = time.perf_counter() - started
    finally:
        await keys.stop()
        await nc.close()
        await engine.dispose()
    return {
        "open_reports": OPEN_REPORTS,
        "referrals": REFERRALS_COUNT,
        "late_found_per_round": found,
        "find_late_ms_median": round(statistics.median(timings), 2),
        "marked_overdue": marked,
        "mark_all_overdue_s": round(elapsed, 2),
        "overdue_events_per_s": round(marked / elapsed, 1) if elapsed else None,
    }


async def issue_key(nats_url: str, workdir: Path) -> str:
    operator = load_signing_key(key_path(workdir / "keys", OPERATOR), OPERATOR)
    nc = await connect(nats_url, name="bench-keys")
    try:
        _pid, key = await create_principal(
            EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=operator),
            organisation="centre",
            role="caseworker",
        )
    finally:
        await nc.close()
    return key


async def staff_view(url: str, key: str, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        for label, path in (
            ("all_open_first_100", "/v1/reports?limit=100"),
            ("overdue_first_100", "/v1/reports?status=overdue&limit=100"),
        ):
            for _ in range(20):  # warm-up
                (await client.get(path)).raise_for_status()
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                response = await client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            samples.sort()
            out[label] = {
                "requests": requests,
                "items": len(response.json()["items"]),
                "p50_ms": round(statistics.median(samples), 2),
                "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 2),
            }
    return out


def run(requests: int) -> dict[str, Any]:
    workdir = scratch_dir("ncii-bench-referral-")
    server = EmbeddedNats(workdir / "nats", port=free_port(), monitor_port=free_port())
    server.start()
    provision(workdir / "keys", ["referral", OPERATOR])
    db_url = f"sqlite+aiosqlite:///{workdir / 'referral.db'}"
    now = datetime.now(UTC)
    process = None
    try:
        asyncio.run(_streams(server.url))
        late = asyncio.run(seed(db_url, now))
        result: dict[str, Any] = {"late_seeded": late}
        result["sweep"] = asyncio.run(sweep(server.url, db_url, workdir, now))
        key = asyncio.run(issue_key(server.url, workdir))
        port = free_port()
        env = {
            **os.environ,
            "NCII_NATS_URL": server.url,
            "NCII_VAR_DIR": str(workdir),
            "NCII_DATABASE_URL": db_url,
            "NCII_MASTER_KEY_FILE": str(workdir / "master.key"),
            "NCII_SIGNING_KEYS_DIR": str(workdir / "keys"),
            "NCII_PORT": str(port),
        }
        with open(workdir / "referral.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "ncii_referral.main"], env=env, stdout=log, stderr=log
            )
        url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(url, "referral", seconds=120))
        result["staff_view"] = asyncio.run(staff_view(url, key, requests))
    finally:
        if process is not None:
            process.terminate()
            process.wait(15)
        server.stop()
    return result


async def _streams(nats_url: str) -> None:
    nc = await connect(nats_url, name="bench-init")
    try:
        await ensure_streams(nc)
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer view requests")
    parser.add_argument("--out", default="bench/results/referral.json")
    args = parser.parse_args(argv)
    result = run(200 if args.quick else 1000)
    p99s = [v["p99_ms"] for v in result["staff_view"].values()]
    result["target"] = {"staff_view_p99_ms": TARGET_VIEW_P99_MS, "met": max(p99s) < 50.0}
    result["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
