"""Who may call: principals with API keys, each bound to one organisation and one role.

Keys are issued as events in the reference stream (so issuing and revoking are auditable), and
every service projects them into its own database. Only the key's SHA-256 is ever stored; the
key itself is printed once, to whoever ran ``ncii keys create``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from fastapi import Request
from ncii_contracts.principals import PrincipalCreated, PrincipalKeyRevoked
from sqlalchemy import Boolean, Column, Connection, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_events.db import upsert
from ncii_events.envelope import Actor
from ncii_events.http import Problem
from ncii_events.ids import uuid7
from ncii_events.projection import Projection
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, RecordedEvent, Version
from ncii_events.stream import REFERENCE, REFERENCE_CASE, StreamSpec

ROLES: tuple[str, ...] = ("partner", "caseworker", "platform", "counsellor", "auditor", "admin")
KEY_PREFIX = "ncii_live_"


@dataclass(frozen=True)
class Principal:
    principal_id: str
    organisation: str
    role: str

    @property
    def actor(self) -> Actor:
        return Actor(organisation=self.organisation, principal=self.principal_id, role=self.role)


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


MAX_ORGANISATION = 100
MAX_LABEL = 200
"""Column sizes of ``principals``: ``create_principal`` refuses longer values, so every service's
projection can store what the log holds (a 300-character label was a dead letter on PostgreSQL,
and the key was refused: security review F17)."""

PRINCIPALS_METADATA = MetaData()
PRINCIPALS = Table(
    "principals",
    PRINCIPALS_METADATA,
    Column("principal_id", String(64), primary_key=True),
    Column("organisation", String(MAX_ORGANISATION), nullable=False, index=True),
    Column("role", String(20), nullable=False),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("key_hint", String(40), nullable=False),
    Column("label", String(MAX_LABEL), nullable=False),
    Column("revoked", Boolean, nullable=False),
    Column("created_at", String(40), nullable=False),
)


class PrincipalsProjection(Projection):
    name: ClassVar[str] = "principals"
    metadata: ClassVar[MetaData] = PRINCIPALS_METADATA
    stream: ClassVar[StreamSpec] = REFERENCE
    subjects: ClassVar[tuple[str, ...]] = (f"{REFERENCE.prefix}.principal.>",)

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if isinstance(ev, PrincipalCreated):
            upsert(
                conn,
                PRINCIPALS,
                {
                    "principal_id": ev.principal_id,
                    "organisation": ev.organisation,
                    "role": ev.role,
                    "key_sha256": ev.key_sha256,
                    "key_hint": ev.key_hint,
                    # a note for people: an event written before the bound (or by other
                    # code) is cut to the column, so the key still works on every database
                    "label": ev.label[:MAX_LABEL],
                    "revoked": False,
                    "created_at": event.envelope.occurred_at,
                },
                ["principal_id"],
            )
        elif isinstance(ev, PrincipalKeyRevoked):
            conn.execute(
                update(PRINCIPALS)
                .where(PRINCIPALS.c.principal_id == ev.principal_id)
                .values(revoked=True)
            )


# -- issuing keys (the CLI) --------------------------------------------------------------------

OPERATOR = Actor(organisation="ncii-operator", principal="cli", role="admin")


async def create_principal(
    ref_store: EventStore, *, organisation: str, role: str, label: str = ""
) -> tuple[str, str]:
    """Returns (principal id, key). The key is shown once and never stored."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not organisation.strip() or len(organisation) > MAX_ORGANISATION:
        raise ValueError(f"organisation must be 1 to {MAX_ORGANISATION} characters")
    if len(label) > MAX_LABEL:
        raise ValueError(f"label must be at most {MAX_LABEL} characters")
    principal_id = str(uuid7())
    key = new_api_key()
    event = PrincipalCreated(
        principal_id=principal_id,
        organisation=organisation,
        role=role,
        key_sha256=key_sha256(key),
        key_hint=key[: len(KEY_PREFIX) + 4],
        label=label,
    )
    cause = Cause(actor=OPERATOR, correlation_id=principal_id, causation_id=principal_id)
    ref = AggregateRef(REFERENCE_CASE, "principal", principal_id)
    await ref_store.append(ref, [event], expected=NEW, cause=cause)
    return principal_id, key


async def revoke_principal(ref_store: EventStore, principal_id: str, reason: str = "") -> bool:
    ref = AggregateRef(REFERENCE_CASE, "principal", principal_id)
    history = await ref_store.load(ref)
    if not history:
        return False
    if any(isinstance(e.event, PrincipalKeyRevoked) for e in history):
        return True
    cause = Cause(actor=OPERATOR, correlation_id=principal_id, causation_id=principal_id)
    await ref_store.append(
        ref,
        [PrincipalKeyRevoked(principal_id=principal_id, reason=reason)],
        expected=Version.of(history),
        cause=cause,
    )
    return True


# -- checking keys (every service) ------------------------------------------------------------


class FailedAuthThrottle:
    """After ``limit`` failed authentications from one address within ``window`` seconds,
    further attempts from it get 429 until the window has passed."""

    def __init__(
        self,
        limit: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock  # injected so that tests move time instead of sleeping
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        failures = self._failures.setdefault(client, deque())
        while failures and now - failures[0] > self.window:
            failures.popleft()
        return failures

    def check(self, client: str) -> None:
        failures = self._recent(client)
        if len(failures) >= self.limit:
            retry = max(1, int(self.window - (self.clock() - failures[0])) + 1)
            raise Problem(
                429,
                "Too many failed authentications",
                f"too many requests with a missing or invalid API key; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )

    def failed(self, client: str) -> None:
        self._recent(client).append(self.clock())
        if len(self._failures) > 100_000:  # bound memory under a spray of addresses
            self._failures.clear()


class Authenticator:
    """Checks bearer keys against the principals projection.

    Valid keys are remembered for ``cache_seconds`` (a revocation takes effect within that
    time); invalid ones are never cached, so a new key works as soon as it is projected.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        throttle: FailedAuthThrottle | None = None,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.throttle = throttle or FailedAuthThrottle(clock=clock)
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._valid: dict[str, tuple[Principal, float]] = {}

    async def _lookup(self, digest: str) -> Principal | None:
        cached = self._valid.get(digest)
        now = self.clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(PRINCIPALS).where(PRINCIPALS.c.key_sha256 == digest)))
                .mappings()
                .first()
            )
        if row is None or row["revoked"] or not hmac.compare_digest(row["key_sha256"], digest):
            self._valid.pop(digest, None)
            return None
        principal = Principal(row["principal_id"], row["organisation"], row["role"])
        if len(self._valid) > 10_000:
            self._valid.clear()
        self._valid[digest] = (principal, now + self.cache_seconds)
        return principal

    async def __call__(self, request: Request) -> Principal:
        client = request.client.host if request.client else "unknown"
        self.throttle.check(client)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX):
            self.throttle.failed(client)
            raise Problem(
                401,
                "Unauthorized",
                "send your API key as 'Authorization: Bearer ncii_live_...'",
                headers={"WWW-Authenticate": 'Bearer realm="ncii"'},
            )
        principal = await self._lookup(key_sha256(token.strip()))
        if principal is None:
            self.throttle.failed(client)
            raise Problem(
                401,
                "Unauthorized",
                "this API key is not valid or has been revoked",
                headers={"WWW-Authenticate": 'Bearer realm="ncii", error="invalid_token"'},
            )
        return principal


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Problem(
            403,
            "Forbidden",
            f"the role '{principal.role}' may not do this; it needs one of: {', '.join(roles)}",
        )
