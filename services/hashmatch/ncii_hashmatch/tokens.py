"""Opaque identifiers shown to platforms: they carry nothing a platform could read.

* A **match id** is the banked entry's key and a tag of the platform's organisation, sealed with
  AES-SIV under a key derived from the master key: deterministic (the same platform gets the
  same id for the same entry in every look-up, on every replica), unforgeable, bound to the
  platform it was issued to, and opened by the server without any storage. Two platforms get
  different ids for the same entry, so they cannot correlate their ids.
* A **public bank id** is an HMAC of the bank's name: platforms can keep per-bank policies
  for imported lists. Every partner organisation's case bank has the same public id
  (decision 26): a stable id per organisation told platforms which hashes came from one NGO.
  In each programme (decision 39): the adults' case banks share one id, the child-protection
  case banks another, which only platforms subscribed to that programme ever see.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from ncii_events.crypto import MasterKey
from ncii_events.ids import derived_uuid

from ncii_hashmatch.domain import CHILD_PROTECTION_SUFFIX, case_bank_programme

MATCH_PREFIX = "m_"
BANK_PREFIX = "b_"
_MATCH_NS = uuid.UUID("0d3c5f6e-8a41-4b7e-9f0a-5c2d1e7b9a34")
CASE_BANKS = "ORG_*"
"""What the public id of every case bank is derived from."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def platform_tag(organisation: str) -> bytes:
    return hashlib.sha256(b"ncii-platform|" + organisation.encode()).digest()[:8]


def match_uuid(platform_organisation: str, entry_key: str) -> str:
    """The ``match`` aggregate of one platform and one banked entry (its sightings, verdicts)."""
    return str(derived_uuid(_MATCH_NS, platform_organisation, entry_key))


class Tokens:
    def __init__(self, match_key: bytes, bank_key: bytes) -> None:
        if len(match_key) != 64:
            raise ValueError("AES-256-SIV needs a 64-byte key")
        self._siv = AESSIV(match_key)
        self._bank_key = bank_key

    @classmethod
    def from_master(cls, master: MasterKey) -> Tokens:
        match_key = master.derive("ncii/hashmatch/match-id/v1/a") + master.derive(
            "ncii/hashmatch/match-id/v1/b"
        )
        return cls(match_key, master.derive("ncii/hashmatch/bank-id/v1"))

    def bank_id(self, name: str) -> str:
        programme = case_bank_programme(name)
        if programme is None:
            public = name
        elif programme == "adults":
            public = CASE_BANKS
        else:
            public = CASE_BANKS + CHILD_PROTECTION_SUFFIX
        digest = hmac.new(self._bank_key, public.encode(), hashlib.sha256).digest()
        return BANK_PREFIX + base64.b32encode(digest[:10]).decode().lower()

    def match_id(self, platform_organisation: str, entry_key: str) -> str:
        plain = platform_tag(platform_organisation) + uuid.UUID(entry_key).bytes
        return MATCH_PREFIX + _b64(self._siv.encrypt(plain, [b"ncii-match-id-v1"]))

    def open(self, token: str) -> tuple[bytes, str] | None:
        """(platform tag, entry key), or None for anything this server did not issue."""
        if not token.startswith(MATCH_PREFIX) or len(token) > 80:
            return None
        try:
            plain = self._siv.decrypt(_unb64(token[len(MATCH_PREFIX) :]), [b"ncii-match-id-v1"])
        except (InvalidTag, ValueError):
            return None
        if len(plain) != 24:
            return None
        return plain[:8], str(uuid.UUID(bytes=plain[8:]))

    def entry_for(self, token: str, platform_organisation: str) -> str | None:
        """The entry key behind a match id issued to this platform, else None."""
        opened = self.open(token)
        if opened is None or not hmac.compare_digest(
            opened[0], platform_tag(platform_organisation)
        ):
            return None
        return opened[1]
