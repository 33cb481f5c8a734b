"""ncii's published contracts: what another program may rely on (event payloads, the streams
they live on, shared value types, and the HTTP bodies more than one program speaks)."""

from __future__ import annotations

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import HASHMATCH_EVENTS
from ncii_contracts.intake import INTAKE_EVENTS
from ncii_contracts.principals import PRINCIPAL_EVENTS

ALL_EVENTS: tuple[type[DomainEvent], ...] = (*INTAKE_EVENTS, *HASHMATCH_EVENTS, *PRINCIPAL_EVENTS)
"""Every event of the log, for programs that read all of it (``ncii log verify``, tests)."""

__all__ = ["ALL_EVENTS", "HASHMATCH_EVENTS", "INTAKE_EVENTS", "PRINCIPAL_EVENTS"]
