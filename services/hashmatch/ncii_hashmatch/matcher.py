"""The matcher: in-memory indexes that follow the bank, and look-ups against them.

* On start it loads every live entry from the bank (``restore``): PDQ hashes into a
  :class:`PdqIndex`, their device-computed rotations/flips into a second one (aliases of the
  same entry), vPDQ frames into a third, MD5s into an :class:`ExactIndex`, and the negative bank.
* Then it follows the bank's change table (``follow``): after each batch its own projections
  commit (a nudge) and at least every ``poll_interval`` for changes other replicas made. Adds
  and removals are applied incrementally; nothing is ever rebuilt.
* A look-up searches all items of a batch, and all their rotations, in one pass per index on a
  worker thread (the compiled kernel releases the GIL), then reads the few matched entries
  from SQL: an entry whose removal has been committed is dropped there, so withdrawal is
  effective for look-ups the moment the bank commits it, before the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ncii_events import tracing
from ncii_events.projection import checkpoints
from ncii_events.stream import CASES, REFERENCE
from ncii_events.worker import LoopWorker
from numpy.typing import NDArray
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_hashmatch import domain
from ncii_hashmatch.index import ExactIndex, PdqIndex, hashes_from_hex
from ncii_hashmatch.read_models.queries import (
    changes_since,
    count_changes_since,
    cursors_now,
    entries_by_ids,
    live_entries,
    negatives,
    read_banks,
)
from ncii_hashmatch.read_models.schema import split_hashes

log = logging.getLogger("ncii.hashmatch.matcher")
FRAME_BITS = 20
"""A banked frame's id in the frame index: ``entry_id << 20 | frame number``."""
RESTORE_PAGE = 100_000
FOLLOW_PAGE = 5_000
BANK_PROJECTIONS = ("bank", "bank_reference")
LINKS = 32
"""At most this many events a follow round's span links (a round may apply thousands)."""
STREAMS = {"c": CASES.name, "r": REFERENCE.name}


@dataclass(frozen=True)
class Query:
    """One look-up item, validated: PDQ (1 hash, or the 8 rotations/flips with the original
    first), MD5 (1 value), or vPDQ (distinct usable frames)."""

    algorithm: str
    values: tuple[str, ...] = ()
    frames: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    item: int
    entry_id: int
    entry_key: str
    bank: str
    kind: str
    case_id: str | None
    algorithm: str
    distance: int
    rotated: bool = False
    query_match_percent: float | None = None
    compared_match_percent: float | None = None


@dataclass
class Raw:
    """What the indexes returned for a batch, before the bank's rules are applied."""

    candidates: list[domain.Candidate] = field(default_factory=list)
    negative: dict[int, int] = field(default_factory=dict)
    """item -> distance to the closest negative-bank hash within its threshold."""
    frames: dict[tuple[int, int], tuple[set[int], set[int]]] = field(default_factory=dict)
    """(item, entry) -> (query frames matched, banked frames matched)."""


@dataclass
class Stats:
    restored_rows: int = 0
    restore_seconds: float = 0.0
    lookups: int = 0
    items: int = 0
    matches: int = 0
    suppressed: int = 0
    changes_applied: int = 0
    last_poll_at: float = 0.0


def _hashes(concatenated: list[str], count: int) -> NDArray[np.uint8]:
    """``count`` 32-byte hashes from hex strings of whole hashes (already validated when they
    were banked: ``bytes.fromhex`` still refuses anything that is not hex)."""
    raw = bytes.fromhex("".join(concatenated))
    if len(raw) != count * 32:
        raise ValueError("a banked hash is not 64 hex characters")
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, 32)


def _programme(banks: dict[str, domain.BankSettings], name: str) -> str:
    """The programme of a bank: a case bank's name says it; a list bank's settings do (one
    never configured is in the adults' programme, as the bank's projection records it)."""
    programme = domain.case_bank_programme(name)
    if programme is not None:
        return programme
    return banks.get(name, domain.DEFAULT_SETTINGS).programme


def _bank_checkpoints(conn: Connection) -> dict[str, int]:
    return {p: checkpoints.read(conn, p) for p in BANK_PROJECTIONS}


