"""The whole log verified on every core: worker processes (``ncii_audit.verify_worker``) parse
each stored message, recompute its hash and check its signature (Ed25519 verify, ~50 µs with
libsodium, is most of the cost); this process reads the log and checks what needs log order
(each aggregate's links, unsigned after signing began, sequences missing from the store). Same
verdicts as ``ChainVerifier``."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

from ncii_events.audit import ChainBreak, ChainReport
from ncii_events.envelope import GENESIS
from ncii_events.store import EventStore

from ncii_audit.verify_worker import _UNSIGNED, Checked, Row, _init, check_batch

__all__ = ["BATCH", "Checked", "OrderedChecks", "Row", "verify_store", "worker_count"]

BATCH = 2000


class OrderedChecks:
    """The log-order half of verification, fed the workers' results in log order."""

    def __init__(self, first_seq: int = 1) -> None:
        self.last: dict[tuple[str, str, str], str] = {}
        self.checked = self.verified = self.unsigned = self.bad = 0
        self.signed_from: int | None = None
        self.first_break: ChainBreak | None = None
        self.expected_seq = first_seq
        self.holes = 0
        self._hole_named = False
        """Whether the first break, a hole, was named by the link that misses it."""

    def _bad(self, seq: int, event_id: str, event_type: str, reason: str) -> None:
        self.bad += 1
        if self.first_break is None:
            self.first_break = ChainBreak(seq, event_id, reason, event_type)

    def feed(self, results: Sequence[Row]) -> None:
        last = self.last
        for seq, event_id, event_type, link, digest, prev_hash, content_ok, verdict in results:
            if seq > self.expected_seq:
                # events are never deleted (erasure destroys keys): a hole is lost or unreadable
                gap = f"{self.expected_seq}" + (
                    f"-{seq - 1}" if seq - 1 > self.expected_seq else ""
                )
                self.holes += seq - self.expected_seq
                self._bad(self.expected_seq, "?", "", f"missing from the store: seq {gap}")
            self.expected_seq = seq + 1
            self.checked += 1
            if link is None:
                self._bad(seq, event_id, event_type, verdict or "unreadable")
                continue
            why: str | None = None
            if not content_ok:
                why = "content altered: hash does not match"
            elif prev_hash != last.get(link, GENESIS):
                self._name_hole(seq, event_id, link, prev_hash)
                why = (
                    "link broken: prev_hash is not the hash of the aggregate's previous event"
                    if link in last
                    else "link broken: first event of the aggregate does not start from genesis"
                )
            elif verdict == _UNSIGNED:
                if self.signed_from is not None:
                    why = f"unsigned, though events are signed since seq {self.signed_from}"
                else:
                    self.unsigned += 1
            else:
                if self.signed_from is None:
                    self.signed_from = seq
                why = verdict
                if why is None:
                    self.verified += 1
            if why is not None:
                self._bad(seq, event_id, event_type, why)
            last[link] = digest

    def _name_hole(self, seq: int, event_id: str, link: tuple[str, str, str], prev: str) -> None:
        """A stored message whose bytes changed is dropped by NATS with its id (decision 37):
        the first link that misses an event, after one missing sequence and no other, names it by
        what its successor holds of it: its aggregate and its hash (to match against a bundle
        or a backup)."""
        first = self.first_break
        if first is None or first.event_id != "?" or self._hole_named or self.holes != 1:
            return
        self._hole_named = True
        case_id, aggregate, aggregate_id = link
        self.first_break = ChainBreak(
            first.seq,
            first.event_id,
            f"{first.reason}; the event missing there is most likely case {case_id}'s "
            f"{aggregate} {aggregate_id} event with hash {prev}: the aggregate's next event "
            f"(seq {seq}, event {event_id}) links to that hash, which no stored event has",
            first.type,
        )

    def report(self) -> ChainReport:
        return ChainReport(
            self.checked, len(self.last), self.first_break, self.verified, self.unsigned, self.bad
        )


def worker_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


async def verify_store(
    store: EventStore,
    keys: Mapping[str, list[str]],
    allowed: Mapping[str, frozenset[str]],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ChainReport:
    """Every event of ``store``'s stream, verified by ``workers`` processes (default: one per
    core); ``progress(checked, last_seq)`` after each batch."""
    last_seq = await store.last_sequence()
    ordered = OrderedChecks()
    n = workers or worker_count()
    allowed_lists = {t: sorted(s) for t, s in allowed.items()}
    loop = asyncio.get_running_loop()
    # spawn: a fork would copy this process's event loop and NATS connection's threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        n, mp_context=context, initializer=_init, initargs=(store.spec.name, keys, allowed_lists)
    ) as pool:
        pending: deque[asyncio.Future[list[Row]]] = deque()
        seq = 1
        while seq <= last_seq:
            batch = await store.read_stored(seq, limit=BATCH)
            if not batch:
                break
            seq = batch[-1][0] + 1
            pending.append(loop.run_in_executor(pool, check_batch, batch))
            while len(pending) > 2 * n:  # bounded: a whole log never sits in memory
                ordered.feed(await pending.popleft())
                if progress is not None:
                    progress(ordered.checked, last_seq)
        while pending:
            ordered.feed(await pending.popleft())
            if progress is not None:
                progress(ordered.checked, last_seq)
    if ordered.expected_seq <= last_seq:
        ordered._bad(
            ordered.expected_seq, "?", "", f"missing from the store: seq {ordered.expected_seq}-"
        )
    return ordered.report()
