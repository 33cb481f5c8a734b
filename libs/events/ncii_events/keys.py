"""Case data keys in a NATS key-value bucket (``ncii_case_keys``), shared by every service."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from ncii_events.crypto import (
    NO_KEY,
    CaseErasedError,
    MasterKey,
    erased_marker,
    is_erased_marker,
)
from ncii_events.stream import KEYS_BUCKET


class NatsCaseKeys:
    """Creates, unwraps and destroys per-case keys.

    Unwrapped keys are cached only while a watcher runs (``start``), so that an erasure made by
    any process drops the key from every cache at once.
    """

    def __init__(self, nc: NATS, master: MasterKey) -> None:
        self._nc = nc
        self._master = master
        self._kv: KeyValue | None = None
        self._cache: dict[str, bytes] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._watcher: Any = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._nc.jetstream().key_value(KEYS_BUCKET)
        return self._kv

    async def start(self) -> None:
        kv = await self._bucket()
        watcher = await kv.watchall(include_history=False, ignore_deletes=False)
        ready = asyncio.Event()

        async def follow() -> None:
            async for entry in watcher:
                if entry is None:
                    ready.set()
                    continue
                # A key is created once and never changes; what must reach every cache at once
                # is its destruction (a tombstone, a delete or a purge).
                value = entry.value.decode() if entry.value else ""
                if entry.operation is not None or not value or is_erased_marker(value):
                    self._cache.pop(entry.key, None)

        self._watcher = watcher
        self._watch_task = asyncio.create_task(follow(), name="case-keys-watch")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), 5)

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        if self._watcher is not None:
            # Its ordered consumer would otherwise go on checking heartbeats, and try to
            # recreate itself on a closed connection.
            with contextlib.suppress(Exception):
                await self._watcher.stop()
            self._watcher = None
        self._cache.clear()

    async def _record(self, case_id: str) -> tuple[str, int] | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(case_id)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return entry.value.decode(), entry.revision

    async def key_for_write(self, case_id: str) -> bytes:
        cached = self._cache.get(case_id)
        if cached is not None:
            return cached
        # Create first: for a new case that is one round trip; an existing (or erased) case
        # answers "wrong last sequence" and is read instead.
        kv = await self._bucket()
        key = AESGCM.generate_key(256)
        try:
            await kv.create(case_id, self._master.wrap(case_id, key).encode())
        except KeyWrongLastSequenceError:
            record = await self._record(case_id)
            if record is None:  # a concurrent erasure removed it in between: never recreate
                raise CaseErasedError(case_id) from None
            if is_erased_marker(record[0]):
                raise CaseErasedError(case_id) from None
            key = self._master.unwrap(case_id, record[0])
        self._remember(case_id, key)
        return key

    async def key_for_read(self, case_id: str) -> bytes | None:
        cached = self._cache.get(case_id)
        if cached is not None:
            return cached
        record = await self._record(case_id)
        if record is None:
            return NO_KEY  # not cached: the case may get a key later
        if is_erased_marker(record[0]):
            return None
        key = self._master.unwrap(case_id, record[0])
        self._remember(case_id, key)
        return key

    async def is_erased(self, case_id: str) -> bool:
        record = await self._record(case_id)
        return record is not None and is_erased_marker(record[0])

    async def erase(self, case_id: str) -> bool:
        """Destroy the case's key. Returns False when it was already erased (idempotent)."""
        kv = await self._bucket()
        self._cache.pop(case_id, None)
        while True:
            record = await self._record(case_id)
            if record is not None and is_erased_marker(record[0]):
                return False
            try:
                if record is None:
                    await kv.create(case_id, erased_marker().encode())
                    return True
                await kv.update(case_id, erased_marker().encode(), last=record[1])
            except KeyWrongLastSequenceError:
                continue
            # The tombstone is in place; now overwrite the old record on disk (the server's
            # message delete erases the bytes unless told not to).
            await self._nc.jetstream().delete_msg(f"KV_{KEYS_BUCKET}", record[1])
            return True

    def _remember(self, case_id: str, key: bytes) -> None:
        if self._watch_task is not None:
            self._cache[case_id] = key
