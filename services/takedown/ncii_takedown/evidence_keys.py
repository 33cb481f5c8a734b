"""A key per evidence record, so that one record's personal fields can be erased when its
retention ends without erasing the case (decision 0032).

The keys live in the case-key bucket beside the case's own key, as
``<case_id>.evidence.<event id>``, wrapped by the master key; takedown's NATS user may write
those subjects only (``ServiceSpec.key_spaces``), never a case's own key. A record's personal
values are sealed with its key (``seal``) before the store encrypts them again with the case's
key: erasing the case still shreds them, and destroying the record's key (``destroy``: a
purge, which rolls the subject up to an empty marker) shreds this record alone. A record whose
key is gone reads as erased.

Unwrapped keys are cached while ``start``ed; a subscription to those subjects drops a key from
every replica's cache as soon as it is purged, and a reconnect empties the cache (a purge may
have gone by unseen), as ``ncii_events.keys.NatsCaseKeys`` does for case keys.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from ncii_events.crypto import MasterKey, decrypt_field, encrypt_field
from ncii_events.stream import KEYS_BUCKET

SPACE = "evidence"
SEALED_FIELDS = ("url", "preserved_by", "offender_account", "offender_ip")
"""EvidencePreserved's personal fields: each sealed with the record's own key."""


class EvidenceErasedError(Exception):
    """The record's key was destroyed (its retention ended): nothing can be sealed with it."""


def key_name(case_id: str, evidence_id: str) -> str:
    return f"{case_id}.{SPACE}.{evidence_id}"


def _aad_field(field: str) -> str:
    return f"evidence:{field}"


def seal(key: bytes, case_id: str, evidence_id: str, field: str, value: Any) -> str:
    """One personal value sealed with the record's key (bound to the case, record and field)."""
    return encrypt_field(key, case_id, evidence_id, _aad_field(field), value)


def unseal(key: bytes, case_id: str, evidence_id: str, field: str, token: Any) -> Any:
    return decrypt_field(key, case_id, evidence_id, _aad_field(field), token)


class EvidenceKeys:
    def __init__(self, nc: NATS, master: MasterKey) -> None:
        self._nc = nc
        self._master = master
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
            self._cache.pop(msg.subject.removeprefix(prefix), None)

        self._reconnects = self._nc.stats["reconnects"]
        self._doorbell = await self._nc.subscribe(f"{prefix}*.{SPACE}.*", cb=changed)
        await self._nc.flush()

    async def stop(self) -> None:
        if self._doorbell is not None:
            with contextlib.suppress(Exception):
                await self._doorbell.unsubscribe()
            self._doorbell = None
        self._cache.clear()

    def _cached(self, name: str) -> bytes | None:
        reconnects = self._nc.stats["reconnects"]
        if reconnects != self._reconnects:
            self._cache.clear()
            self._reconnects = reconnects
        return self._cache.get(name)

    def _remember(self, name: str, key: bytes) -> None:
        if self._doorbell is not None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[name] = key

    async def _read(self, name: str) -> bytes | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(name)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if entry.value is None or not entry.value:
            return None
        key = self._master.unwrap(name, entry.value.decode())
        self._remember(name, key)
        return key

    async def create(self, case_id: str, evidence_id: str) -> bytes:
        """The record's key: a new one, or the one a first attempt created (a retry)."""
        name = key_name(case_id, evidence_id)
        cached = self._cached(name)
        if cached is not None:
            return cached
        kv = await self._bucket()
        key = AESGCM.generate_key(256)
        try:
            # "only if the subject is empty": unlike ``kv.create``, never over a purge marker,
            # so a destroyed key is not created again
            await kv.update(name, self._master.wrap(name, key).encode(), last=0)
        except KeyWrongLastSequenceError:
            existing = await self._read(name)
            if existing is None:
                raise EvidenceErasedError(evidence_id) from None
            return existing
        self._remember(name, key)
        return key

    async def key(self, case_id: str, evidence_id: str) -> bytes | None:
        """The record's key, or None once destroyed."""
        name = key_name(case_id, evidence_id)
        cached = self._cached(name)
        if cached is not None:
            return cached
        return await self._read(name)

    async def destroy(self, case_id: str, evidence_id: str) -> None:
        """Purge the record's key (idempotent): the subject rolls up to a purge marker, the
        wrapped key is no longer in the bucket, and every replica drops its cached copy."""
        name = key_name(case_id, evidence_id)
        self._cache.pop(name, None)
        kv = await self._bucket()
        await kv.purge(name)
