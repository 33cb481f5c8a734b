"""Case data keys in a NATS key-value bucket (``ncii_case_keys``), shared by every service."""

from __future__ import annotations

import contextlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
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


class CaseKeyMissingError(RuntimeError):
    """A case has no key, and this process may not create one (only the service that owns
    cases does, when it opens the case)."""


class NatsCaseKeys:
    """Creates, unwraps and destroys per-case keys.

    Only a ``writer`` (the service that owns cases, and the operator) creates and erases keys;
    every other service reads them (its NATS user may not write the bucket, decision 22).

    Unwrapped keys are cached only while ``start``ed: a core subscription to the bucket's
    subjects drops a key from every process's cache as soon as anyone writes its record (an
    erasure's tombstone). It needs no JetStream consumer (no consumer rights for services);
    what it could miss while disconnected is covered by emptying the cache after a reconnect.
    """

    def __init__(self, nc: NATS, master: MasterKey, *, writer: bool = True) -> None:
        self._nc = nc
        self._master = master
        self._writer = writer
        self._kv: KeyValue | None = None
        self._cache: dict[str, bytes] = {}
        self._doorbell: Subscription | None = None
        self._reconnects = 0

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._nc.jetstream().key_value(KEYS_BUCKET)
        return self._kv

    async def start(self) -> None:
        await self._bucket()
        prefix = f"$KV.{KEYS_BUCKET}."

        async def changed(msg: Msg) -> None:
            # A key is created once and never changes; what must reach every cache at once is
            # its destruction. Any write of the record drops it (a re-read costs one get).
            self._cache.pop(msg.subject.removeprefix(prefix), None)

        self._reconnects = self._nc.stats["reconnects"]
        self._doorbell = await self._nc.subscribe(f"{prefix}>", cb=changed)
        await self._nc.flush()

    async def stop(self) -> None:
        if self._doorbell is not None:
            with contextlib.suppress(Exception):
                await self._doorbell.unsubscribe()
            self._doorbell = None
        self._cache.clear()

    def _cached(self, case_id: str) -> bytes | None:
        reconnects = self._nc.stats["reconnects"]
        if reconnects != self._reconnects:
            # an erasure may have gone by while the subscription was cut off
            self._cache.clear()
            self._reconnects = reconnects
        return self._cache.get(case_id)

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
        cached = self._cached(case_id)
        if cached is not None:
            return cached
        if not self._writer:
            return await self._existing_key(case_id)
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

    async def _existing_key(self, case_id: str) -> bytes:
        record = await self._record(case_id)
        if record is None:
            raise CaseKeyMissingError(f"case {case_id} has no key; its owner creates it")
        if is_erased_marker(record[0]):
            raise CaseErasedError(case_id)
        key = self._master.unwrap(case_id, record[0])
        self._remember(case_id, key)
        return key

    async def key_for_read(self, case_id: str) -> bytes | None:
        cached = self._cached(case_id)
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
        if not self._writer:
            raise PermissionError("only the service that owns cases erases their keys")
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
        if self._doorbell is not None:
            self._cache[case_id] = key