class Matcher(LoopWorker):
    """A worker: each round applies the bank's changes since its cursors (nudged when a
    projection of this process commits, polling every ``poll_interval`` for other replicas').

    Read-your-writes: before reading changes, a round reads the bank's checkpoints; since a
    change commits with its checkpoint, the round has then seen every change up to them
    (``applied_through``). ``wait_caught_up`` waits until those reach the checkpoints as they
    were when it was called."""

    name = "matcher"

    def __init__(self, engine: AsyncEngine, *, poll_interval: float = 0.1) -> None:
        super().__init__()
        self.engine = engine
        self.poll_interval = poll_interval
        self.interval = poll_interval
        self.primary = PdqIndex()
        self.aliases = PdqIndex()
        self.frames = PdqIndex()
        self.negative = PdqIndex()
        self._md5 = ExactIndex()
        self._negative_md5: set[str] = set()
        self._negative_ids: set[int] = set()
        self._lock = threading.Lock()  # guards the MD5 structures (plain dicts and sets)
        self.banks: dict[str, domain.BankSettings] = {}
        self.cursors: dict[str, int] = {"c": 0, "r": 0}
        self.stats = Stats()
        self.applied_through: dict[str, int] = {}
        """The bank projections' checkpoints up to which every change is applied."""
        self._poll_lock = asyncio.Lock()
        self._sources: set[tuple[str, int]] = set()
        """(stream, sequence) of events whose changes the last poll applied (for its span)."""

    # -- loading and following the bank -------------------------------------------------------

    async def restore(self) -> Stats:
        """Load every live entry. Cursors are read first: a change committed while loading is
        applied again by ``follow``, and applying a change twice changes nothing."""
        t0 = time.perf_counter()
        self.primary.warmup()
        async with self.engine.connect() as conn:
            self.cursors = await conn.run_sync(cursors_now)
            self.banks = await conn.run_sync(read_banks)
            after, rows = 0, 0
            while True:
                page = await conn.run_sync(live_entries, after, RESTORE_PAGE)
                if not page:
                    break
                await asyncio.to_thread(self._add, page)
                rows += len(page)
                after = int(page[-1][0])
            negs = await conn.run_sync(negatives)
        self._add_negatives(negs)
        self.stats.restored_rows = rows
        self.stats.restore_seconds = time.perf_counter() - t0
        log.info("matcher restored %d entries in %.2fs", rows, self.stats.restore_seconds)
        return self.stats

    def _add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Add ``(entry_id, algorithm, value, aliases, frames)`` rows, in entry id order."""
        pdq_ids: list[int] = []
        pdq_hex: list[str] = []
        alias_ids: list[int] = []
        alias_hex: list[str] = []
        frame_ids: list[int] = []
        frame_hex: list[str] = []
        md5_ids: list[int] = []
        md5_values: list[str] = []
        for entry_id, algorithm, value, aliases, frames in rows:
            if algorithm == "pdq" and value:
                pdq_ids.append(entry_id)
                pdq_hex.append(value)
                if aliases:
                    alias_ids += [entry_id] * (len(aliases) // 64)
                    alias_hex.append(aliases)
            elif algorithm == "md5" and value:
                md5_ids.append(entry_id)
                md5_values.append(value)
            elif algorithm == "vpdq" and frames:
                frame_ids += [entry_id << FRAME_BITS | n for n in range(len(frames) // 64)]
                frame_hex.append(frames)
        if pdq_ids:
            self.primary.add(np.asarray(pdq_ids, np.int64), _hashes(pdq_hex, len(pdq_ids)))
        if alias_ids:
            self.aliases.add(np.asarray(alias_ids, np.int64), _hashes(alias_hex, len(alias_ids)))
        if frame_ids:
            self.frames.add(np.asarray(frame_ids, np.int64), _hashes(frame_hex, len(frame_ids)))
        if md5_ids:
            with self._lock:
                self._md5.add(md5_ids, md5_values)

    def _remove(self, rows: Sequence[Any]) -> None:
        ids = [int(r.entry_id) for r in rows if r.entry_id is not None]
        if not ids:
            return
        self.primary.remove(ids)
        self.aliases.remove(ids)
        frame_ids = [
            int(r.entry_id) << FRAME_BITS | n
            for r in rows
            if r.algorithm == "vpdq"
            for n in range(len(split_hashes(r.frames)))
        ]
        if frame_ids:
            self.frames.remove(frame_ids)
        with self._lock:
            self._md5.remove(ids)

    def _add_negatives(self, rows: Sequence[Any]) -> None:
        pdq_ids: list[int] = []
        pdq_hex: list[str] = []
        for r in rows:
            if int(r.neg_no) in self._negative_ids:
                continue
            self._negative_ids.add(int(r.neg_no))
            if r.algorithm == "pdq":
                pdq_ids.append(int(r.neg_no))
                pdq_hex.append(r.value)
            else:
                with self._lock:
                    self._negative_md5.add(r.value)
        if pdq_ids:
            self.negative.add(np.asarray(pdq_ids, np.int64), hashes_from_hex(pdq_hex))

    async def poll(self) -> int:
        """Apply every change committed since the cursors. Returns how many were applied."""
        applied = 0
        async with self._poll_lock:
            self._sources.clear()
            async with self.engine.connect() as conn:
                seen = await conn.run_sync(_bank_checkpoints)
            while True:
                async with self.engine.connect() as conn:
                    rows = await conn.run_sync(changes_since, dict(self.cursors), FOLLOW_PAGE)
                    negative_ids = [r.negative_id for r in rows if r.kind == "negative"]
                    negs = await conn.run_sync(negatives, negative_ids) if negative_ids else []
                    banks = None
                    if any(r.kind == "settings" for r in rows):
                        banks = await conn.run_sync(read_banks)
                if not rows:
                    break
                adds = sorted(
                    (r.entry_id, r.algorithm, r.value, r.aliases, r.frames)
                    for r in rows
                    if r.kind == "add" and r.live
                )
                removes = [r for r in rows if r.kind in ("remove", "unmatch")]
                if banks is not None:
                    # before the adds: a list bank's entries match only once its programme
                    # is known here (decision 39)
                    self.banks = banks
                if adds:
                    await asyncio.to_thread(self._add, adds)
                if removes:
                    await asyncio.to_thread(self._remove, removes)
                if negs:
                    self._add_negatives(negs)
                cursors = dict(self.cursors)
                for r in rows:
                    cursors[r.stream] = max(cursors.get(r.stream, 0), int(r.key))
                if tracing.exporting() and len(self._sources) < LINKS:
                    # where in the log each change's event is (a change's key says it)
                    self._sources.update(
                        (r.stream, int(r.key) >> domain.CHANGE_KEY_BITS) for r in rows[:LINKS]
                    )
                self.cursors = cursors
                applied += len(rows)
                if len(rows) < FOLLOW_PAGE:
                    break
            self.applied_through = seen
        self.stats.changes_applied += applied
        self.stats.last_poll_at = time.time()
        return applied

    # -- the worker -----------------------------------------------------------------------------

    async def prepare(self) -> None:
        await self.restore()

    async def step(self) -> int:
        started = time.time_ns()
        applied = await self.poll()
        if applied and tracing.exporting():
            # a root linked to the bank projection's spans for the events that made the
            # changes, when this process handled them (decision 55)
            sources = sorted(self._sources)[:LINKS]
            tracing.past_span(
                "ncii.matcher.follow",
                started,
                {"ncii.handler": self.name, "messaging.batch.message_count": applied},
                (tracing.handled_at(STREAMS[stream], seq) for stream, seq in sources),
            )
        return applied

    async def target(self) -> object:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_bank_checkpoints)

    async def reached(self, target: object) -> bool:
        assert isinstance(target, dict)
        return all(self.applied_through.get(k, 0) >= v for k, v in target.items())

    async def pending(self) -> int:
        """Changes in the bank that this matcher has not applied yet."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(count_changes_since, dict(self.cursors))

    # -- look-ups -----------------------------------------------------------------------------

    def _max_threshold(self) -> int:
        values = [s.pdq_threshold for s in self.banks.values() if s.enabled]
        return max([domain.DEFAULT_PDQ_THRESHOLD, *values])

    def search(self, queries: Sequence[Query]) -> Raw:
        """The indexes' raw hits for a batch (runs on a worker thread)."""
        raw = Raw()
        threshold = self._max_threshold()
        prim_q: list[str] = []
        prim_src: list[tuple[int, bool]] = []
        alias_q: list[str] = []
        alias_src: list[int] = []
        frame_q: list[str] = []
        frame_src: list[tuple[int, int]] = []
        for i, q in enumerate(queries):
            if q.algorithm == "pdq":
                for k, value in enumerate(q.values):
                    prim_q.append(value)
                    prim_src.append((i, k > 0))
                if len(q.values) == 1:
                    alias_q.append(q.values[0])
                    alias_src.append(i)
            elif q.algorithm == "md5":
                with self._lock:
                    ids = self._md5.lookup(q.values[0])
                    if q.values[0] in self._negative_md5:
                        raw.negative[i] = 0
                raw.candidates += [domain.Candidate(i, e, 0) for e in ids]
            elif q.algorithm == "vpdq":
                for n, frame in enumerate(q.frames):
                    frame_q.append(frame)
                    frame_src.append((i, n))
        if prim_q:
            queries_arr = hashes_from_hex(prim_q)
            qi, found, dist = self.primary.search_arrays(queries_arr, threshold)
            for a, e, d in zip(qi.tolist(), found.tolist(), dist.tolist(), strict=True):
                item, rotated = prim_src[a]
                raw.candidates.append(domain.Candidate(item, e, d, rotated))
            if len(self.negative):
                qi, _, dist = self.negative.search_arrays(
                    queries_arr, domain.NEGATIVE_PDQ_THRESHOLD
                )
                for a, d in zip(qi.tolist(), dist.tolist(), strict=True):
                    item = prim_src[a][0]
                    raw.negative[item] = min(d, raw.negative.get(item, d))
        if alias_q and len(self.aliases):
            qi, found, dist = self.aliases.search_arrays(hashes_from_hex(alias_q), threshold)
            for a, e, d in zip(qi.tolist(), found.tolist(), dist.tolist(), strict=True):
                raw.candidates.append(domain.Candidate(alias_src[a], e, d, True))
        if frame_q and len(self.frames):
            qi, found, _ = self.frames.search_arrays(hashes_from_hex(frame_q), domain.VPDQ_DISTANCE)
            for a, fid in zip(qi.tolist(), found.tolist(), strict=True):
                item, n = frame_src[a]
                key = (item, fid >> FRAME_BITS)
                q_hit, c_hit = raw.frames.setdefault(key, (set(), set()))
                q_hit.add(n)
                c_hit.add(fid & ((1 << FRAME_BITS) - 1))
        return raw

    async def lookup(
        self, queries: Sequence[Query], programmes: Collection[str] = domain.PROGRAMMES
    ) -> list[list[Hit]]:
        """Matches per item, after thresholds, rotations, liveness, vPDQ shares and the
        negative bank; at most ``MAX_MATCHES_PER_ITEM`` per item, closest first. Only entries
        of banks in ``programmes`` (the platform's subscription, decision 39) match: the others
        are dropped before anything is counted, as if they were not in the bank."""
        raw = await asyncio.to_thread(self.search, queries)
        self.stats.lookups += 1
        self.stats.items += len(queries)
        per_item: dict[int, list[domain.Candidate]] = {}
        for c in raw.candidates:
            per_item.setdefault(c.item, []).append(c)
        wanted: set[int] = {e for _, e in raw.frames}
        for cands in per_item.values():
            cands.sort(key=lambda c: c.distance)
            del cands[4 * domain.MAX_MATCHES_PER_ITEM :]  # a flood of near-identical hashes
            wanted.update(c.entry_id for c in cands)
        results: list[list[Hit]] = [[] for _ in queries]
        if not wanted:
            return results
        async with self.engine.connect() as conn:
            rows = await conn.run_sync(entries_by_ids, sorted(wanted))
        banks = self.banks
        live = {
            e: r for e, r in rows.items() if r.live and _programme(banks, str(r.bank)) in programmes
        }
        settings = {e: banks.get(r.bank, domain.DEFAULT_SETTINGS) for e, r in live.items()}
        algorithms = {e: str(r.algorithm) for e, r in live.items()}
        chosen = domain.best_matches(
            (c for cands in per_item.values() for c in cands), algorithms, settings
        )
        for c in chosen:
            r = live[c.entry_id]
            results[c.item].append(
                Hit(
                    c.item,
                    c.entry_id,
                    r.entry_key,
                    r.bank,
                    r.kind,
                    r.case_id,
                    r.algorithm,
                    c.distance,
                    c.rotated,
                )
            )
        for (item, entry_id), (q_hit, c_hit) in raw.frames.items():
            r = live.get(entry_id)
            if r is None or not settings[entry_id].enabled:
                continue
            result = domain.vpdq_percentages(
                len(queries[item].frames), len(split_hashes(r.frames)), len(q_hit), len(c_hit)
            )
            if result.is_match(settings[entry_id]):
                results[item].append(
                    Hit(
                        item,
                        entry_id,
                        r.entry_key,
                        r.bank,
                        r.kind,
                        r.case_id,
                        "vpdq",
                        0,
                        query_match_percent=result.query_match_percent,
                        compared_match_percent=result.compared_match_percent,
                    )
                )
        for item, hits in enumerate(results):
            negative = raw.negative.get(item)
            kept = [h for h in hits if not domain.suppressed(h.distance, negative)]
            self.stats.suppressed += len(hits) - len(kept)
            kept.sort(key=lambda h: (h.distance, h.entry_id))
            results[item] = kept[: domain.MAX_MATCHES_PER_ITEM]
            self.stats.matches += len(results[item])
        return results

    def status(self) -> dict[str, Any]:
        return {
            "pdq_hashes": len(self.primary),
            "pdq_rotations": len(self.aliases),
            "vpdq_frames": len(self.frames),
            "md5_hashes": len(self._md5),
            "negative_hashes": len(self.negative) + len(self._negative_md5),
            "index_bytes": self.primary.nbytes + self.aliases.nbytes + self.frames.nbytes,
            "cursors": dict(self.cursors),
            "restored_rows": self.stats.restored_rows,
            "restore_seconds": round(self.stats.restore_seconds, 3),
            "poll_interval_ms": int(self.poll_interval * 1000),
            "lookups": self.stats.lookups,
            "items": self.stats.items,
            "matches": self.stats.matches,
            "suppressed": self.stats.suppressed,
        }
