"""Which signer may write which event type: each installed service's ``emits``, found as the
CLI finds them (the ``ncii.services`` entry points). The auditor checks a signature against
these, as ``ncii log verify`` does; it calls no service and uses nothing else of theirs."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.service import ServiceSpec

GROUP = "ncii.services"


def emitters() -> dict[str, list[type[DomainEvent]]]:
    found: dict[str, list[type[DomainEvent]]] = {}
    for point in entry_points(group=GROUP):
        spec: Any = point.load()
        if isinstance(spec, ServiceSpec):
            found[spec.name] = list(spec.emits)
    return found
