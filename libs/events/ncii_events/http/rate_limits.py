"""Per-principal rate limits (security review F3, F6; decision 24).

A token bucket per (principal, route class): a class's budget refills at ``per_minute`` units a
minute up to ``burst``; a request takes its cost (one for a sighting, feedback or case write; the
hashes and frames it asks about for a look-up). A request that would overdraw the bucket is
refused with 429, a ``Retry-After`` in whole seconds and a message that says when to retry; it
takes nothing, so a refused caller regains its budget as if it had waited.

Limits apply after authentication (the caller is a principal id, never an address: one
platform cannot starve another, and addresses are the failed-auth throttle's business). They
are per process: replicas each keep their own buckets.

Memory is bounded by ``max_buckets``. When it is full, a bucket that has refilled completely
goes first (it holds nothing a fresh bucket would not), then the least recently used one: a
principal that keeps sending stays the most recently used, so others' keys cannot push its
bucket out, and only principals (keys issued by the operator) make buckets.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ncii_events.http.problems import Problem
from ncii_events.settings import Settings

RATE_KEY = "x-rate-limit"
"""Where a route declares its route class (an OpenAPI extension, like ``x-body-limit``)."""
TAKEN_SCOPE_KEY = "ncii.rate_taken"
"""What the route class took before the body was read, for ``settle``."""


@dataclass(frozen=True)
class Budget:
    """What a route class allows one principal: ``per_minute`` units, at most ``burst`` at once."""

    per_minute: float
    burst: float
    unit: str = "requests"
    """What a unit is, for the message (``requests``, ``hashes and frames``)."""

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("a budget refills at more than 0 a minute and holds at least 1")


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    """Token buckets for every (principal, route class) of one process."""

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 10_000,
    ) -> None:
        self.budgets = dict(budgets)
        self.clock = clock  # injected so that tests move time instead of sleeping
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()

    def _refilled(self, bucket: _Bucket, budget: Budget, now: float) -> float:
        elapsed = max(0.0, now - bucket.at)
        return min(budget.burst, bucket.tokens + elapsed * budget.per_minute / 60.0)

    def _bucket(self, principal_id: str, route_class: str) -> tuple[_Bucket, Budget, float]:
        budget = self.budgets[route_class]
        now = self.clock()
        key = (principal_id, route_class)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._new(key, budget, now)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens, bucket.at = self._refilled(bucket, budget, now), now
        return bucket, budget, now

    def take(self, principal_id: str, route_class: str, cost: float = 1) -> float:
        """Take ``cost`` units of ``route_class`` for ``principal_id``, or raise a 429
        ``Problem``; returns what was taken. A cost above the burst counts as the burst (the
        whole bucket): such a request is let through when the bucket is full, so it is never
        refused for ever."""
        bucket, budget, _now = self._bucket(principal_id, route_class)
        cost = min(max(cost, 1), budget.burst)
        if bucket.tokens < cost:
            wait = math.ceil((cost - bucket.tokens) * 60.0 / budget.per_minute)
            retry = max(1, wait)
            raise Problem(
                429,
                "Too many requests",
                f"this key may send at most {budget.per_minute:g} {budget.unit} a minute "
                f"(bursts of {budget.burst:g}) to this endpoint; retry in {retry} s",
                kind="rate-limited",
                headers={"Retry-After": str(retry)},
            )
        bucket.tokens -= cost
        return cost

    def settle(self, principal_id: str, route_class: str, cost: float, taken: float) -> None:
        """Charge the rest of a request's real ``cost`` once its body is read, ``taken`` having
        been taken before (an estimate from its size): the bucket may go below zero (the key
        then waits longer for its next request), or get back what was taken too much."""
        bucket, budget, _now = self._bucket(principal_id, route_class)
        cost = min(max(cost, 1), budget.burst)
        bucket.tokens = min(budget.burst, bucket.tokens - (cost - taken))

    def _new(self, key: tuple[str, str], budget: Budget, now: float) -> _Bucket:
        while len(self._buckets) >= self.max_buckets:
            self._evict(now)
        bucket = _Bucket(budget.burst, now)
        self._buckets[key] = bucket
        return bucket

    def _evict(self, now: float) -> None:
        # Look at the least recently used few: a full one goes first (nothing is lost);
        # otherwise the least recently used of all.
        for i, (key, bucket) in enumerate(self._buckets.items()):
            if i >= 64:
                break
            if self._refilled(bucket, self.budgets[key[1]], now) >= self.budgets[key[1]].burst:
                del self._buckets[key]
                return
        self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


LOOKUPS = "lookups"
SIGHTINGS = "sightings"
FEEDBACK = "feedback"
CASE_WRITES = "case_writes"


def rate_limited(route_class: str, bytes_per_unit: int | None = None) -> dict[str, Any]:
    """``openapi_extra`` of a route limited per principal: its budget is checked with the key,
    before the body is read, so a key over its budget never makes the process read and parse
    a body. ``bytes_per_unit``: the route's cost grows with its body; so much is taken before
    the body (its ``Content-Length`` divided by this, a low estimate), and the route settles
    the real cost once it is parsed (``RateLimits.settle``). Without it a request costs 1."""
    return {RATE_KEY: {"class": route_class, "bytes_per_unit": bytes_per_unit}}


def take_before_body(
    request: Request, declared: dict[str, Any], principal_id: str, declared_length: int
) -> None:
    """For a route declaring ``rate_limited`` (``declared``): take its estimated cost (429
    beyond the budget), and leave what was taken in the request scope."""
    per_unit = declared["bytes_per_unit"]
    estimate = max(1, declared_length // per_unit) if per_unit else 1
    taken = rate_limits_of(request).take(principal_id, declared["class"], estimate)
    request.scope[TAKEN_SCOPE_KEY] = taken


def taken_before_body(request: Request) -> float:
    return float(request.scope.get(TAKEN_SCOPE_KEY, 0))


def budgets_from(settings: Settings) -> dict[str, Budget]:
    """Each route class's budget, from the ``NCII_RATE_*`` settings."""
    return {
        LOOKUPS: Budget(
            settings.rate_lookup_per_minute, settings.rate_lookup_burst, "hashes and frames"
        ),
        SIGHTINGS: Budget(settings.rate_sightings_per_minute, settings.rate_sightings_burst),
        FEEDBACK: Budget(settings.rate_feedback_per_minute, settings.rate_feedback_burst),
        CASE_WRITES: Budget(settings.rate_case_writes_per_minute, settings.rate_case_writes_burst),
    }


def rate_limits_of(request: Request) -> RateLimits:
    """The process's limits (the service runtime owns them; reached through the app's state
    because the runtime module imports this package)."""
    limits = request.app.state.runtime.rate_limits
    assert isinstance(limits, RateLimits)
    return limits


async def rate_limits(request: Request) -> RateLimits:
    """FastAPI dependency: the process's rate limits."""
    return rate_limits_of(request)


Limits = Annotated[RateLimits, Depends(rate_limits)]
