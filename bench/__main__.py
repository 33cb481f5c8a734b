"""`make bench`: every benchmark in one run, each beside its named baseline.

- event log: our JetStream event store vs the `eventsourcing` library (SQLite and PostgreSQL)
- intake: case opens per second and latency at 16 concurrent clients, and GET of a 50-event
  case, on the stock and the fast NATS transport
- hashmatch: our PDQ index vs HMA's default faiss index (and faiss flat) at 1M and 10M
- referral: the art. 7 due/late sweep over 10,000 open reports and referrals, and the staff
  view of what is due and late at that size (p99 under 50 ms)
- takedown: the deadline sweep over 10,000 open takedowns, webhook notices delivered per second
  (target 500/s, signed), MatchFound to notice delivered (p50/p99); 1,000 with --quick
- audit: whole-log verification rate with signatures (target 30,000 events/s), replay and as-of
  of a 1,000-event case (target 25 ms each)
- case list: find by reference and the filtered list at 100,000 cases, 16 clients (decision 35)
- dashboard: rebuilding its projections from 1,000,000 events (time and rate; 80,000 with
  --quick), its JSON endpoints at 100,000 cases, 16 clients (p99 under 50 ms)

Figures are printed and written to bench/results/*.json. `--quick` runs shorter versions.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import (
    bench_audit,
    bench_case_list,
    bench_dashboard,
    bench_eventlog,
    bench_hashmatch,
    bench_intake,
    bench_referral,
    bench_takedown,
)

# the benchmarks whose own main takes only --quick
SIMPLE = {
    "eventlog": bench_eventlog,
    "takedown": bench_takedown,
    "referral": bench_referral,
    "audit": bench_audit,
    "dashboard": bench_dashboard,
}
ALL = [
    "eventlog",
    "intake",
    "hashmatch",
    "caselist",
    "takedown",
    "referral",
    "audit",
    "dashboard",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run every benchmark")
    parser.add_argument("--quick", action="store_true", help="shorter runs (1M hashes only)")
    parser.add_argument(
        "--only",
        choices=ALL,
        action="append",
        default=None,
    )
    args = parser.parse_args(argv)
    chosen = args.only or ALL
    started = time.perf_counter()
    failures = 0
    for name in chosen:
        print(f"\n=== {name} " + "=" * (70 - len(name)), flush=True)
        if name in SIMPLE:
            code = SIMPLE[name].main(["--quick"] if args.quick else [])
        elif name == "intake":
            # Both transports in the same run (decisions 13 and 19), each with the case read.
            code = 0
            for transport in ("stock", "fast"):
                out = f"bench/results/intake-{transport}.json"
                argv_ = ["--transport", transport, "--get-case", "--out", out]
                code |= bench_intake.main(argv_ + (["--quick"] if args.quick else []))
        elif name == "caselist":
            code = bench_case_list.main(["--seconds", "5"] if args.quick else [])
        else:
            sys.argv = ["bench_hashmatch"] + (["--sizes", "1000000"] if args.quick else [])
            code = bench_hashmatch.main()
        failures += code != 0
    elapsed = time.perf_counter() - started
    print(f"\nall benchmarks done in {elapsed:.0f} s; results in bench/results/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
