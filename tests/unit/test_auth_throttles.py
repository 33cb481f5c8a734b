"""The failed-auth throttles' logic with an injected clock (security review F7, F8; decision
25): a bounded failure table that a spray cannot flush, the address keys, the victim's PIN
budgets, and the proxy setting. The HTTP behaviour is in tests/e2e/test_auth_throttles.py."""

from __future__ import annotations

import pytest
from ncii_events.auth import (
    FailedAuthThrottle,
    FailureBudget,
    address_key,
    network_key,
)
from ncii_events.http import Problem
from ncii_events.serve import server_config
from ncii_events.settings import Settings
from ncii_intake.victim_throttle import (
    ADDRESS_LIMIT,
    BRAKE_LIMIT,
    CAP_LIMIT,
    CAP_WINDOW,
    DAY,
    VictimThrottle,
    reference_key,
)
from pydantic import ValidationError


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the failure table ----------------------------------------------------------------------


def test_a_spray_of_200000_distinct_keys_does_not_unlock_a_locked_key() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(limit=20, window=60, clock=clock)
    for _ in range(20):
        throttle.failed("203.0.113.9")
    for i in range(200_000):
        throttle.failed(f"spray-{i}")
    with pytest.raises(Problem) as refused:
        throttle.check("203.0.113.9")
    assert refused.value.status == 429
    # memory stays bounded all the same
    assert len(throttle.addresses) <= 100_000


def test_a_spray_drops_one_failure_keys_before_a_key_with_several_recent_failures() -> None:
    clock = FakeClock()
    budget = FailureBudget(limit=10, window=300, clock=clock, max_keys=1_000)
    for _ in range(9):  # one short of the lock: a spray must not reset it either
        budget.failed("REF1")
    for i in range(5_000):
        budget.failed(f"junk-{i}")
    assert budget.count("REF1") == 9
    budget.failed("REF1")
    assert budget.locked_for("REF1") is not None
    assert len(budget) <= 1_000


def test_locked_keys_leave_the_table_when_they_expire() -> None:
    clock = FakeClock()
    budget = FailureBudget(limit=2, window=60, clock=clock, max_keys=8)
    for key in ("a", "b"):
        budget.failed(key)
        budget.failed(key)
    clock.now += 61
    for i in range(20):
        budget.failed(f"new-{i}")
    assert budget.count("a") == 0 and budget.count("b") == 0
    assert len(budget) <= 8


def test_the_failed_auth_429_says_what_is_throttled_and_when_to_retry() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(limit=2, window=60, clock=clock)
    throttle.failed("192.0.2.1")
    clock.now += 15
    throttle.failed("192.0.2.1")
    with pytest.raises(Problem) as refused:
        throttle.check("192.0.2.1")
    assert refused.value.detail == "too many failed attempts from this address; retry after 16 s"
    assert refused.value.headers["Retry-After"] == "16"


def test_ipv6_callers_are_counted_per_64_and_mapped_ipv4_as_itself() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::7")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert network_key("192.0.2.1") == network_key("192.0.2.200") == "192.0.2.0/24"
    assert network_key("2001:db8:1:2::1") == network_key("2001:db8:1:ffff::1")
    assert address_key("") == "unknown"


# -- the victim's PIN budgets -----------------------------------------------------------------


def test_wrong_pins_from_rotating_addresses_brake_the_reference_but_spare_a_fresh_network() -> None:
    throttle = VictimThrottle(clock=FakeClock())
    ref = reference_key("ABCD-EFGH-JKMN", 0)
    # the attacker: 5 networks, 2 addresses in each, one wrong PIN from each address
    attacker = [f"203.0.{n}.{a}" for n in range(5) for a in (1, 2)]
    for host in attacker:
        assert throttle.address_refusal(host) is None
        assert throttle.reference_refusal(ref, network_key(host)) is None
        throttle.wrong(address_key(host), ref, network_key(host))
    assert len(attacker) == BRAKE_LIMIT
    # the victim, from her own network, is still checked
    assert throttle.reference_refusal(ref, network_key("198.51.100.20")) is None
    # the attacker's networks are refused, with words a victim understands
    refusal = throttle.reference_refusal(ref, network_key("203.0.0.77"))
    assert refusal is not None and refusal.throttled == "reference"
    assert refusal.detail == (
        "too many wrong PINs for this reference; try again in 6 minutes, "
        "or ask your case worker to restore access"
    )


def test_one_mistyped_pin_of_the_victim_during_the_brake_does_not_lock_her_out() -> None:
    throttle = VictimThrottle(clock=FakeClock())
    ref = reference_key("ABCD-EFGH-JKMN", 0)
    for n in range(BRAKE_LIMIT):
        host = f"10.{n}.0.1"
        throttle.wrong(address_key(host), ref, network_key(host))
    victim = "198.51.100.20"
    throttle.wrong(address_key(victim), ref, network_key(victim))
    assert throttle.reference_refusal(ref, network_key(victim)) is None


