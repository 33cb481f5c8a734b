"""Identifiers: UUIDv7 for everything, and the short case reference a victim can read aloud."""

from __future__ import annotations

import os
import secrets
import time
import uuid

# Crockford base32: no I, L, O, U, so a reference read over the phone is unambiguous.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})


class _RandomPool:
    """Bytes from the OS's CSPRNG, fetched 4 KiB at a time rather than a system call per id or
    nonce (decision 9 measured why). A forked child starts with an empty pool, so two processes
    never hand out the same bytes."""

    _SIZE = 4096

    def __init__(self) -> None:
        self._buf = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        if n > self._SIZE:
            return os.urandom(n)
        at = self._at
        if at + n > len(self._buf):
            self._buf, at = os.urandom(self._SIZE), 0
        self._at = at + n
        return self._buf[at : at + n]

    def clear(self) -> None:
        self._buf, self._at = b"", 0


_POOL = _RandomPool()
os.register_at_fork(after_in_child=_POOL.clear)
random_bytes = _POOL.take
"""``n`` random bytes (for ids and AES-GCM nonces; keys come from ``os.urandom`` directly)."""


def _uuid7_int() -> int:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(random_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return value


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit milliseconds, then randomness."""
    return uuid.UUID(int=_uuid7_int())


def uuid7_str() -> str:
    """``str(uuid7())``, without building the ``UUID`` (an event id per append)."""
    h = f"{_uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def derived_uuid(namespace: uuid.UUID, *parts: str) -> uuid.UUID:
    """A deterministic id, so a retried command or reaction produces the same event ids."""
    return uuid.uuid5(namespace, "\x1f".join(parts))


def new_case_reference() -> str:
    """12 Crockford symbols (60 bits) in three groups, e.g. ``K7Q4-9XMP-3D2A``."""
    symbols = "".join(secrets.choice(CROCKFORD) for _ in range(12))
    return "-".join(symbols[i : i + 4] for i in range(0, 12, 4))


def normalise_case_reference(text: str) -> str:
    """Accept what a person types: lower case, spaces, O for 0, I/L for 1."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum()).translate(_CONFUSABLE)
    if len(cleaned) != 12 or any(ch not in CROCKFORD for ch in cleaned):
        raise ValueError("a case reference has 12 letters and digits, e.g. K7Q4-9XMP-3D2A")
    return "-".join(cleaned[i : i + 4] for i in range(0, 12, 4))
