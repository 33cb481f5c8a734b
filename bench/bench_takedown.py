"""Takedown benchmark (issue 10): the takedown service in this process (its projections, outbox
publisher, deliverer and deadline sweeper, as `ncii run` wires them) on the embedded NATS server
and SQLite, fed by intake's and hashmatch's events as those services would append them, with a
platform's webhook receiver in its own process that verifies every Standard Webhooks signature.

- populate: N cases with a reported location each; the reactor opens N takedowns; evidence is
  recorded on each (the case worker's step); the reactor decides N notices.
- webhook notices delivered per second: the deliverer drains the N pending notices to the
  receiver (each: the notice composed from the case's log, signed, POSTed, ``NoticeSent``
  appended). Target: at least 500/s.
- the deadline sweep over N open (sent) takedowns: one round with nothing due, then the clock
  moved past every deadline and the rounds that mark all N overdue.
- MatchFound -> notice delivered, one sighting at a time (p50/p99): the reactor opening the
  takedown, then (evidence recorded by the bench at once: in real life a person's step) the
  notice decided, delivered and recorded.

Each phase prints the service process's CPU (this process: the bench's own appends are
outside the timed phases) and the load average; the delivery phase also nats-server's CPU and
the CPU per notice, so the target can be judged on a loaded machine (decision 0053).

Run: python -m bench.bench_takedown [--quick] [--out bench/results/takedown.json]
  [--state DIR]: keep the populated state in DIR, or start from a copy of it when DIR holds
  one (populating 10,000 takedowns takes minutes); [--profile FILE]: cProfile the delivery.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import scratch_dir

TARGET_NOTICES_PER_S = 500
ROOT = Path(__file__).resolve().parents[1]


# -- the platform's receiver (own process) --------------------------------------------------------


async def _receiver(port: int, secret: str) -> None:
    from standardwebhooks.webhooks import Webhook

    hook = Webhook(secret)
    counts = {"ok": 0, "bad": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b""):
                        break
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                try:
                    hook.verify(body, headers)
                    counts["ok"] += 1
                    status = b"204 No Content"
                except Exception:
                    counts["bad"] += 1
                    status = b"400 Bad Request"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


def _start_receiver(secret: str) -> tuple[subprocess.Popen[bytes], str]:
    from ncii_events.embedded import free_port

    port = free_port()
    command = [sys.executable, "-m", "bench.bench_takedown", "--receiver", str(port), secret]
    process = subprocess.Popen(command, cwd=ROOT)
    # listening before the first notice: a refused connection would be a failed attempt
    import socket

    started = time.perf_counter()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.perf_counter() - started > 60:
                raise RuntimeError("the receiver did not start") from None
            time.sleep(0.05)
    return process, f"http://127.0.0.1:{port}/hook"


# -- the run ------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 3600) -> None:
    started = time.perf_counter()
    while not await check():
        waited = time.perf_counter() - started
        if waited > limit_s:
            raise RuntimeError(f"stuck waiting for {what}")
        # every 2 ms at first (the latencies), then 5% of the wait so far: the checks run in
        # the service's process and would otherwise take a share of its CPU in long phases
        await asyncio.sleep(min(0.1, max(0.002, waited / 20)))


async def _gather_limited(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> None:
    queue = list(reversed(jobs))

    async def runner() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(runner() for _ in range(limit)))


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


class _System:
    """NATS (its own process), the takedown service in this process as ``ncii run`` wires it
    (without the deliverer and the deadline sweeper: the bench drives and times those), and the
    stores intake and hashmatch append with."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    async def start(self) -> None:
        import dataclasses

        from ncii_contracts import ALL_EVENTS
        from ncii_events.crypto import MasterKey
        from ncii_events.embedded import EmbeddedNats, free_port
        from ncii_events.keys import NatsCaseKeys
        from ncii_events.registry import EventRegistry
        from ncii_events.service import ServiceRuntime
        from ncii_events.settings import Settings
        from ncii_events.signing import OPERATOR, key_path, load_signing_key, provision
        from ncii_events.store import EventStore
        from ncii_events.stream import CASES, ensure_streams
        from ncii_events.transport import connect
        from ncii_takedown.app import TakedownApp
        from ncii_takedown.deadlines import DeadlineSweeper
        from ncii_takedown.delivery import Deliverer
        from ncii_takedown.main import SPEC

        workdir = self.workdir
        registry = EventRegistry(*ALL_EVENTS)
        self.server = EmbeddedNats(
            workdir / "nats", port=free_port(), monitor_port=free_port(), sync_always=False
        )
        self.server.start()
        master_file = workdir / "master.key"
        master = MasterKey.load_or_create(master_file)
        keys_dir = workdir / "keys"
        if not keys_dir.exists():
            provision(keys_dir, ["takedown", "intake", "hashmatch", OPERATOR])
        self.nc = await connect(self.server.url, name="bench-takedown")
        await ensure_streams(self.nc)
        self.case_keys = NatsCaseKeys(self.nc, master, writer=True)
        await self.case_keys.start()
        self.intake = EventStore(
            self.nc,
            self.case_keys,
            registry=registry,
            spec=CASES,
            signing=load_signing_key(key_path(keys_dir, "intake"), "intake"),
        )
        self.hashmatch = EventStore(
            self.nc,
            self.case_keys,
            registry=registry,
            spec=CASES,
            signing=load_signing_key(key_path(keys_dir, "hashmatch"), "hashmatch"),
        )
        os.environ["NCII_TAKEDOWN_SWEEP_INTERVAL_S"] = "60"
        settings = Settings(
            nats_url=self.server.url,
            database_url=f"sqlite+aiosqlite:///{workdir / 'takedown.db'}",
            master_key_file=master_file,
            var_dir=workdir,
            signing_keys_dir=keys_dir,
        )

        def workers(app: TakedownApp) -> list[Any]:
            # the bench drives the deliverer and the sweeper itself, to time them alone
            return [w for w in app.workers if not isinstance(w, (Deliverer, DeadlineSweeper))]

        self.runtime = ServiceRuntime(dataclasses.replace(SPEC, workers=workers), settings)
        await self.runtime.start()
        self.app = self.runtime.app

    async def caught_up(self) -> None:
        for runner in self.runtime.runners:
            await runner.wait_caught_up(600)
        # the reactor's decisions appended and applied too
        for worker in self.runtime.workers:
            await worker.wait_caught_up(600)
        for runner in self.runtime.runners:
            await runner.wait_caught_up(600)

    async def stop(self) -> None:
        await self.runtime.stop()
        await self.case_keys.stop()
        await self.nc.close()
        self.server.stop()


