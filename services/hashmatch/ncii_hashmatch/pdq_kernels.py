"""The PDQ index's scan kernels: compiled (numba, cached on disk) and numpy, one contract.

A kernel scans rows ``[start, end)`` of the column planes (``p0``, ``p1``, ``p2``, ``tail``:
see :mod:`ncii_hashmatch.index`) against every query of a batch and writes the matches within
each query's threshold. Pure compute: no I/O, no state but the compiled kernel, loaded once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Final, cast

import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
U32 = NDArray[np.uint32]
U64 = NDArray[np.uint64]
I16 = NDArray[np.int16]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
B1 = NDArray[np.bool_]

BLOCK: Final = 128
"""Rows per block in the compiled kernel; a block's prefix planes stay in L1."""

ScanFn = Callable[..., int]


def scan_python(
    p0: U64,
    p1: U32,
    p2: U32,
    tail: U64,
    alive: B1,
    ids: I64,
    start: int,
    end: int,
    q0: U64,
    q1: U32,
    q2: U32,
    qt: U64,
    thr: I32,
    out_q: I32,
    out_id: I64,
    out_d: I16,
) -> int:
    """Scan rows [start, end) for all queries; write matches to out_*; return the count.

    Compiled by numba (``_popcount`` becomes LLVM's ctpop). If more matches exist than
    ``out_q`` has room for, only the first ones are written and the full count is
    returned, so the caller can retry with bigger buffers.
    """
    nq = q0.shape[0]
    cap = out_q.shape[0]
    cnt = 0
    dbuf = np.empty(BLOCK, np.int32)
    # Rows whose prefix survives are queued and finished in bursts: their other 20 bytes
    # are cache misses, and a tight loop over many independent ones overlaps them.
    ccap = max(4096, 2 * BLOCK * nq)
    c_row = np.empty(ccap, np.int64)
    c_q = np.empty(ccap, np.int32)
    c_d = np.empty(ccap, np.int32)
    nc = 0
    for b in range(start, end, BLOCK):
        e = min(b + BLOCK, end)
        m = e - b
        s0 = p0[b:e]
        s1 = p1[b:e]
        for q in range(nq):
            a0 = q0[q]
            a1 = q1[q]
            t = thr[q]
            mn = np.int32(256)
            for j in range(m):  # vectorised: 96-bit prefix distances of the block
                d = np.int32(_popcount(s0[j] ^ a0) + _popcount(s1[j] ^ a1))
                dbuf[j] = d
                mn = min(mn, d)
            if mn <= t:  # rare for unrelated hashes
                for j in range(m):
                    if dbuf[j] <= t:
                        c_row[nc] = b + j
                        c_q[nc] = q
                        c_d[nc] = dbuf[j]
                        nc += 1
        if nc > ccap - BLOCK * nq or e == end:
            for k in range(nc):
                i = c_row[k]
                q = c_q[k]
                t = thr[q]
                d = c_d[k] + _popcount(p2[i] ^ q2[q])
                if d <= t:
                    d += _popcount(tail[i, 0] ^ qt[q, 0]) + _popcount(tail[i, 1] ^ qt[q, 1])
                    if d <= t and alive[i]:
                        if cnt < cap:
                            out_q[cnt] = q
                            out_id[cnt] = ids[i]
                            out_d[cnt] = d
                        cnt += 1
            nc = 0
    return cnt


def _popcount(x: Any) -> int:  # pure-Python stand-in; numba replaces it by an intrinsic
    return int(x).bit_count()


def scan_numpy(
    p0: U64,
    p1: U32,
    p2: U32,
    tail: U64,
    alive: B1,
    ids: I64,
    start: int,
    end: int,
    q0: U64,
    q1: U32,
    q2: U32,
    qt: U64,
    thr: I32,
    out_q: I32,
    out_id: I64,
    out_d: I16,
) -> int:
    """Same contract as the compiled kernel, in numpy (fallback; one pass per query)."""
    chunk = 1 << 16
    found_q: list[I64] = []
    found_i: list[I64] = []
    found_d: list[NDArray[np.integer[Any]]] = []
    for b in range(start, end, chunk):
        e = min(b + chunk, end)
        s0 = p0[b:e]
        s1 = p1[b:e]
        for q in range(q0.shape[0]):
            t = int(thr[q])
            pre = np.bitwise_count(s0 ^ q0[q]) + np.bitwise_count(s1 ^ q1[q])
            cand = np.flatnonzero(pre <= t)
            if cand.size == 0:
                continue
            rows = cand + b
            d = (
                pre[cand].astype(np.int32)
                + np.bitwise_count(p2[rows] ^ q2[q])
                + np.bitwise_count(tail[rows] ^ qt[q]).sum(axis=1, dtype=np.int32)
            )
            keep = (d <= t) & alive[rows]
            if keep.any():
                found_q.append(np.full(int(keep.sum()), q, dtype=np.int64))
                found_i.append(rows[keep])
                found_d.append(d[keep])
    if not found_i:
        return 0
    qs = np.concatenate(found_q)
    rows_all = np.concatenate(found_i)
    ds = np.concatenate(found_d)
    cnt = int(qs.shape[0])
    k = min(cnt, out_q.shape[0])
    out_q[:k] = qs[:k]
    out_id[:k] = ids[rows_all[:k]]
    out_d[:k] = ds[:k]
    return cnt


def _load_numba() -> ScanFn | None:
    try:
        from numba import njit, types
        from numba.extending import intrinsic
    except ImportError:  # pragma: no cover - numba is a declared dependency
        return None

    def _popcount_typer(typingctx: Any, x: Any) -> Any:
        if not isinstance(x, types.Integer):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            v = builder.ctpop(args[0])
            i64 = context.get_value_type(types.int64)
            return builder.zext(v, i64) if v.type.width < 64 else v

        return types.int64(x), codegen

    # The kernel's global ``_popcount`` is resolved by numba at compile time.
    globals()["_popcount"] = intrinsic(_popcount_typer)
    jit = njit(nogil=True, cache=True, boundscheck=False)
    return cast(ScanFn, jit(scan_python))


_numba_scan: ScanFn | None = None
_numba_lock = threading.Lock()
_numba_tried = False


def numba_scan() -> ScanFn | None:
    global _numba_scan, _numba_tried
    with _numba_lock:
        if not _numba_tried:
            _numba_tried = True
            if os.environ.get("NCII_HASHMATCH_NO_NUMBA") != "1":
                _numba_scan = _load_numba()
        return _numba_scan


def numba_available() -> bool:
    """Whether the compiled scan kernel can be used."""
    return numba_scan() is not None
