"""Domain events: registration by type and schema version, upcasting, personal fields.

A payload is a frozen pydantic model. Its personal fields are declared once, with
``Annotated[str | None, PERSONAL]``; the store encrypts them, and reads them back as ``None``
after the case's key has been destroyed. Old versions are upcast on read, never rewritten.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict


class _Personal:
    def __repr__(self) -> str:
        return "PERSONAL"


PERSONAL = _Personal()
"""Marks a payload field as personal data: ``name: Annotated[str | None, PERSONAL] = None``."""


class DomainEvent(BaseModel):
    """Base of every event payload. Subclasses set ``event_type``, ``version`` and ``aggregate``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    aggregate: ClassVar[str]


E = TypeVar("E", bound=type[DomainEvent])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventError(LookupError):
    pass


class EventRegistry:
    def __init__(self) -> None:
        self._current: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._personal: dict[str, frozenset[str]] = {}

    def register(self, cls: E) -> E:
        """Class decorator: the class is the current version of its event type."""
        name = cls.event_type
        existing = self._current.get(name)
        if existing is not None and existing is not cls:
            if existing.__module__ == cls.__module__ and existing.__qualname__ == cls.__qualname__:
                pass  # the same module imported twice (tests, reloads): last one wins
            else:
                raise ValueError(f"event type {name} is registered twice")
        personal = frozenset(_personal_fields(cls))
        for field in personal:
            if cls.__pydantic_fields__[field].is_required():
                raise TypeError(f"{name}.{field} is personal and must default to None (erasure)")
        _refuse_floats(cls)
        self._current[name] = cls
        self._personal[name] = personal
        return cls

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


def _personal_fields(cls: type[BaseModel]) -> Iterable[str]:
    for name, info in cls.__pydantic_fields__.items():
        if any(m is PERSONAL for m in info.metadata):
            yield name


def _refuse_floats(cls: type[BaseModel]) -> None:
    """Floats have no single canonical encoding; hashes must be reproducible everywhere."""

    def has_float(tp: Any) -> bool:
        if tp is float:
            return True
        origin = get_origin(tp)
        if origin is typing.Annotated:
            return has_float(get_args(tp)[0])
        if origin in (Union, types.UnionType, list, tuple, set, frozenset, dict):
            return any(has_float(a) for a in get_args(tp))
        return False

    for name, info in cls.__pydantic_fields__.items():
        if has_float(info.annotation):
            raise TypeError(f"{cls.__name__}.{name}: use int (e.g. milliseconds) or str, not float")


EVENTS = EventRegistry()
"""The process-wide registry: each service's ``events`` module registers its events here."""
