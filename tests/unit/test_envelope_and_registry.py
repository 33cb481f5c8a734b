"""The envelope, canonical encoding, event registration and upcasting: no I/O."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import pytest
from ncii_contracts.base import PERSONAL, DomainEvent
from ncii_events.envelope import GENESIS, Actor, Envelope, canonical_json, envelope_hash
from ncii_events.ids import new_case_reference, normalise_case_reference, uuid7
from ncii_events.registry import EventRegistry, UnknownEventError


def test_canonical_json_is_independent_of_key_order_and_keeps_unicode() -> None:
    a = canonical_json({"b": 1, "a": {"y": "台北", "x": [1, 2]}})
    b = canonical_json({"a": {"x": [1, 2], "y": "台北"}, "b": 1})
    assert a == b == '{"a":{"x":[1,2],"y":"台北"},"b":1}'.encode()


def _envelope(**changes: Any) -> Envelope:
    body: dict[str, Any] = {
        "event_id": "e1",
        "type": "T",
        "schema_version": 1,
        "case_id": "c",
        "aggregate": "case",
        "aggregate_id": "c",
        "occurred_at": "2026-11-24T00:00:00.000000Z",
        "actor": {"organisation": "o", "principal": "p", "role": "partner"},
        "correlation_id": "x",
        "causation_id": "x",
        "traceparent": None,
        "payload": {"n": 1},
        "prev_hash": GENESIS,
    }
    body.update(changes)
    body["hash"] = envelope_hash(body)
    return Envelope.from_dict(body)


def test_an_envelope_verifies_until_any_field_changes() -> None:
    env = _envelope()
    assert env.verifies()
    for field, value in [("payload", {"n": 2}), ("prev_hash", "1" * 64), ("occurred_at", "x")]:
        doc = env.to_dict()
        doc[field] = value
        assert not Envelope.from_dict(doc).verifies(), field
    doc = env.to_dict()
    doc["actor"] = {"organisation": "other", "principal": "p", "role": "partner"}
    assert not Envelope.from_dict(doc).verifies()
    assert isinstance(Envelope.from_dict(env.to_dict()).actor, Actor)


def test_registering_a_float_field_is_refused_because_hashes_must_be_reproducible() -> None:
    registry = EventRegistry()

    class Measured(DomainEvent, aggregate="x"):
        seconds: float

    with pytest.raises(TypeError, match="not float"):
        registry.register(Measured)


def test_a_personal_field_must_default_to_none_so_erasure_can_blank_it() -> None:
    registry = EventRegistry()

    class Named(DomainEvent, aggregate="x"):
        name: Annotated[str, PERSONAL]

    with pytest.raises(TypeError, match="default to None"):
        registry.register(Named)


def test_personal_fields_are_declared_once_on_the_model() -> None:
    registry = EventRegistry()

    class Contacted(DomainEvent, aggregate="x"):
        channel: str
        phone: Annotated[str | None, PERSONAL] = None

    registry.register(Contacted)
    assert registry.personal_fields("Contacted") == {"phone"}


def test_upcasters_chain_from_v1_through_v3_and_a_missing_step_is_an_error() -> None:
    registry = EventRegistry()

    class V3(DomainEvent, aggregate="x", event_type="Grown", version=3):
        a: str
        b: str
        c: str

    registry.register(V3)

    @registry.upcaster("Grown", from_version=1)
    def one_to_two(p: dict[str, Any]) -> dict[str, Any]:
        return {**p, "b": "from-v1"}

    with pytest.raises(UnknownEventError, match="no upcaster"):
        registry.decode("Grown", 1, {"a": "x"})

    @registry.upcaster("Grown", from_version=2)
    def two_to_three(p: dict[str, Any]) -> dict[str, Any]:
        return {**p, "c": "from-v2"}

    assert registry.decode("Grown", 1, {"a": "x"}) == V3(a="x", b="from-v1", c="from-v2")
    assert registry.decode("Grown", 3, {"a": "1", "b": "2", "c": "3"}).c == "3"  # type: ignore[attr-defined]
    with pytest.raises(UnknownEventError, match="newer"):
        registry.decode("Grown", 4, {})


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert [u.bytes[:6] for u in ids] == sorted(u.bytes[:6] for u in ids)


def test_case_references_read_aloud_are_accepted_as_people_type_them() -> None:
    reference = new_case_reference()
    assert len(reference) == 14 and reference.count("-") == 2
    assert normalise_case_reference(reference.lower().replace("-", " ")) == reference
    assert normalise_case_reference("ko1l-2345-6789") == "K011-2345-6789"
    with pytest.raises(ValueError, match="12 letters"):
        normalise_case_reference("K7Q4-9XMP")


def test_the_event_type_is_the_class_name_and_the_aggregate_a_class_keyword() -> None:
    class Noted(DomainEvent, aggregate="note"):
        text: str

    assert (Noted.event_type, Noted.aggregate, Noted.version) == ("Noted", "note", 1)
    assert [s.name for s in Noted.streams] == ["NCII"]
    assert EventRegistry(Noted).decode("Noted", 1, {"text": "t"}) == Noted(text="t")


def test_an_event_without_an_aggregate_is_refused() -> None:
    class Homeless(DomainEvent):
        text: str

    with pytest.raises(TypeError, match="aggregate"):
        EventRegistry(Homeless)


def test_two_classes_for_one_event_type_are_refused_even_from_the_same_module() -> None:
    def define() -> type[DomainEvent]:
        class Twice(DomainEvent, aggregate="x"):
            pass

        return Twice

    first, second = define(), define()
    assert first.__qualname__ == second.__qualname__
    EventRegistry(first, first)  # the same class twice is one contract
    with pytest.raises(ValueError, match="registered twice"):
        EventRegistry(first, second)


def test_a_registry_knows_only_the_events_it_was_built_with() -> None:
    class Known(DomainEvent, aggregate="x"):
        pass

    class Other(DomainEvent, aggregate="x"):
        pass

    registry = EventRegistry(Known)
    assert registry.is_known("Known") and not registry.is_known("Other")
    with pytest.raises(UnknownEventError):
        registry.decode("Other", 1, {})