def test_one_network_guessing_all_day_cannot_use_up_the_references_daily_cap() -> None:
    clock = FakeClock()
    throttle = VictimThrottle(clock=clock)
    ref = reference_key("ABCD-EFGH-JKMN", 0)
    checked = 0
    for minute in range(24 * 60):
        # a new address of the same /24 whenever the address itself is refused
        host = f"203.0.113.{minute % 250}"
        if (
            throttle.address_refusal(address_key(host)) is None
            and throttle.reference_refusal(ref, network_key(host)) is None
        ):
            checked += 1
            throttle.wrong(address_key(host), ref, network_key(host))
        clock.now += 60
    assert checked <= 10
    assert throttle.reference_refusal(ref, network_key("198.51.100.20")) is None


def test_the_daily_cap_bounds_the_guesses_at_a_pin_whatever_the_number_of_networks() -> None:
    clock = FakeClock()
    throttle = VictimThrottle(clock=clock)
    ref = reference_key("ABCD-EFGH-JKMN", 0)
    checked = 0
    for n in range(10_000):
        host = f"10.{n // 256}.{n % 256}.1"  # a fresh /24 each time
        if throttle.reference_refusal(ref, network_key(host)) is not None:
            break
        checked += 1
        throttle.wrong(address_key(host), ref, network_key(host))
    assert checked == CAP_LIMIT
    refusal = throttle.reference_refusal(ref, network_key("198.51.100.20"))
    assert refusal is not None and refusal.retry_after == CAP_WINDOW / CAP_LIMIT
    # a reset by the case worker starts the reference's budgets afresh
    assert throttle.reference_refusal(reference_key("ABCD-EFGH-JKMN", 1), "x") is None
    clock.now += DAY
    assert throttle.reference_refusal(ref, network_key("198.51.100.20")) is None


def test_an_address_is_refused_after_its_own_budget_of_wrong_attempts() -> None:
    throttle = VictimThrottle(clock=FakeClock())
    for i in range(ADDRESS_LIMIT):
        # malformed and unknown references count for the address too
        throttle.wrong("192.0.2.1", None if i % 2 else reference_key(f"R{i}", 0), "192.0.2.0/24")
    refusal = throttle.address_refusal("192.0.2.1")
    assert refusal is not None and refusal.throttled == "address"
    assert refusal.detail == (
        "too many wrong attempts from this address; try again in 2 minutes, "
        "or ask your case worker to restore access"
    )
    assert throttle.address_refusal("192.0.2.2") is None


def test_spraying_references_does_not_lift_a_capped_reference() -> None:
    throttle = VictimThrottle(clock=FakeClock(), max_keys=10_000)
    ref = reference_key("ABCD-EFGH-JKMN", 0)
    for n in range(CAP_LIMIT):
        throttle.wrong(f"10.0.{n}.1", ref, f"10.0.{n}.0/24")
    for i in range(50_000):
        throttle.wrong(f"spray-{i}", reference_key(f"JUNK{i}", 0), f"spray-{i}")
    assert throttle.reference_refusal(ref, "198.51.100.0/24") is not None


# -- trusted proxies ------------------------------------------------------------------------


def test_no_forwarded_header_is_trusted_by_default_not_even_from_loopback() -> None:
    config = server_config(object(), Settings(), 18999)
    assert config.proxy_headers is False


def test_configured_proxies_are_the_only_ones_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCII_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7")
    config = server_config(object(), Settings(), 18999)
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == ["10.0.0.0/8", "192.0.2.7"]


@pytest.mark.parametrize("value", ["*", "proxy.local", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_not_an_address_or_network_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("NCII_TRUSTED_PROXIES", value)
    with pytest.raises(ValidationError, match="NCII_TRUSTED_PROXIES"):
        Settings()


# -- the reset, in the domain ---------------------------------------------------------------


def test_a_reset_is_an_event_and_a_new_pin_moves_the_pin_generation() -> None:
    from datetime import UTC, datetime

    from ncii_contracts.intake import Consents, VictimAccessReset
    from ncii_intake.domain import Case, CaseClosedError

    [opened] = Case.open(
        organisation="ngo-a",
        reference="ABCD-EFGH-JKMN",
        age_group="adult",
        harm_categories=["threat_sextortion"],
        spread_status="threatened",
        channels=[],
        intake_channel="phone",
        learned_at=datetime(2026, 11, 1, tzinfo=UTC),
        consents=Consents(takedown=True, share_hashes=False, referral=False),
        pseudonym=None,
        contact=None,
    )
    case = Case.replay("c1", [(opened, "2026-11-01T00:00:00Z")])
    assert case is not None
    [reset] = case.reset_victim_access("caseworker", new_pin=True)
    assert reset == VictimAccessReset(reset_by="caseworker", new_pin=True)
    case = case.apply(reset, "2026-11-02T00:00:00Z")
    case = case.apply(VictimAccessReset(reset_by="partner", new_pin=False), "2026-11-03T00:00:00Z")
    assert (case.victim_access_resets, case.pin_generation) == (2, 1)
    [erasure] = case.erase("caseworker", "victim_request")
    erased = case.apply(erasure, "2026-11-04T00:00:00Z")
    with pytest.raises(CaseClosedError):
        erased.reset_victim_access("caseworker", new_pin=True)
