"""ncii's published contracts: what another program may rely on (event payloads, the streams
they live on, shared value types, and the HTTP bodies more than one program speaks).

Each area's events are a tuple in its module (``INTAKE_EVENTS``, ``HASHMATCH_EVENTS``,
``TAKEDOWN_EVENTS``, ``REFERRAL_EVENTS``, ``AUDIT_EVENTS``, ``PRINCIPAL_EVENTS``); ``ALL_EVENTS`` is
all of them, for programs that read the whole log."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ncii_contracts.base import DomainEvent

    ALL_EVENTS: tuple[type[DomainEvent], ...]


def __getattr__(name: str) -> object:
    # Built on first use, so that `ncii hash` (which needs only `hashes`) loads no event model.
    if name != "ALL_EVENTS":
        raise AttributeError(f"module 'ncii_contracts' has no attribute {name!r}")
    from ncii_contracts.audit import AUDIT_EVENTS
    from ncii_contracts.hashmatch import HASHMATCH_EVENTS
    from ncii_contracts.intake import INTAKE_EVENTS
    from ncii_contracts.principals import PRINCIPAL_EVENTS
    from ncii_contracts.referral import REFERRAL_EVENTS
    from ncii_contracts.takedown import TAKEDOWN_EVENTS

    events = (
        *INTAKE_EVENTS,
        *HASHMATCH_EVENTS,
        *TAKEDOWN_EVENTS,
        *REFERRAL_EVENTS,
        *AUDIT_EVENTS,
        *PRINCIPAL_EVENTS,
    )
    globals()["ALL_EVENTS"] = events
    return events
