"""In-memory exact matcher indexes: PDQ (Hamming distance) and MD5 (equality).

Pure compute: no I/O, no asyncio. The service loads rows ``(id, 32-byte hash)`` from its
SQL projection and feeds them to :meth:`PdqIndex.add` / :meth:`PdqIndex.from_arrays`.

Design of :class:`PdqIndex`
---------------------------
An exact linear scan, laid out for memory bandwidth rather than an index structure:

* Every 256-bit hash is split into column planes: ``p0`` (bits 0-63, uint64), ``p1``
  (bits 64-95, uint32), ``p2`` (bits 96-127, uint32) and ``tail`` (bits 128-255, 2 x uint64).
  A scan first reads only ``p0`` and ``p1`` (12 of the 32 bytes per hash) and computes the
  Hamming distance of that 96-bit prefix; since the prefix distance is a lower bound of the
  full distance, rows whose prefix is already over the threshold are rejected without
  touching the rest. For unrelated hashes the 96-bit prefix distance is ~48 +- 5, so at
  threshold 31 only ~3 in 10,000 rows read the other 20 bytes. Nothing is approximate:
  every row within the threshold is returned (100% recall).
* The prefix pass is a compiled (numba, cached on disk) kernel (``pdq_kernels``) that works
  on blocks of 128 rows; the block stays in L1 while *all* queries of the batch are compared
  against it, so an image's 8 dihedral hashes cost one pass over memory, not 8. LLVM
  vectorises the block loop (AVX-512 VPOPCNTQ where the CPU has it).
* Large scans are split across threads (the kernel releases the GIL).
* Storage is a list of segments of at most ``segment_rows`` rows. Adding appends to the
  last segment (no rebuild; 10,000 hashes cost microseconds to milliseconds), so memory is
  32 B (hash) + 8 B (int64 id) + 1 B (alive flag) = 41 B per row, plus at most one
  partially-filled segment whose untouched tail is never resident.
* ``remove`` tombstones rows (alive flag) under the same lock as ``add``: a removed id is
  never returned by a search that starts after ``remove`` returns. Dead rows are dropped by
  :meth:`PdqIndex.compact`, which runs automatically when a quarter of the rows are dead.
* Thread safety: mutations are serialised by a lock; a search takes a consistent snapshot
  of the segments under the lock and scans without holding it.

If numba is unavailable the same algorithm runs on numpy (``backend="numpy"``), roughly an
order of magnitude slower.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import numpy as np
from numpy.typing import NDArray

from ncii_hashmatch.pdq_kernels import (
    B1,
    BLOCK,
    I16,
    I32,
    I64,
    U8,
    U32,
    U64,
    ScanFn,
    numba_available,
    numba_scan,
    scan_numpy,
)

__all__ = [
    "HASH_BYTES",
    "MD5_BYTES",
    "PDQ_MATCH_THRESHOLD",
    "ExactIndex",
    "PdqIndex",
    "bytes_to_hex",
    "hamming",
    "hashes_from_hex",
    "hashes_to_hex",
    "hex_to_bytes",
    "numba_available",
]

HASH_BYTES: Final = 32
HASH_HEX_CHARS: Final = 2 * HASH_BYTES
MD5_BYTES: Final = 16
PDQ_MATCH_THRESHOLD: Final = 31
"""PDQ's recommended match threshold (inclusive): distance <= 31 is a match."""

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")

_PARALLEL_MIN_WORK: Final = 4_000_000
"""Row x query comparisons below which a scan stays on the calling thread."""
_OUT_CAP: Final = 1024

HashesLike = U8 | str | bytes | Sequence[str] | Sequence[bytes]
"""A batch of PDQ hashes: ``uint8`` array ``(n, 32)`` (or ``(32,)`` for one), 64-char hex
strings, 32-byte ``bytes``, or a single one of either."""

Match = tuple[int, int, int]
"""``(query_index, id, distance)``."""


# --------------------------------------------------------------------------------------
# hex <-> bytes helpers


def hex_to_bytes(hex_hash: str) -> bytes:
    """Parse one 64-char hex PDQ hash (either case) into 32 bytes; ValueError otherwise."""
    if not isinstance(hex_hash, str) or _HEX64.fullmatch(hex_hash) is None:
        raise ValueError(f"not a 64-character hex PDQ hash: {hex_hash!r:.80}")
    return bytes.fromhex(hex_hash)


