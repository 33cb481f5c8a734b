"""Per-principal token buckets with an injected clock (decision 24)."""

from __future__ import annotations

import pytest
from ncii_events.http.problems import Problem
from ncii_events.http.rate_limits import Budget, RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(clock: Clock, **budgets: Budget) -> RateLimits:
    return RateLimits(budgets or {"lookups": Budget(60, 10, "hashes")}, clock=clock)


def refused(rl: RateLimits, principal: str, cost: float = 1, route: str = "lookups") -> Problem:
    with pytest.raises(Problem) as caught:
        rl.take(principal, route, cost)
    return caught.value


def test_a_burst_passes_then_429_with_retry_after_in_whole_seconds_until_it_refills() -> None:
    clock = Clock()
    rl = limits(clock)  # 60 a minute = 1 a second, 10 at once
    for _ in range(10):
        rl.take("plat-a", "lookups")
    problem = refused(rl, "plat-a")
    assert problem.status == 429
    assert problem.headers == {"Retry-After": "1"}
    assert "retry in 1 s" in problem.detail and "60 hashes a minute" in problem.detail
    clock.now += 1
    rl.take("plat-a", "lookups")
    problem = refused(rl, "plat-a", cost=5)
    assert problem.headers == {"Retry-After": "5"}  # 5 missing at 1 a second


def test_the_cost_counts_so_a_large_request_drains_what_many_small_ones_would() -> None:
    clock = Clock()
    rl = limits(clock)
    rl.take("plat-a", "lookups", cost=8)
    rl.take("plat-a", "lookups", cost=2)
    assert refused(rl, "plat-a").status == 429


def test_a_request_larger_than_the_burst_takes_a_full_bucket_and_is_never_refused_for_ever() -> (
    None
):
    clock = Clock()
    rl = limits(clock)
    rl.take("plat-a", "lookups", cost=160_000)
    problem = refused(rl, "plat-a", cost=160_000)
    assert problem.headers == {"Retry-After": "10"}
    clock.now += 10
    rl.take("plat-a", "lookups", cost=160_000)


def test_one_principal_exhausting_its_budget_leaves_another_principal_and_route_class_alone() -> (
    None
):
    clock = Clock()
    rl = limits(clock, lookups=Budget(60, 10), sightings=Budget(60, 3))
    rl.take("plat-a", "lookups", cost=10)
    assert refused(rl, "plat-a").status == 429
    rl.take("plat-b", "lookups", cost=10)
    rl.take("plat-a", "sightings", cost=3)


def test_a_refused_request_takes_nothing() -> None:
    clock = Clock()
    rl = limits(clock)
    rl.take("plat-a", "lookups", cost=10)
    for _ in range(100):
        refused(rl, "plat-a")
    clock.now += 3
    rl.take("plat-a", "lookups", cost=3)


def test_memory_is_bounded_and_spraying_other_keys_does_not_reset_an_active_flooder() -> None:
    clock = Clock()
    rl = RateLimits({"lookups": Budget(60, 10)}, clock=clock, max_buckets=100)
    rl.take("flooder", "lookups", cost=10)
    for i in range(1000):
        rl.take(f"other-{i}", "lookups", cost=1)
        if i % 10 == 0:  # the flooder keeps sending: it stays among the recently used
            refused(rl, "flooder")
    assert len(rl) <= 100
    assert refused(rl, "flooder").status == 429


def test_when_memory_is_full_a_refilled_bucket_goes_before_a_recently_drained_one() -> None:
    clock = Clock()
    rl = RateLimits({"lookups": Budget(60, 10)}, clock=clock, max_buckets=2)
    rl.take("idle", "lookups")
    clock.now += 10  # idle's bucket has refilled: nothing is lost by forgetting it
    rl.take("flooder", "lookups", cost=10)
    rl.take("newcomer", "lookups")
    assert refused(rl, "flooder").status == 429


def test_a_cost_estimated_before_the_body_is_settled_after_into_debt_or_refund() -> None:
    clock = Clock()
    rl = limits(clock)  # 1 a second, 10 at once
    taken = rl.take("plat-a", "lookups", cost=4)  # estimated from the body's size
    rl.settle("plat-a", "lookups", cost=10, taken=taken)  # it was 10: 6 more, into debt
    problem = refused(rl, "plat-a")
    assert problem.headers == {"Retry-After": "1"}  # from 0 to 1 at 1 a second
    clock.now += 1
    taken = rl.take("plat-a", "lookups", cost=1)
    rl.settle("plat-a", "lookups", cost=1, taken=taken)
    clock.now += 10
    taken = rl.take("plat-a", "lookups", cost=10)
    rl.settle("plat-a", "lookups", cost=2, taken=taken)  # overestimated: 8 come back
    rl.take("plat-a", "lookups", cost=8)
    assert refused(rl, "plat-a").status == 429
