"""The services the system is made of, as the CLI finds them: every installed package that
declares its ``ServiceSpec`` in the ``ncii.services`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ncii_events.service import ServiceSpec

GROUP = "ncii.services"


def all_services() -> dict[str, ServiceSpec[Any]]:
    """Every installed service by name, in the order of their default ports (``ncii run``'s
    start order and the order base-port offsets follow)."""
    from ncii_events.service import ServiceSpec

    specs: list[ServiceSpec[Any]] = []
    for point in entry_points(group=GROUP):
        spec = point.load()
        if not isinstance(spec, ServiceSpec) or spec.name != point.name:
            raise TypeError(f"entry point {point.name} = {point.value} is not that ServiceSpec")
        specs.append(spec)
    return {s.name: s for s in sorted(specs, key=default_port)}


def default_port(spec: ServiceSpec[Any]) -> int:
    """Where a service listens unless a setting says otherwise."""
    return spec.port