def bytes_to_hex(raw: bytes | U8) -> str:
    """32 bytes (or a ``(32,)`` uint8 array) to lowercase 64-char hex."""
    b = raw.tobytes() if isinstance(raw, np.ndarray) else bytes(raw)
    if len(b) != HASH_BYTES:
        raise ValueError(f"a PDQ hash is {HASH_BYTES} bytes, got {len(b)}")
    return b.hex()


def hashes_from_hex(hex_hashes: Iterable[str]) -> U8:
    """Parse many 64-char hex hashes into a ``(n, 32)`` uint8 array; ValueError on bad input."""
    items = list(hex_hashes)
    for h in items:
        if not isinstance(h, str) or _HEX64.fullmatch(h) is None:
            raise ValueError(f"not a 64-character hex PDQ hash: {h!r:.80}")
    if not items:
        return np.empty((0, HASH_BYTES), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(items)), dtype=np.uint8).reshape(-1, HASH_BYTES)


def hashes_to_hex(hashes: U8) -> list[str]:
    """A ``(n, 32)`` uint8 array to a list of lowercase hex strings."""
    arr = _as_hash_array(hashes)
    return [row.tobytes().hex() for row in arr]


def hamming(a_hex: str, b_hex: str) -> int:
    """Hamming distance between two 64-char hex PDQ hashes."""
    a = int.from_bytes(hex_to_bytes(a_hex), "big")
    b = int.from_bytes(hex_to_bytes(b_hex), "big")
    return (a ^ b).bit_count()


def _as_hash_array(hashes: HashesLike) -> U8:
    """Normalise any accepted hash batch to a C-contiguous ``(n, 32)`` uint8 array."""
    if isinstance(hashes, np.ndarray):
        if hashes.dtype != np.uint8:
            raise ValueError(f"hash arrays must be uint8, got {hashes.dtype}")
        if hashes.ndim == 1 and hashes.shape[0] == HASH_BYTES:
            hashes = hashes.reshape(1, HASH_BYTES)
        if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES:
            raise ValueError(f"hash arrays must have shape (n, {HASH_BYTES}), got {hashes.shape}")
        return np.ascontiguousarray(hashes)
    if isinstance(hashes, str):
        return np.frombuffer(hex_to_bytes(hashes), dtype=np.uint8).reshape(1, HASH_BYTES)
    if isinstance(hashes, bytes | bytearray | memoryview):
        b = bytes(hashes)
        if len(b) != HASH_BYTES:
            raise ValueError(f"a PDQ hash is {HASH_BYTES} bytes, got {len(b)}")
        return np.frombuffer(b, dtype=np.uint8).reshape(1, HASH_BYTES)
    items = list(hashes)
    if not items:
        return np.empty((0, HASH_BYTES), dtype=np.uint8)
    if all(isinstance(h, str) for h in items):
        return hashes_from_hex(cast(list[str], items))
    if all(isinstance(h, bytes | bytearray | memoryview) for h in items):
        raws = [bytes(cast(bytes, h)) for h in items]
        for r in raws:
            if len(r) != HASH_BYTES:
                raise ValueError(f"a PDQ hash is {HASH_BYTES} bytes, got {len(r)}")
        return np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(-1, HASH_BYTES)
    raise ValueError("hashes must be all hex strings or all 32-byte bytes objects")


def _as_ids(ids: Iterable[int] | I64, n: int | None = None) -> I64:
    arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
    if arr.size == 0:
        arr = np.empty(0, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError("ids must be one-dimensional")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError("ids must fit in int64")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"got {arr.shape[0]} ids for {n} hashes")
    return np.ascontiguousarray(arr, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _Planes:
    """Hashes split into the scan layout (see the module docstring)."""

    p0: U64
    p1: U32
    p2: U32
    tail: U64  # (n, 2)

    @classmethod
    def of(cls, hashes: U8) -> _Planes:
        w64 = hashes.view(np.uint64)  # (n, 4), native byte order: any fixed order works
        w32 = hashes.view(np.uint32)  # (n, 8)
        return cls(
            p0=np.ascontiguousarray(w64[:, 0]),
            p1=np.ascontiguousarray(w32[:, 2]),
            p2=np.ascontiguousarray(w32[:, 3]),
            tail=np.ascontiguousarray(w64[:, 2:4]),
        )


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, _cpu_count()), thread_name_prefix="pdq-scan"
            )
        return _pool


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------
# PDQ index


