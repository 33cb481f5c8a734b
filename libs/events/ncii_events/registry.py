"""Which events a program understands: their classes by type, their personal fields, and the
upcasters that read old versions (old versions are upcast on read, never rewritten).

A registry is built explicitly, from the contracts a program reads, and passed to the stores:
``EventRegistry(*INTAKE_EVENTS, *PRINCIPAL_EVENTS)``. There is no process-wide registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ncii_contracts.base import DomainEvent, Upcaster, check_contract


class UnknownEventError(LookupError):
    pass


class EventRegistry:
    def __init__(self, *event_classes: type[DomainEvent]) -> None:
        self._current: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._personal: dict[str, frozenset[str]] = {}
        for cls in event_classes:
            self.register(cls)

    def register(self, cls: type[DomainEvent]) -> None:
        """The class is the current version of its event type."""
        name = cls.event_type
        existing = self._current.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"event type {name} is registered twice")
        self._personal[name] = check_contract(cls)
        self._current[name] = cls
        for from_version, step in cls.upcasters.items():
            self._upcasters[(name, from_version)] = step

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns a payload of ``from_version`` into the next version."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return decorate

    def is_known(self, event_type: str) -> bool:
        return event_type in self._current

    def event_class(self, event_type: str) -> type[DomainEvent]:
        try:
            return self._current[event_type]
        except KeyError:
            raise UnknownEventError(event_type) from None

    def personal_fields(self, event_type: str) -> frozenset[str]:
        return self._personal.get(event_type, frozenset())

    def clear_before(self, event_type: str) -> Mapping[str, int]:
        """Personal fields older versions stored in clear (``DomainEvent.clear_before``)."""
        cls = self._current.get(event_type)
        return cls.clear_before if cls is not None else {}

    def upcast(self, event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
        target = self.event_class(event_type).version
        if version < target:
            payload = dict(payload)  # an upcaster may change it in place: not the stored one
        while version < target:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEventError(f"no upcaster for {event_type} v{version}")
            payload = step(payload)
            version += 1
        if version > target:
            raise UnknownEventError(f"{event_type} v{version} is newer than this code (v{target})")
        return payload

    def decode(self, event_type: str, version: int, payload: dict[str, Any]) -> DomainEvent:
        cls = self.event_class(event_type)
        return cls.model_validate(self.upcast(event_type, version, payload))

    def types(self) -> Iterable[type[DomainEvent]]:
        return self._current.values()