async def _run(
    n: int,
    sightings: int,
    workdir: Path,
    profile: Path | None = None,
    state: Path | None = None,
) -> dict[str, Any]:
    import shutil
    from datetime import UTC, datetime, timedelta

    from ncii_contracts.hashmatch import MatchFound
    from ncii_contracts.intake import CaseOpened, Consents, LocationReported, NonConsentRecorded
    from ncii_events.auth import Principal
    from ncii_events.clock import Clock
    from ncii_events.envelope import Actor
    from ncii_events.ids import uuid7_str
    from ncii_events.store import NEW, AggregateRef, Cause
    from ncii_takedown.deadlines import DeadlineSweeper
    from ncii_takedown.delivery import Deliverer
    from ncii_takedown.read_models.schema import DELIVERIES, TAKEDOWNS
    from sqlalchemy import func, select

    system = _System(workdir)
    staff = Principal("bench-staff", "centre", "caseworker")
    platform_fields: dict[str, Any] = {
        "name": "BenchHost",
        "kind": "cloud_or_image_host",
        "jurisdiction": "TW",
        "regimes": ["tw"],
        "channel": "webhook",
        "webhook_url": "http://127.0.0.1:9/placeholder",
        "api_organisation": "benchhost",
    }
    learned = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    actor = Actor(organisation="bench-ngo", principal="bench", role="partner")
    marker = state / "populated.json" if state is not None else None

    async def count(table: Any, *where: Any) -> int:
        async with system.app.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).where(*where))).scalar_one())

    async def new_case(location: bool) -> str:
        case_id = uuid7_str()
        ref = AggregateRef(case_id, "case", case_id)
        cause = Cause(actor, case_id, case_id)
        events: list[Any] = [
            CaseOpened(
                organisation="bench-ngo",
                reference=uuid.uuid4().hex[:10],
                age_group="adult",
                harm_categories=["distribution_without_consent_319_3"],
                spread_status="spread",
                intake_channel="partner_api",
                learned_at=learned,
                consents=Consents(takedown=True, share_hashes=True, referral=False),
                pseudonym="Sparrow",
            ),
            NonConsentRecorded(stated_at=learned, method="written"),
        ]
        if location:
            events.append(
                LocationReported(
                    location_id=uuid7_str(),
                    channel_kind="image_host",
                    platform="benchhost",
                    url=f"https://benchhost.example/p/{uuid.uuid4().hex[:8]}",
                )
            )
        await system.intake.append(ref, events, expected=NEW, cause=cause)
        return case_id

    def evidence_of(case_id: str, takedown_id: str) -> Callable[[], Awaitable[Any]]:
        async def record() -> None:
            await system.app.case_change(
                Principal("bench", "bench-ngo", "partner"),
                None,
                case_id,
                takedown_id,
                "evidence",
                lambda t: t.record_evidence(
                    captured_at=learned,
                    capture_method="screenshot",
                    capture_sha256=uuid.uuid4().hex * 2,
                    url=None,
                    preserved_by="desk",
                    offender_account=None,
                    offender_ip=None,
                ),
            )

        return record

    receiver: subprocess.Popen[bytes] | None = None
    out: dict[str, Any] = {"takedowns": n, "sightings": sightings}
    started = False
    try:
        if marker is not None and marker.exists():
            # a populated state kept by an earlier run (--state): copied, so it stays reusable
            assert state is not None
            shutil.copytree(state, workdir, dirs_exist_ok=True)
            kept = json.loads(marker.read_text())
            if kept["takedowns"] != n:
                raise SystemExit(f"{state} holds {kept['takedowns']} takedowns, not {n}")
            platform_id = kept["platform_id"]
            await system.start()
            started = True
            out["populate"] = {"reused": str(state), **kept["populate"]}
        else:
            await system.start()
            started = True
            app = system.app
            first = await app.register_platform(staff, None, platform_fields)
            platform_id = first.platform_id
            await system.caught_up()

            # -- populate: N cases, N takedowns, N notices decided ----------------------------
            t0, cpu0, load0 = time.perf_counter(), time.process_time(), _load()
            await _gather_limited([lambda: new_case(True) for _ in range(n)], 32)
            appended = time.perf_counter() - t0

            async def opened() -> bool:
                return await count(TAKEDOWNS, TAKEDOWNS.c.status == "opened") >= n

            await _until(opened, "the takedowns opened")
            opened_s = time.perf_counter() - t0
            async with app.engine.connect() as conn:
                rows = (
                    await conn.execute(select(TAKEDOWNS.c.case_id, TAKEDOWNS.c.takedown_id))
                ).all()
            t1 = time.perf_counter()
            await _gather_limited([evidence_of(r[0], r[1]) for r in rows], 32)

            async def queued() -> bool:
                return await count(DELIVERIES, DELIVERIES.c.status == "pending") >= n

            await _until(queued, "the notices queued")
            await system.caught_up()
            out["populate"] = {
                "cases_appended_s": round(appended, 2),
                "takedowns_opened_s": round(opened_s, 2),
                "evidence_to_notices_queued_s": round(time.perf_counter() - t1, 2),
                # this process: the bench's appends and the whole service but NATS
                "process_cpu_s": round(time.process_time() - cpu0, 2),
                "loadavg": [load0, _load()],
            }
            if marker is not None and state is not None:
                await system.stop()
                started = False
                shutil.rmtree(state, ignore_errors=True)
                shutil.copytree(workdir, state)
                marker.write_text(
                    json.dumps(
                        {"takedowns": n, "platform_id": platform_id, "populate": out["populate"]}
                    )
                )
                await system.start()
                started = True
        print(f"populated {n} takedowns: {out['populate']}", flush=True)
        app = system.app
        engine = app.engine
        receiver, url = _start_receiver(app.webhook_secret(platform_id, 1))
        await app.update_platform(staff, None, platform_id, {**platform_fields, "webhook_url": url})
        await system.caught_up()

        # -- webhook notices delivered per second ----------------------------------------------
        deliverer = Deliverer(app)
        profiler = None
        if profile is not None:  # where the deliverer's time goes (this process's CPU)
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        load0 = _load()
        t0, cpu0 = time.perf_counter(), time.process_time()
        nats_cpu0 = _cpu_of(system.server.process.pid)
        attempts = 0
        while True:
            done = await deliverer.step()
            attempts += done
            if done == 0:
                break
        elapsed = time.perf_counter() - t0
        delivered = await count(DELIVERIES, DELIVERIES.c.status == "delivered")
        cpu = time.process_time() - cpu0
        nats_cpu = _cpu_of(system.server.process.pid) - nats_cpu0
        if profiler is not None and profile is not None:
            import pstats

            profiler.disable()
            profiler.dump_stats(profile)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        await deliverer.stop()
        t_applied = time.perf_counter()

        async def all_sent() -> bool:
            return await count(TAKEDOWNS, TAKEDOWNS.c.status == "sent") >= n

        await _until(all_sent, "every NoticeSent applied")
        applied_s = time.perf_counter() - t_applied
        cpu_applied = time.process_time() - cpu0
        rate = delivered / elapsed
        out["webhook"] = {
            "delivered": delivered,
            "attempts": attempts,
            "seconds": round(elapsed, 2),
            "notices_per_s": round(rate, 1),
            # this process's CPU while delivering (deliverer, projections, publisher; not NATS
            # nor the receiver), and until the projection applied every NoticeSent
            "process_cpu_s": round(cpu, 2),
            "notices_per_cpu_s": round(delivered / cpu, 1) if cpu else None,
            "cpu_ms_per_notice": round(cpu * 1000 / delivered, 3) if delivered else None,
            "then_applied_s": round(applied_s, 2),
            "cpu_ms_per_notice_applied": round(cpu_applied * 1000 / delivered, 3)
            if delivered
            else None,
            "nats_cpu_s": round(nats_cpu, 2),
            "target_per_s": TARGET_NOTICES_PER_S,
            "meets_target": rate >= TARGET_NOTICES_PER_S,
            "meets_target_in_cpu": bool(cpu) and delivered / cpu >= TARGET_NOTICES_PER_S,
            "loadavg": [load0, _load()],
        }
        print(f"webhook delivery: {out['webhook']}", flush=True)

        # -- the deadline sweep over N open takedowns -----------------------------------------
        sweeper = DeadlineSweeper(app)
        t0 = time.perf_counter()
        idle = await sweeper.step()
        idle_ms = (time.perf_counter() - t0) * 1000
        app.clock = Clock(73 * 3600)  # past every adult's 72 h
        load0 = _load()
        t0, cpu0 = time.perf_counter(), time.process_time()
        marked = 0
        while True:
            done = await sweeper.step()
            marked += done
            if done == 0:
                break
        sweep_s = time.perf_counter() - t0
        sweep_cpu = time.process_time() - cpu0
        app.clock = Clock(0)
        out["deadline_sweep"] = {
            "open_takedowns": n,
            "round_nothing_due_ms": round(idle_ms, 1),
            "nothing_due_found": idle,
            "marked_overdue": marked,
            "mark_all_overdue_s": round(sweep_s, 2),
            "overdue_per_s": round(marked / sweep_s, 1) if sweep_s else None,
            "process_cpu_s": round(sweep_cpu, 2),
            "loadavg": [load0, _load()],
        }
        print(f"deadline sweep: {out['deadline_sweep']}", flush=True)

        # -- MatchFound -> notice delivered ----------------------------------------------------
        live = Deliverer(app)
        system.runtime.workers.append(live)  # nudged when the projection commits, as in ncii run
        await live.start()
        cases = [await new_case(False) for _ in range(sightings)]
        await system.caught_up()
        totals, to_open, to_deliver = [], [], []
        for case_id in cases:
            t0 = time.perf_counter()
            match = MatchFound(
                match_id=uuid.uuid4().hex,
                sighting_id=uuid.uuid4().hex,
                bank="ORG_bench-ngo",
                entry_key=uuid7_str(),
                algorithm="pdq",
                distance=4,
                platform="benchhost",
                seen_at=learned,
                url=f"https://benchhost.example/v/{uuid.uuid4().hex[:8]}",
            )
            ref = AggregateRef(case_id, "match", match.match_id)
            await system.hashmatch.append(
                ref, [match], expected=NEW, cause=Cause(actor, case_id, case_id)
            )

            async def opened_one(case_id: str = case_id) -> bool:
                return await count(TAKEDOWNS, TAKEDOWNS.c.case_id == case_id) > 0

            await _until(opened_one, "the sighting's takedown")
            t1 = time.perf_counter()
            async with engine.connect() as conn:
                takedown_id = (
                    await conn.execute(
                        select(TAKEDOWNS.c.takedown_id).where(TAKEDOWNS.c.case_id == case_id)
                    )
                ).scalar_one()
            t_evidence = time.perf_counter()
            await evidence_of(case_id, takedown_id)()

            async def delivered_one(takedown_id: str = takedown_id) -> bool:
                status = DELIVERIES.c.status == "delivered"
                return await count(DELIVERIES, DELIVERIES.c.takedown_id == takedown_id, status) > 0

            await _until(delivered_one, "the sighting's notice delivered")
            t2 = time.perf_counter()
            to_open.append((t1 - t0) * 1000)
            to_deliver.append((t2 - t_evidence) * 1000)
            totals.append((t1 - t0 + t2 - t_evidence) * 1000)
        await live.stop()
        out["match_to_delivered_ms"] = {
            "sightings": sightings,
            "p50": round(statistics.median(totals), 1),
            "p99": round(_pct(totals, 0.99), 1),
            "match_to_takedown_opened_p50": round(statistics.median(to_open), 1),
            "match_to_takedown_opened_p99": round(_pct(to_open, 0.99), 1),
            "evidence_to_delivered_p50": round(statistics.median(to_deliver), 1),
            "evidence_to_delivered_p99": round(_pct(to_deliver, 0.99), 1),
            "note": "excludes the case worker's evidence step (recorded by the bench at once)",
            "loadavg": _load(),
        }
        print(f"MatchFound -> delivered: {out['match_to_delivered_ms']}", flush=True)
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait(10)
        if started:
            await system.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--takedowns", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/results/takedown.json"))
    parser.add_argument("--receiver", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile", type=Path, default=None, help="cProfile the delivery phase to this file"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="keep the populated state in this directory, or reuse it when it holds one "
        "(the delivery, sweep and sighting phases then start from a copy of it)",
    )
    args = parser.parse_args(argv)
    if args.receiver:
        asyncio.run(_receiver(int(args.receiver[0]), args.receiver[1]))
        return 0
    n = args.takedowns or (1_000 if args.quick else 10_000)
    sightings = 50 if args.quick else 200
    workdir = scratch_dir("ncii-bench-takedown-")
    result = asyncio.run(_run(n, sightings, workdir, args.profile, args.state))
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