class _Segment:
    """Up to ``segment_rows`` rows in scan layout; rows [0, n) are filled."""

    __slots__ = ("alive", "ids", "n", "p0", "p1", "p2", "tail")

    def __init__(self, capacity: int) -> None:
        self.p0: U64 = np.empty(capacity, dtype=np.uint64)
        self.p1: U32 = np.empty(capacity, dtype=np.uint32)
        self.p2: U32 = np.empty(capacity, dtype=np.uint32)
        self.tail: U64 = np.empty((capacity, 2), dtype=np.uint64)
        self.ids: I64 = np.empty(capacity, dtype=np.int64)
        self.alive: B1 = np.empty(capacity, dtype=np.bool_)
        self.n = 0

    @property
    def capacity(self) -> int:
        return int(self.p0.shape[0])

    def grow(self, capacity: int) -> None:
        n = self.n
        for name in ("p0", "p1", "p2", "tail", "ids", "alive"):
            old: NDArray[Any] = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def write(self, planes: _Planes, ids: I64, alive: B1, src: slice) -> None:
        k = src.stop - src.start
        dst = slice(self.n, self.n + k)
        self.p0[dst] = planes.p0[src]
        self.p1[dst] = planes.p1[src]
        self.p2[dst] = planes.p2[src]
        self.tail[dst] = planes.tail[src]
        self.ids[dst] = ids[src]
        self.alive[dst] = alive[src]
        self.n += k

    def hashes_into(self, rows: slice | I64, out: U8) -> None:
        """Reassemble the selected rows' 32-byte hashes into ``out`` (k, 32)."""
        w64 = out.view(np.uint64)
        w32 = out.view(np.uint32)
        w64[:, 0] = self.p0[rows]
        w32[:, 2] = self.p1[rows]
        w32[:, 3] = self.p2[rows]
        w64[:, 2:4] = self.tail[rows]

    def nbytes(self) -> int:
        return sum(
            int(a.nbytes) for a in (self.p0, self.p1, self.p2, self.tail, self.ids, self.alive)
        )


@dataclass(frozen=True, slots=True)
class _Piece:
    arrays: tuple[U64, U32, U32, U64, B1, I64]
    start: int
    end: int


