"""PdqIndex / ExactIndex behaviour: exact inclusive thresholds, removal, batching, parsing."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
from ncii_hashmatch import index as index_module
from ncii_hashmatch.index import (
    ExactIndex,
    PdqIndex,
    bytes_to_hex,
    hamming,
    hashes_from_hex,
    hashes_to_hex,
    hex_to_bytes,
)
from numpy.typing import NDArray

Backend = Literal["numba", "numpy"]
BACKENDS: list[Backend] = ["numba", "numpy"]

U8 = NDArray[np.uint8]


def random_hashes(n: int, seed: int = 0) -> U8:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)


def flip(h: U8, k: int, seed: int = 1) -> U8:
    """A copy of ``h`` with exactly ``k`` distinct bits flipped."""
    bits = np.unpackbits(h)
    pos = np.random.default_rng(seed).choice(256, size=k, replace=False)
    bits[pos] ^= 1
    out: U8 = np.packbits(bits)
    return out


def brute_force(queries: U8, stored: U8, ids: list[int], thr: int) -> list[tuple[int, int, int]]:
    dist = np.bitwise_count(queries[:, None, :] ^ stored[None, :, :]).sum(axis=2)
    best: dict[tuple[int, int], int] = {}
    for qi, row in zip(*np.nonzero(dist <= thr), strict=True):
        key = (int(qi), ids[int(row)])
        best[key] = min(best.get(key, 999), int(dist[qi, row]))
    return sorted(((q, i, d) for (q, i), d in best.items()), key=lambda m: (m[0], m[2], m[1]))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.param
    return value


def test_distance_31_matches_and_32_does_not_at_threshold_31(backend: Backend) -> None:
    base = random_hashes(1)[0]
    idx = PdqIndex(backend=backend)
    idx.add([31, 32, 30], np.stack([flip(base, 31), flip(base, 32), flip(base, 30)]))
    assert idx.search(base, 31) == [(0, 30, 30), (0, 31, 31)]
    assert idx.search(base, 32) == [(0, 30, 30), (0, 31, 31), (0, 32, 32)]


@pytest.mark.parametrize(("lo", "hi"), [(0, 96), (0, 64), (64, 128), (96, 128), (128, 256)])
def test_boundary_holds_wherever_the_differing_bits_are(backend: Backend, lo: int, hi: int) -> None:
    # The scan checks a 96-bit prefix first: distances packed into the prefix, into the
    # middle word or into the tail must all obey "31 matches, 32 does not".
    base = random_hashes(1, seed=2)[0]
    rng = np.random.default_rng(3)
    stored = []
    for k in (31, 32):
        bits = np.unpackbits(base)
        bits[rng.choice(np.arange(lo, hi), size=k, replace=False)] ^= 1
        stored.append(np.packbits(bits))
    idx = PdqIndex(backend=backend)
    idx.add([31, 32], np.stack(stored))
    assert idx.search(base, 31) == [(0, 31, 31)]
    assert idx.search(base, 30) == []


def test_threshold_is_chosen_per_call(backend: Backend) -> None:
    base = random_hashes(1)[0]
    idx = PdqIndex(backend=backend)
    idx.add(range(11), np.stack([flip(base, k, seed=k) for k in range(11)]))
    for thr in (0, 4, 10):
        assert [i for _, i, _ in idx.search(base, thr)] == list(range(thr + 1))


def test_thresholds_can_differ_per_query(backend: Backend) -> None:
    base = random_hashes(1)[0]
    idx = PdqIndex(backend=backend)
    idx.add([5, 20], np.stack([flip(base, 5), flip(base, 20)]))
    got = idx.search(np.stack([base, base]), [10, 25])
    assert got == [(0, 5, 5), (1, 5, 5), (1, 20, 20)]
    with pytest.raises(ValueError):
        idx.search(np.stack([base, base]), [10])
    with pytest.raises(ValueError):
        idx.search(base, -1)


def test_batch_search_reports_the_index_of_each_query(backend: Backend) -> None:
    stored = random_hashes(50, seed=3)
    idx = PdqIndex(backend=backend)
    idx.add(range(100, 150), stored)
    noise = random_hashes(8, seed=4)
    queries = np.stack([noise[0], flip(stored[7], 3), noise[1], noise[2], flip(stored[41], 9)])
    assert idx.search(queries, 31) == [(1, 107, 3), (4, 141, 9)]


def test_removed_id_is_not_returned_by_the_next_search(backend: Backend) -> None:
    stored = random_hashes(200, seed=5)
    idx = PdqIndex(backend=backend)
    idx.add(range(200), stored)
    assert idx.search(stored[17], 0) == [(0, 17, 0)]
    assert idx.remove([17]) == 1
    assert idx.search(stored[17], 31) == []
    assert len(idx) == 199
    assert idx.remove([17]) == 0  # already gone


def test_removal_survives_compaction(backend: Backend) -> None:
    stored = random_hashes(3000, seed=6)
    idx = PdqIndex(backend=backend, segment_rows=1024)
    idx.add(range(3000), stored)
    gone = list(range(0, 3000, 2))
    idx.remove(gone)  # half dead: past the auto-compaction fraction
    assert idx.rows == 1500 == len(idx)  # compacted
    idx.compact()
    assert idx.search(stored[:10], 0) == [(q, q, 0) for q in range(1, 10, 2)]
    ids, hashes = idx.to_arrays()
    assert ids.tolist() == list(range(1, 3000, 2))
    assert np.array_equal(hashes, stored[1::2])


def test_compaction_can_be_forced_and_keeps_results(backend: Backend) -> None:
    stored = random_hashes(400, seed=7)
    idx = PdqIndex(backend=backend, compact_dead_fraction=1.0)
    idx.add(range(400), stored)
    idx.remove([3, 5, 399])
    assert idx.rows == 400 and len(idx) == 397
    before = idx.search(stored[:8], 0)
    idx.compact()
    assert idx.rows == 397
    assert idx.search(stored[:8], 0) == before == [(q, q, 0) for q in (0, 1, 2, 4, 6, 7)]


def test_id_added_again_after_removal_matches_its_new_hash(backend: Backend) -> None:
    old, new = random_hashes(2, seed=8)
    idx = PdqIndex(backend=backend)
    idx.add([1, 2], np.stack([old, random_hashes(1, seed=9)[0]]))
    idx.remove([1])
    idx.add([1], new[None, :])
    assert idx.search(old, 31) == []
    assert idx.search(new, 31) == [(0, 1, 0)]
    assert len(idx) == 2


def test_removal_works_with_unordered_ids(backend: Backend) -> None:
    stored = random_hashes(64, seed=10)
    ids = np.random.default_rng(11).permutation(np.arange(1000, 1064))
    idx = PdqIndex(backend=backend)
    idx.add(ids, stored)
    victim = int(ids[30])
    idx.remove([victim, 99_999])
    assert idx.search(stored[30], 0) == []
    assert idx.search(stored[31], 0) == [(0, int(ids[31]), 0)]


def test_id_with_several_hashes_is_reported_once_at_its_closest(backend: Backend) -> None:
    base = random_hashes(1)[0]
    idx = PdqIndex(backend=backend)
    idx.add([7, 7, 8], np.stack([flip(base, 12), flip(base, 4), flip(base, 20)]))
    assert idx.search(base, 31) == [(0, 7, 4), (0, 8, 20)]
    idx.remove([7])
    assert idx.search(base, 31) == [(0, 8, 20)]


def test_more_matches_than_the_output_buffer_are_all_returned(backend: Backend) -> None:
    base = random_hashes(1)[0]
    n = 3 * 1024 + 5
    idx = PdqIndex(backend=backend)
    idx.add(range(n), np.repeat(base[None, :], n, axis=0))
    got = idx.search(base, 0)
    assert [i for _, i, _ in got] == list(range(n))


@pytest.mark.parametrize("threshold", [0, 8, 31, 40])
def test_search_equals_brute_force_with_planted_duplicates_at_every_distance(
    backend: Backend, threshold: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "_PARALLEL_MIN_WORK", 0)  # exercise the thread split
    rng = np.random.default_rng(12)
    stored = random_hashes(3000, seed=13)
    queries = random_hashes(41 + 20, seed=14)
    for d in range(41):  # stored near-duplicates of query d at distance exactly d
        stored[d * 7] = flip(queries[d], d, seed=100 + d)
    cluster = queries[41]  # one query with a stored neighbour at every distance 0..40
    for d in range(41):
        stored[1000 + d] = flip(cluster, d, seed=200 + d)
    ids = (np.arange(3000) * 3 + 5).tolist()
    idx = PdqIndex(backend=backend, segment_rows=512, threads=2)  # several segments
    idx.add(ids[:1234], stored[:1234])
    idx.add(ids[1234:], stored[1234:])  # second batch appends; no rebuild
    order = rng.permutation(len(queries))
    got = idx.search(queries[order], threshold)
    assert got == brute_force(queries[order], stored, ids, threshold)
    planted = {(int(np.flatnonzero(order == d)[0]), ids[d * 7], d) for d in range(threshold + 1)}
    assert planted <= set(got)


def test_empty_index_returns_no_matches(backend: Backend) -> None:
    idx = PdqIndex(backend=backend)
    assert len(idx) == 0
    assert idx.search(random_hashes(3), 256) == []
    idx.add([], np.empty((0, 32), dtype=np.uint8))
    assert idx.remove([1, 2]) == 0
    assert idx.search([], 31) == []
    ids, hashes = idx.to_arrays()
    assert ids.shape == (0,) and hashes.shape == (0, 32)


def test_export_and_reimport_restore_the_same_matches() -> None:
    stored = random_hashes(500, seed=15)
    idx = PdqIndex(segment_rows=128)
    idx.add(range(500), stored)
    idx.remove([10, 11])
    ids, hashes = idx.to_arrays()
    restored = PdqIndex.from_arrays(ids, hashes)
    assert len(restored) == 498
    assert restored.search(stored[:20], 31) == idx.search(stored[:20], 31)


def test_add_accepts_hex_strings_and_raw_bytes() -> None:
    stored = random_hashes(3, seed=16)
    hexes = hashes_to_hex(stored)
    idx = PdqIndex()
    idx.add([1], hexes[:1])
    idx.add([2], [stored[1].tobytes()])
    idx.add([3], hexes[2].upper())
    assert idx.search(hexes, 0) == [(0, 1, 0), (1, 2, 0), (2, 3, 0)]
    with pytest.raises(ValueError):
        idx.add([1, 2], hexes[:1])  # ids and hashes differ in number


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0" * 63,
        "0" * 65,
        "g" + "0" * 63,
        "0x" + "0" * 62,
        " " + "0" * 63,
        "00 " + "0" * 61,
        "0" * 62 + "\n0",
    ],
)
def test_hex_parsing_rejects_malformed_hashes(bad: str) -> None:
    with pytest.raises(ValueError):
        hex_to_bytes(bad)
    with pytest.raises(ValueError):
        hashes_from_hex(["0" * 64, bad])
    with pytest.raises(ValueError):
        PdqIndex().search([bad], 31)


def test_hash_arrays_of_the_wrong_shape_or_type_are_rejected() -> None:
    idx = PdqIndex()
    with pytest.raises(ValueError):
        idx.add([1], np.zeros((1, 31), dtype=np.uint8))
    with pytest.raises(ValueError):
        idx.add([1], np.zeros((1, 32), dtype=np.int64))
    with pytest.raises(ValueError):
        idx.add([1], [b"\x00" * 31])
    with pytest.raises(ValueError):
        bytes_to_hex(b"\x00" * 16)


def test_hamming_and_hex_round_trip() -> None:
    a = random_hashes(1, seed=17)[0]
    b = flip(a, 31)
    assert hamming(bytes_to_hex(a), bytes_to_hex(b)) == 31
    assert hamming(bytes_to_hex(a), bytes_to_hex(a).upper()) == 0
    assert hex_to_bytes(bytes_to_hex(a)) == a.tobytes()
    assert np.array_equal(hashes_from_hex(hashes_to_hex(np.stack([a, b]))), np.stack([a, b]))


def test_exact_md5_index_matches_removes_and_validates() -> None:
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    other = "0cc175b9c0f1b6a831c399e269772661"
    idx = ExactIndex()
    idx.add([1, 2, 3], [md5, md5.upper(), bytes.fromhex(other)])
    assert len(idx) == 3
    assert idx.lookup(md5) == [1, 2]
    assert idx.search([other, md5]) == [(0, 3, 0), (1, 1, 0), (1, 2, 0)]
    assert idx.remove([1, 42]) == 1
    assert idx.lookup(bytes.fromhex(md5)) == [2]
    idx.remove([2])
    assert idx.lookup(md5) == []
    for bad in ("", md5[:-1], md5 + "0", "z" * 32):
        with pytest.raises(ValueError):
            idx.lookup(bad)
    with pytest.raises(ValueError):
        idx.add([9], [b"short"])
