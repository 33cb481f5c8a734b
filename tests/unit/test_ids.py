"""Pooled ids: UUIDv7 layout and order, the random byte pool."""

from __future__ import annotations

import os
import re
import time
import uuid
from types import SimpleNamespace

import pytest
from ncii_events import ids as ids_module
from ncii_events.ids import random_bytes, uuid7, uuid7_str

UUID_V7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_uuid7_str_has_the_rfc_9562_v7_layout_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ids = [uuid7_str() for _ in range(500)]
    after = time.time_ns() // 1_000_000
    for text in ids:
        assert UUID_V7.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
        assert before <= int(text[:8] + text[9:13], 16) <= after
    assert len(set(ids)) == 500
    assert len({text[15:18] for text in ids}) > 300  # rand_a is random, not a counter or zero
    assert UUID_V7.fullmatch(str(uuid7()))


def test_uuid7_str_and_uuid7_are_ordered_a_millisecond_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = iter(range(1_700_000_000_000_000_000, 1_800_000_000_000_000_000, 1_500_000))
    clock = SimpleNamespace(time_ns=lambda: next(now))  # 1.5 ms later at every call
    monkeypatch.setattr(ids_module, "time", clock)
    ids = []
    for i in range(8):
        ids.append(uuid7_str() if i % 2 else str(uuid7()))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_random_bytes_have_the_asked_length_across_pool_refills_and_do_not_repeat() -> None:
    sizes = [10, 12, 1, 0, 4000, 97, 12, 4096, 3, 2500, 2500]
    assert [len(random_bytes(n)) for n in sizes] == sizes
    chunks = [random_bytes(16) for _ in range(1000)]  # 16 000 bytes: several refills
    assert len(set(chunks)) == 1000


def test_random_bytes_larger_than_the_pool_are_still_the_asked_length() -> None:
    assert len(random_bytes(5000)) == 5000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_reuse_the_parents_pooled_random_bytes() -> None:
    random_bytes(4096)
    random_bytes(1)  # the pool now holds 4095 bytes that both processes could hand out
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write_end, random_bytes(32))
        finally:
            os._exit(0)
    os.close(write_end)
    child = b""
    while chunk := os.read(read_end, 64):
        child += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != random_bytes(32)