class PdqIndex:
    """Exact Hamming-distance index of 256-bit PDQ hashes, keyed by integer ids.

    ``search(queries, threshold)`` returns every stored id whose hash is within
    ``threshold`` bits (inclusive) of a query, as ``(query_index, id, distance)``. Ids need
    not be unique: an id matches if any of its hashes does, reported once at its smallest
    distance. See the module docstring for the layout and its costs.
    """

    def __init__(
        self,
        *,
        backend: Literal["auto", "numba", "numpy"] = "auto",
        threads: int | None = None,
        segment_rows: int = 1 << 20,
        compact_dead_fraction: float = 0.25,
    ) -> None:
        if segment_rows < BLOCK:
            raise ValueError(f"segment_rows must be >= {BLOCK}")
        if backend == "numpy":
            self._scan: ScanFn = scan_numpy
        else:
            compiled = numba_scan()
            if compiled is None:
                if backend == "numba":
                    raise RuntimeError("numba is not available")
                self._scan = scan_numpy
            else:
                self._scan = compiled
        self.backend: str = "numba" if self._scan is not scan_numpy else "numpy"
        self._threads = max(1, threads if threads is not None else min(2, _cpu_count()))
        self._segment_rows = segment_rows
        self._compact_dead_fraction = compact_dead_fraction
        self._segs: list[_Segment] = []
        self._rows = 0
        self._dead = 0
        self._ids_sorted = True  # every id >= all ids before it: remove() can binary-search
        self._max_id: int | None = None
        self._lock = threading.RLock()

    # ---- construction / export

    @classmethod
    def from_arrays(
        cls,
        ids: Iterable[int] | I64,
        hashes: HashesLike,
        **kwargs: Any,
    ) -> PdqIndex:
        """Build an index from ``(ids, (n, 32) uint8)``, e.g. rows loaded from SQL."""
        index = cls(**kwargs)
        index.add(ids, hashes)
        return index

    def to_arrays(self) -> tuple[I64, U8]:
        """Live rows as ``(ids int64 (n,), hashes uint8 (n, 32))``, in insertion order."""
        with self._lock:
            live = len(self)
            ids = np.empty(live, dtype=np.int64)
            hashes = np.empty((live, HASH_BYTES), dtype=np.uint8)
            pos = 0
            for seg in self._segs:
                alive = seg.alive[: seg.n]
                rows: slice | I64 = slice(0, seg.n) if bool(alive.all()) else np.flatnonzero(alive)
                k = int(seg.ids[rows].shape[0])
                ids[pos : pos + k] = seg.ids[rows]
                seg.hashes_into(rows, hashes[pos : pos + k])
                pos += k
        return ids, hashes

    def warmup(self) -> float:
        """Load (or on first ever use, compile) the kernel; returns the seconds it took."""
        t0 = time.perf_counter()
        probe = PdqIndex(backend=cast(Literal["numba", "numpy"], self.backend), threads=1)
        probe.add([0], np.zeros((1, HASH_BYTES), dtype=np.uint8))
        probe.search(np.zeros((1, HASH_BYTES), dtype=np.uint8), 0)
        return time.perf_counter() - t0

    @property
    def threads(self) -> int:
        """Threads a large search is split across."""
        return self._threads

    @threads.setter
    def threads(self, value: int) -> None:
        if value < 1:
            raise ValueError("threads must be >= 1")
        self._threads = value

    # ---- size

    def __len__(self) -> int:
        """Number of live (not removed) rows."""
        return self._rows - self._dead

    @property
    def rows(self) -> int:
        """Stored rows including tombstoned ones (until the next compaction)."""
        return self._rows

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the arrays (the filled part is what is resident)."""
        return sum(seg.nbytes() for seg in self._segs)

    # ---- mutation

    def add(self, ids: Iterable[int] | I64, hashes: HashesLike) -> None:
        """Append hashes with their ids; matchable as soon as this returns."""
        arr = _as_hash_array(hashes)
        id_arr = _as_ids(ids, arr.shape[0])
        n = int(arr.shape[0])
        step = self._segment_rows  # bounded temporaries: at most one segment's worth
        with self._lock:
            for pos in range(0, n, step):
                chunk = slice(pos, min(n, pos + step))
                planes = _Planes.of(arr[chunk])
                alive = np.ones(chunk.stop - chunk.start, dtype=np.bool_)
                self._append(planes, id_arr[chunk], alive)

    def _append(self, planes: _Planes, ids: I64, alive: B1) -> None:
        n = int(ids.shape[0])
        if self._ids_sorted:
            first = int(ids[0])
            monotone = n < 2 or bool(np.all(ids[1:] >= ids[:-1]))
            if not monotone or (self._max_id is not None and first < self._max_id):
                self._ids_sorted = False
        batch_max = int(ids.max())
        self._max_id = batch_max if self._max_id is None else max(self._max_id, batch_max)
        pos = 0
        while pos < n:
            if not self._segs or self._segs[-1].n == self._segment_rows:
                self._segs.append(_Segment(min(self._segment_rows, max(n - pos, 1024))))
            seg = self._segs[-1]
            k = min(n - pos, self._segment_rows - seg.n)
            if seg.n + k > seg.capacity:
                seg.grow(min(self._segment_rows, max(seg.n + k, 2 * seg.capacity)))
            seg.write(planes, ids, alive, slice(pos, pos + k))
            pos += k
        self._rows += n
        self._dead += int(n - np.count_nonzero(alive))

    def remove(self, ids: Iterable[int] | I64) -> int:
        """Remove every row with one of these ids; returns how many rows were removed.

        Takes effect at once: no search started after this returns will report them.
        """
        rm = np.unique(_as_ids(ids))
        if rm.size == 0:
            return 0
        removed = 0
        with self._lock:
            for seg in self._segs:
                if seg.n == 0:
                    continue
                seg_ids = seg.ids[: seg.n]
                if self._ids_sorted:
                    lo = np.searchsorted(seg_ids, rm, side="left")
                    hi = np.searchsorted(seg_ids, rm, side="right")
                    hit = np.flatnonzero(hi > lo)
                    if hit.size == 0:
                        continue
                    rows = np.concatenate(
                        [np.arange(lo[h], hi[h], dtype=np.int64) for h in hit.tolist()]
                    )
                else:
                    rows = np.flatnonzero(np.isin(seg_ids, rm))
                    if rows.size == 0:
                        continue
                live = rows[seg.alive[rows]]
                seg.alive[live] = False
                removed += int(live.shape[0])
            self._dead += removed
            if (
                self._dead > 0
                and self._dead >= self._compact_dead_fraction * self._rows
                and self._rows >= 1024
            ):
                self._compact_locked()
        return removed

    def compact(self) -> None:
        """Drop tombstoned rows (peak extra memory: about one segment)."""
        with self._lock:
            self._compact_locked()

    def _compact_locked(self) -> None:
        if self._dead == 0:
            return
        old = self._segs
        self._segs = []
        self._rows = 0
        self._dead = 0
        self._ids_sorted = True  # re-established (or not) by re-appending the live rows
        self._max_id = None
        for k in range(len(old)):
            seg = old[k]
            rows = np.flatnonzero(seg.alive[: seg.n])
            if rows.size:
                planes = _Planes(seg.p0[rows], seg.p1[rows], seg.p2[rows], seg.tail[rows])
                ids = seg.ids[rows]
                self._append(planes, ids, np.ones(rows.shape[0], dtype=np.bool_))
            old[k] = _Segment(0)  # release the old arrays as we go

    # ---- search

    def search(
        self,
        queries: HashesLike,
        threshold: int | Sequence[int] | NDArray[np.integer[Any]] = PDQ_MATCH_THRESHOLD,
    ) -> list[Match]:
        """All ``(query_index, id, distance)`` with ``distance <= threshold``.

        ``threshold`` is one int for all queries or one per query. The batch is answered in
        one pass over the table (do pass an image's 8 dihedral hashes together). Sorted by
        query index, then distance, then id; each id at most once per query.
        """
        q_idx, ids, dist = self.search_arrays(queries, threshold)
        return list(zip(q_idx.tolist(), ids.tolist(), dist.tolist(), strict=True))

    def search_arrays(
        self,
        queries: HashesLike,
        threshold: int | Sequence[int] | NDArray[np.integer[Any]] = PDQ_MATCH_THRESHOLD,
    ) -> tuple[I32, I64, I16]:
        """Like :meth:`search`, as arrays ``(query_index, id, distance)``."""
        qarr = _as_hash_array(queries)
        nq = int(qarr.shape[0])
        thr = _as_thresholds(threshold, nq)
        if nq == 0:
            return _empty_result()
        qp = _Planes.of(qarr)
        with self._lock:  # consistent snapshot; the scan itself runs unlocked
            snapshot = [
                ((seg.p0, seg.p1, seg.p2, seg.tail, seg.alive, seg.ids), seg.n)
                for seg in self._segs
                if seg.n
            ]
        total = sum(n for _, n in snapshot)
        if total == 0:
            return _empty_result()
        threads = self._threads if total * nq >= _PARALLEL_MIN_WORK else 1
        parts = _split(snapshot, total, threads)
        args = (qp.p0, qp.p1, qp.p2, qp.tail, thr)
        futures: list[Future[list[tuple[I32, I64, I16]]]] = []
        if len(parts) > 1:
            pool = _get_pool()
            futures = [pool.submit(self._scan_pieces, p, args) for p in parts[1:]]
        results = self._scan_pieces(parts[0], args)
        for f in futures:
            results.extend(f.result())
        return _merge(results)

    def _scan_pieces(
        self, pieces: list[_Piece], args: tuple[U64, U32, U32, U64, I32]
    ) -> list[tuple[I32, I64, I16]]:
        out: list[tuple[I32, I64, I16]] = []
        cap = _OUT_CAP
        for piece in pieces:
            while True:
                oq = np.empty(cap, dtype=np.int32)
                oi = np.empty(cap, dtype=np.int64)
                od = np.empty(cap, dtype=np.int16)
                cnt = int(self._scan(*piece.arrays, piece.start, piece.end, *args, oq, oi, od))
                if cnt <= cap:
                    break
                cap = cnt  # rare: more matches than buffer room; rescan with room for all
            if cnt:
                out.append((oq[:cnt], oi[:cnt], od[:cnt]))
        return out


def _as_thresholds(threshold: int | Sequence[int] | NDArray[np.integer[Any]], nq: int) -> I32:
    if isinstance(threshold, int | np.integer):
        thr = np.full(nq, int(threshold), dtype=np.int64)
    else:
        thr = np.asarray(threshold)
        if thr.dtype.kind not in "iu" or thr.shape != (nq,):
            raise ValueError(f"threshold must be an int or {nq} ints (one per query)")
    if thr.size and (int(thr.min()) < 0 or int(thr.max()) > 8 * HASH_BYTES):
        raise ValueError(f"thresholds must be in 0..{8 * HASH_BYTES}")
    return np.ascontiguousarray(thr, dtype=np.int32)


def _split(
    snapshot: list[tuple[tuple[U64, U32, U32, U64, B1, I64], int]],
    total: int,
    parts: int,
) -> list[list[_Piece]]:
    """Cut the snapshot's rows into ``parts`` contiguous, block-aligned, equal pieces."""
    per = -(-total // parts)
    per = -(-per // BLOCK) * BLOCK
    out: list[list[_Piece]] = [[]]
    room = per
    for arrays, n in snapshot:
        start = 0
        while start < n:
            if room == 0:
                out.append([])
                room = per
            end = min(n, start + room)
            out[-1].append(_Piece(arrays, start, end))
            room -= end - start
            start = end
    return out


def _empty_result() -> tuple[I32, I64, I16]:
    return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.int16)


def _merge(results: list[tuple[I32, I64, I16]]) -> tuple[I32, I64, I16]:
    if not results:
        return _empty_result()
    q = np.concatenate([r[0] for r in results])
    i = np.concatenate([r[1] for r in results])
    d = np.concatenate([r[2] for r in results])
    if q.shape[0] > 1:  # an id with several hashes: keep its closest per query
        order = np.lexsort((d, i, q))
        q, i, d = q[order], i[order], d[order]
        dup = (q[1:] == q[:-1]) & (i[1:] == i[:-1])
        if dup.any():
            keep = np.concatenate(([True], ~dup))
            q, i, d = q[keep], i[keep], d[keep]
    order = np.lexsort((i, d, q))  # by query, then distance, then id
    q, i, d = q[order], i[order], d[order]
    return q, i, d


# --------------------------------------------------------------------------------------
# MD5 exact index


class ExactIndex:
    """Exact-match index for MD5 digests (32-char hex or 16 raw bytes), keyed by ids."""

    def __init__(self) -> None:
        self._by_digest: dict[bytes, set[int]] = {}
        self._by_id: dict[int, set[bytes]] = {}

    @staticmethod
    def _digest(value: str | bytes) -> bytes:
        if isinstance(value, str):
            if _HEX32.fullmatch(value) is None:
                raise ValueError(f"not a 32-character hex MD5: {value!r:.80}")
            return bytes.fromhex(value)
        if isinstance(value, bytes | bytearray | memoryview):
            b = bytes(value)
            if len(b) != MD5_BYTES:
                raise ValueError(f"an MD5 digest is {MD5_BYTES} bytes, got {len(b)}")
            return b
        raise ValueError(f"not an MD5 digest: {value!r:.80}")

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())

    def add(self, ids: Iterable[int], digests: Iterable[str | bytes]) -> None:
        id_list = [int(i) for i in ids]
        keys = [self._digest(d) for d in digests]
        if len(id_list) != len(keys):
            raise ValueError(f"got {len(id_list)} ids for {len(keys)} digests")
        for i, k in zip(id_list, keys, strict=True):
            self._by_digest.setdefault(k, set()).add(i)
            self._by_id.setdefault(i, set()).add(k)

    def remove(self, ids: Iterable[int]) -> int:
        removed = 0
        for i in ids:
            for k in self._by_id.pop(int(i), set()):
                holders = self._by_digest[k]
                holders.discard(int(i))
                removed += 1
                if not holders:
                    del self._by_digest[k]
        return removed

    def lookup(self, digest: str | bytes) -> list[int]:
        """Ids stored under this digest, ascending."""
        return sorted(self._by_digest.get(self._digest(digest), ()))

    def search(self, digests: Sequence[str | bytes]) -> list[Match]:
        """``(query_index, id, 0)`` for each query's exact matches (PdqIndex's shape)."""
        return [(qi, i, 0) for qi, d in enumerate(digests) for i in self.lookup(d)]
