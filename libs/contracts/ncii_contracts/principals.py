"""API keys issued and revoked: reference events every service projects to authenticate calls.
Only a key's SHA-256 and its first characters are in the log, never the key."""

from __future__ import annotations

from typing import Literal

from ncii_contracts.base import DomainEvent
from ncii_contracts.streams import REFERENCE

RoleName = Literal["partner", "caseworker", "platform", "counsellor", "auditor", "admin"]


class PrincipalCreated(DomainEvent, aggregate="principal", streams=(REFERENCE,)):
    principal_id: str
    organisation: str
    role: RoleName
    key_sha256: str
    key_hint: str
    """The key's first characters, so a leaked key can be recognised in a list."""
    label: str = ""


class PrincipalKeyRevoked(DomainEvent, aggregate="principal", streams=(REFERENCE,)):
    principal_id: str
    reason: str = ""


PRINCIPAL_EVENTS: tuple[type[DomainEvent], ...] = (PrincipalCreated, PrincipalKeyRevoked)
