"""Who may call: principals with API keys, each bound to one organisation and one role.

Keys are issued as events in the reference stream (so issuing and revoking are auditable), and
every service projects them into its own database. Only the key's SHA-256 is ever stored; the
key itself is printed once, to whoever ran ``ncii keys create``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import time
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


def address_key(host: str) -> str:
    """What the throttles count one caller by: an IPv4 address, or an IPv6 address's /64 (one
    end-site network: whoever has one address of it has 2^64 of them). An IPv4 address mapped
    into IPv6 counts as itself; anything that is not an address (a unix socket) as its text."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def network_key(host: str) -> str:
    """A coarser grouping than ``address_key``: an IPv4 /24 or an IPv6 /48 (what one hosting
    customer or one household is usually given). Used where one failure should mark a whole
    neighbourhood of addresses, so that rotating addresses inside it gains nothing."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if isinstance(ip, ipaddress.IPv4Address) else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def client_address(request: Request) -> str:
    """The caller's address key. ``request.client`` is the peer, or what a configured trusted
    proxy said in ``X-Forwarded-For`` (uvicorn resolves it: ``Settings.trusted_proxies``)."""
    return address_key(request.client.host if request.client else "")


def retry_in(seconds: float) -> int:
    """Whole seconds to wait, never 0 (a client told 0 retries at once and is refused again)."""
    return max(1, int(seconds) + 1)


class FailureBudget:
    """At most ``limit`` failures per key at once, and one more every ``window / limit``
    seconds after that: a leaky bucket (GCRA) per key, one float each. A key that has used its
    budget is *locked* until the bucket has drained enough for one more failure. In the long
    run a key fails at most ``limit`` times per ``window``.

    One number per key, not the time of every failure: a victim's reference may fail 100 times
    a day, and a table of such lists under a spray would hold gigabytes.

    The table is bounded without forgetting what matters (security review F8: clearing it all
    at 100,000 keys let a spray of junk unlock a locked reference). Above ``max_keys`` a sweep
    drops drained keys, then the keys with the fewest failures still counted, a quarter of
    ``max_keys`` or more (so sweeps are rare). Locked keys are kept (unless
    ``keep_locked`` is off, for a budget that only tells callers apart): they leave when they
    drain. A spray of distinct keys, one failure each, is what a sweep drops first.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        *,
        keep_locked: bool = True,
    ) -> None:
        if limit < 1 or window <= 0 or max_keys < 4:
            raise ValueError("a budget needs limit >= 1, window > 0 and max_keys >= 4")
        self.limit = limit
        self.window = window
        self.interval = window / limit
        """How long one failure stays counted."""
        self.clock = clock  # injected so that tests move time instead of sleeping
        self.max_keys = max_keys
        self.keep_locked = keep_locked
        # key -> when its failures will have drained; insertion order is irrelevant
        self._drained_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._drained_at)

    def _wait(self, drained_at: float, now: float, below: int | None = None) -> float:
        """Seconds until a key has fewer than ``below`` (default ``limit``) failures counted,
        so that it may fail once more (<= 0: it may now)."""
        return drained_at - now - ((below or self.limit) - 1) * self.interval

    def _is_locked(self, drained_at: float, now: float, below: int | None = None) -> bool:
        # the tolerance absorbs rounding in the sums of intervals
        return self._wait(drained_at, now, below) > self.interval * 1e-6

    def count(self, key: str) -> int:
        """Failures of ``key`` still counted (at most ``limit``)."""
        drained_at = self._drained_at.get(key)
        if drained_at is None:
            return 0
        return max(0, math.ceil((drained_at - self.clock()) / self.interval - 1e-6))

    def locked_for(self, key: str, below: int | None = None) -> float | None:
        """Seconds until ``key`` may try again, or None when it may now. With ``below``, a
        stricter limit for the moment: locked from ``below`` failures counted."""
        drained_at = self._drained_at.get(key)
        if drained_at is None:
            return None
        now = self.clock()
        locked = self._is_locked(drained_at, now, below)
        return self._wait(drained_at, now, below) if locked else None

    def failed(self, key: str) -> None:
        now = self.clock()
        drained_at = self._drained_at.get(key)
        if drained_at is None and len(self._drained_at) >= self.max_keys:
            self._sweep(now)
        self._drained_at[key] = max(drained_at or now, now) + self.interval

    def forget(self, key: str) -> None:
        self._drained_at.pop(key, None)

    def _sweep(self, now: float) -> None:
        excess = len(self._drained_at) - self.max_keys * 3 // 4
        # the soonest drained hold the fewest failures: drained ones, then one-failure junk
        cutoff = sorted(self._drained_at.values())[excess - 1]
        if self.keep_locked:
            # a key drained after this is locked (``_is_locked``): kept
            cutoff = min(cutoff, now + self.window - self.interval + self.interval * 1e-6)
        for key in [k for k, drained_at in self._drained_at.items() if drained_at <= cutoff]:
            del self._drained_at[key]
        # what is left above the target is locked: about (failures per second / limit) x
        # interval keys (decision 25)


class FailedAuthThrottle:
    """Failed API-key authentications per client address (decision 25): after ``limit``
    failures, and then beyond one per ``window / limit`` seconds, an address's further
    *failures* are answered 429 instead of 401. A valid key is never refused here: it is
    checked and served whatever its address did, so a shared address (a proxy, a NAT) with an
    attacker behind it does not lock out the honest callers behind it; the failures cost only
    whoever sends invalid keys."""

    def __init__(
        self,
        limit: int = 20,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        # 20 at once, then one every 15 s: only invalid keys are ever refused here, so a long
        # window costs honest callers nothing
        self.addresses = FailureBudget(limit, window, clock, max_keys)

    def check(self, address: str) -> None:
        """429 when ``address`` has used its budget of failures."""
        wait = self.addresses.locked_for(address)
        if wait is not None:
            retry = retry_in(wait)
            raise Problem(
                429,
                "Too many failed authentications",
                f"too many failed attempts from this address; retry after {retry} s",
                headers={"Retry-After": str(retry)},
            )

    def failed(self, address: str) -> None:
        self.addresses.failed(address)


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
        address = client_address(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.startswith(KEY_PREFIX):
            # a valid key is served whatever its address did before (decision 25)
            principal = await self._lookup(key_sha256(token.strip()))
            if principal is not None:
                return principal
            refused = Problem(
                401,
                "Unauthorized",
                "this API key is not valid or has been revoked",
                headers={"WWW-Authenticate": 'Bearer realm="ncii", error="invalid_token"'},
            )
        else:
            refused = Problem(
                401,
                "Unauthorized",
                "send your API key as 'Authorization: Bearer ncii_live_...'",
                headers={"WWW-Authenticate": 'Bearer realm="ncii"'},
            )
        # a throttled address's failure is not counted: its lock ends when Retry-After says
        self.throttle.check(address)
        self.throttle.failed(address)
        raise refused


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Problem(
            403,
            "Forbidden",
            f"the role '{principal.role}' may not do this; it needs one of: {', '.join(roles)}",
        )
