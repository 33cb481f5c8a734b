"""Wrong PINs on the victim's routes: budgets that make guessing a PIN impractical without
letting whoever knows a victim's reference lock her out (security review F8; decision 25).
Pure: times come from the injected clock; the routes turn a ``Refusal`` into a 429.

Five budgets, each a ``FailureBudget``: ``LIMIT`` failures at once, then one more each
``WINDOW / LIMIT``, so at most ``LIMIT`` per ``WINDOW`` in the long run; bounded tables that a
spray of junk cannot empty:

* per address (IPv4 address, IPv6 /64): ``ADDRESS_LIMIT`` wrong attempts of any kind (a
  malformed or unknown reference too) per ``ADDRESS_WINDOW``; over it the address is refused
  before anything is looked up;
* per reference and *network* (IPv4 /24, IPv6 /48: rotating addresses inside one gains
  nothing): ``NETWORK_LIMIT`` wrong PINs per ``NETWORK_WINDOW``, so one network alone gets
  about seven guesses a day at a reference, far from the cap below;
* per reference, a brake: over ``BRAKE_LIMIT`` wrong PINs per ``BRAKE_WINDOW`` from all
  networks together, a network with ``NETWORK_LIMIT_BRAKED`` wrong PINs of its own for this
  reference is refused; every other network is still checked, so the victim's correct PIN
  from her own phone or home works while an attacker who braked the reference burns his own
  networks;
* per reference, a cap: over ``CAP_LIMIT`` wrong PINs per ``CAP_WINDOW`` nobody is checked
  until a failure's share of the window has passed (14.4 minutes) or the case worker resets
  the victim's access. It bounds the guesses at a PIN in total, whatever number of networks
  the attacker has.

A reference is counted under its *generation* (``reference#resets``): a reset by the case
worker, an event in the log, starts every reference budget afresh on every replica.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ncii_events.auth import FailureBudget

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR

ADDRESS_LIMIT, ADDRESS_WINDOW = 10, 15 * MINUTE
BRAKE_LIMIT, BRAKE_WINDOW = 10, HOUR
NETWORK_LIMIT, NETWORK_WINDOW = 5, DAY
NETWORK_LIMIT_BRAKED = 2
"""Two, not one: the victim who mistypes her PIN once while the brake is on still gets in."""
CAP_LIMIT, CAP_WINDOW = 100, DAY


@dataclass(frozen=True)
class Refusal:
    """Why a victim request is refused without its PIN being checked, and for how long."""

    throttled: Literal["address", "reference"]
    seconds: float

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.seconds))

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / MINUTE))

    @property
    def detail(self) -> str:
        """For a victim, not an engineer: what happened, when to retry, who can help."""
        what = (
            "too many wrong attempts from this address"
            if self.throttled == "address"
            else "too many wrong PINs for this reference"
        )
        unit = "minute" if self.minutes == 1 else "minutes"
        return (
            f"{what}; try again in {self.minutes} {unit}, or ask your case worker to restore access"
        )


def reference_key(reference: str, resets: int) -> str:
    return f"{reference}#{resets}"


class VictimThrottle:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.addresses = FailureBudget(ADDRESS_LIMIT, ADDRESS_WINDOW, clock, max_keys)
        self.brake = FailureBudget(BRAKE_LIMIT, BRAKE_WINDOW, clock, max_keys)
        # a network's count only tells the victim and the attacker apart while the brake is
        # on; the cap bounds the guesses, so these entries may go when the table is full
        self.networks = FailureBudget(
            NETWORK_LIMIT, NETWORK_WINDOW, clock, max_keys, keep_locked=False
        )
        self.cap = FailureBudget(CAP_LIMIT, CAP_WINDOW, clock, max_keys)

    def address_refusal(self, address: str) -> Refusal | None:
        wait = self.addresses.locked_for(address)
        return Refusal("address", wait) if wait is not None else None

    def reference_refusal(self, reference: str, network: str) -> Refusal | None:
        """``reference`` is ``reference_key(...)``; ``network`` is ``network_key(host)``."""
        capped = self.cap.locked_for(reference)
        if capped is not None:
            return Refusal("reference", capped)
        mine = f"{reference}|{network}"
        own = self.networks.locked_for(mine)
        if own is not None:
            return Refusal("reference", own)
        braked = self.brake.locked_for(reference)
        if braked is None:
            return None
        own = self.networks.locked_for(mine, below=NETWORK_LIMIT_BRAKED)
        if own is None:
            return None  # a network without wrong PINs of its own is checked
        return Refusal("reference", min(braked, own))

    def wrong(self, address: str, reference: str | None, network: str) -> None:
        """A wrong attempt: a malformed reference (``None``), or a wrong reference or PIN.
        An unknown reference counts like a known one, so the throttle tells nobody which
        references exist."""
        self.addresses.failed(address)
        if reference is not None:
            self.brake.failed(reference)
            self.cap.failed(reference)
            self.networks.failed(f"{reference}|{network}")
