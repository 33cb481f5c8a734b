"""Field-level encryption of personal data, with one data key per case (crypto-shredding).

Each case has a random 256-bit data key, stored wrapped (AES-GCM) by the master key in a NATS
key-value bucket beside the log. Erasing a case overwrites the stored key and leaves a tombstone:
the log stays immutable and replayable, its personal fields can no longer be decrypted, and the
hash chain still verifies because it covers the ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ncii_events.envelope import canonical_event_json, utc_now
from ncii_events.ids import random_bytes

CIPHER_PREFIX = "enc:v1:"
NO_KEY = b""
"""``key_for_read``'s answer for a case that never had a key (``None``: its key was destroyed).
Nothing of such a case is encrypted; values an older contract stored in clear stay readable."""


class CaseErasedError(Exception):
    """The case's key has been destroyed: no new personal data can be written for it."""


class MasterKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(key)
        self._key = key
        self.key_id = hashlib.sha256(b"ncii-master-key-id" + key).hexdigest()[:16]

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        return cls(base64.b64decode(text.strip()))

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        """The embedded default: a local key file, created once with owner-only permissions."""
        if not path.exists():
            # a new folder for it is the owner's alone (an existing one is the operator's choice)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(AESGCM.generate_key(256)).decode() + "\n")
        return cls.from_base64(path.read_text())

    def derive(self, purpose: str) -> bytes:
        """A 32-byte secret for one purpose (e.g. victims' PINs), derived with HKDF."""
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            self._key
        )

    def wrap(self, case_id: str, data_key: bytes) -> str:
        nonce = random_bytes(12)
        sealed = self._aead.encrypt(nonce, data_key, f"case-key|{case_id}".encode())
        return json.dumps(
            {"kid": self.key_id, "wrapped": base64.b64encode(nonce + sealed).decode()}
        )

    def unwrap(self, case_id: str, record: str) -> bytes:
        doc = json.loads(record)
        if doc.get("kid") != self.key_id:
            raise ValueError("case key was wrapped by another master key")
        blob = base64.b64decode(doc["wrapped"])
        return self._aead.decrypt(blob[:12], blob[12:], f"case-key|{case_id}".encode())


def erased_marker() -> str:
    return json.dumps({"erased_at": utc_now()})


def is_erased_marker(record: str) -> bool:
    return '"erased_at"' in record


class CaseKeys(Protocol):
    """Where case data keys live (``ncii_events.keys.NatsCaseKeys``)."""

    async def key_for_write(self, case_id: str) -> bytes: ...

    async def key_for_read(self, case_id: str) -> bytes | None:
        """The case's key; ``None`` once destroyed; ``NO_KEY`` if it never had one."""
        ...

    async def erase(self, case_id: str) -> bool: ...

    async def is_erased(self, case_id: str) -> bool: ...


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _aad(case_id: str, event_id: str, field: str) -> bytes:
    return f"{case_id}|{event_id}|{field}".encode()


@functools.lru_cache(maxsize=4096)
def _aead(key: bytes) -> AESGCM:
    """One cipher object per case key (building one costs more than a field's encryption)."""
    return AESGCM(key)


def encrypt_field(key: bytes, case_id: str, event_id: str, field: str, value: Any) -> str:
    nonce = random_bytes(12)
    sealed = _aead(key).encrypt(nonce, canonical_event_json(value), _aad(case_id, event_id, field))
    return CIPHER_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_field(key: bytes, case_id: str, event_id: str, field: str, token: Any) -> Any:
    if not isinstance(token, str) or not token.startswith(CIPHER_PREFIX):
        raise ValueError(f"field {field} is not encrypted")
    blob = binascii.a2b_base64(token[len(CIPHER_PREFIX) :].encode().translate(_FROM_URLSAFE))
    plain = _aead(key).decrypt(blob[:12], blob[12:], _aad(case_id, event_id, field))
    return orjson.loads(plain)
