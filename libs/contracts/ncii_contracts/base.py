"""The base of every event payload, the personal-data marker, and the rules a payload must keep.

A payload is a frozen pydantic model. Its personal fields are declared once, with
``Annotated[str | None, PERSONAL]``; the store encrypts them, and reads them back as ``None``
after the case's key has been destroyed. The event type defaults to the class name, and the
aggregate (and the streams, when not the cases' stream) are class keywords::

    class CaseOpened(DomainEvent, aggregate="case"): ...
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from ncii_contracts.streams import CASES, StreamSpec


class _Personal:
    def __repr__(self) -> str:
        return "PERSONAL"


PERSONAL = _Personal()
"""Marks a payload field as personal data: ``name: Annotated[str | None, PERSONAL] = None``."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a payload of one version into the next (``DomainEvent.upcasters``)."""


class DomainEvent(BaseModel):
    """Base of every event payload.

    Class keywords: ``aggregate`` (required), ``event_type`` (default: the class name),
    ``version`` (default 1), ``streams`` (default: the cases' stream only), ``upcasters`` and
    ``clear_before`` (see below).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    aggregate: ClassVar[str]
    streams: ClassVar[tuple[StreamSpec, ...]] = (CASES,)
    upcasters: ClassVar[Mapping[int, Upcaster]] = {}
    """Version -> the function that turns a payload of that version into the next one."""
    clear_before: ClassVar[Mapping[str, int]] = {}
    """Personal fields that older versions stored in clear: field -> the first version that
    encrypts it. Readers keep such a stored value as it is (and withhold it, or read it as
    erased, like any personal field): the log is never rewritten."""

    def __init_subclass__(
        cls,
        *,
        aggregate: str | None = None,
        event_type: str | None = None,
        version: int | None = None,
        streams: tuple[StreamSpec, ...] | None = None,
        upcasters: Mapping[int, Upcaster] | None = None,
        clear_before: Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if event_type is not None:
            cls.event_type = event_type
        elif "event_type" not in own:
            cls.event_type = cls.__name__
        if aggregate is not None:
            cls.aggregate = aggregate
        if version is not None:
            cls.version = version
        if streams is not None:
            cls.streams = streams
        if upcasters is not None:
            cls.upcasters = upcasters
        if clear_before is not None:
            cls.clear_before = clear_before


def personal_fields(cls: type[BaseModel]) -> Iterable[str]:
    """The fields marked ``PERSONAL``."""
    for name, info in cls.__pydantic_fields__.items():
        if any(m is PERSONAL for m in info.metadata):
            yield name


def check_contract(cls: type[DomainEvent]) -> frozenset[str]:
    """Refuse a payload the log could not keep; return its personal fields."""
    if not isinstance(getattr(cls, "aggregate", None), str):
        raise TypeError(f"{cls.__name__} declares no aggregate (class keyword aggregate=...)")
    personal = frozenset(personal_fields(cls))
    for field in personal:
        if cls.__pydantic_fields__[field].is_required():
            raise TypeError(
                f"{cls.event_type}.{field} is personal and must default to None (erasure)"
            )
    for field in cls.clear_before:
        if field not in personal:
            raise TypeError(f"{cls.event_type}.{field} is in clear_before but not personal")
    refuse_floats(cls)
    return personal


def refuse_floats(cls: type[BaseModel]) -> None:
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
