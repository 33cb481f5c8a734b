"""The event envelope, its canonical encoding and its hash.

Every event in the log is one envelope. ``hash`` is SHA-256 over the canonical encoding of the
envelope without ``hash``; ``prev_hash`` is the hash of the previous event of the same aggregate,
so an auditor can recompute every link. Personal fields sit in ``payload`` already encrypted, so
the chain still verifies after a case's key is destroyed.

``signer`` and ``key_id`` say who wrote the event and are covered by the hash; ``signature`` is
that signer's Ed25519 signature of the hash (``ncii_events.signing``), so it is not (decision
23). Events written before signing have none of the three, and hash exactly as they did.

Envelopes are plain frozen dataclasses: the store builds thousands per read, and their integrity
is checked by the hash, not by a schema.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import orjson

GENESIS = "0" * 64
SIGNATURE_FIELDS = ("signer", "key_id", "signature")
_ACTORS: dict[tuple[Any, Any, Any], Actor] = {}
"""Actors seen in envelopes read back: frozen, so one object serves every event of an actor."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: an organisation, a principal in it, and the role it acted in."""

    organisation: str
    principal: str
    role: str


_TEXT_FIELDS = (
    "event_id",
    "type",
    "case_id",
    "aggregate",
    "aggregate_id",
    "occurred_at",
    "correlation_id",
    "causation_id",
    "prev_hash",
    "hash",
)
_OPTIONAL_TEXT_FIELDS = ("traceparent", "signer", "key_id", "signature")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as stored in the log. ``payload`` holds personal fields in encrypted form."""

    event_id: str
    type: str
    schema_version: int
    case_id: str
    aggregate: str
    aggregate_id: str
    occurred_at: str
    actor: Actor
    correlation_id: str
    causation_id: str
    traceparent: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    signer: str | None = None
    key_id: str | None = None
    signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in SIGNATURE_FIELDS:  # an unsigned (older) event has none of them
            if doc[name] is None:
                del doc[name]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Envelope:
        fields = dict(doc)
        fields["actor"] = Actor(**fields["actor"])
        return cls(**fields)

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """An envelope from its stored bytes (one parse, no copy of the parsed document)."""
        doc = orjson.loads(data)
        actor = doc["actor"]
        key = (actor.get("organisation"), actor.get("principal"), actor.get("role"))
        known = _ACTORS.get(key)
        if known is None or len(actor) != 3:
            known = Actor(**actor)
            if len(_ACTORS) < 10_000:  # a case's events come from a handful of actors
                _ACTORS[key] = known
        doc["actor"] = known
        names = doc.keys()
        if cls is Envelope and names >= _REQUIRED and names <= _FIELDS:
            # Each slot set directly: the frozen dataclass's __init__ goes through
            # object.__setattr__ per field, ~4 µs of an auditor's ~25 µs per event. The same
            # object (a missing signature field is None, its default); anything else, or a
            # name that is not a field, goes to __init__, which says what is wrong.
            env = _new(Envelope)
            get = doc.get
            for set_slot, name in _SLOTS:
                set_slot(env, get(name))
            return env
        return cls(**doc)

    def mistyped_field(self) -> str | None:
        """The first field whose stored value is not of its type (``from_json`` does not check:
        the log's own writers never store one), for verifiers reading bytes that may have been
        tampered with: such an event is unreadable, not a crash."""
        for name in _TEXT_FIELDS:
            if type(getattr(self, name)) is not str:
                return name
        for name in _OPTIONAL_TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and type(value) is not str:
                return name
        if type(self.schema_version) is not int:
            return "schema_version"
        if type(self.payload) is not dict:
            return "payload"
        return None

    def computed_hash(self) -> str:
        # Built by hand, not with to_dict: asdict deep-copies the payload, which was most of
        # an auditor's replay (the encoding only reads it). Same fields as to_dict without
        # ``hash`` and ``signature`` (the signature is made from the hash).
        actor = self.actor
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "case_id": self.case_id,
            "aggregate": self.aggregate,
            "aggregate_id": self.aggregate_id,
            "occurred_at": self.occurred_at,
            "actor": {
                "organisation": actor.organisation,
                "principal": actor.principal,
                "role": actor.role,
            },
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "traceparent": self.traceparent,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }
        if self.signer is not None:
            body["signer"] = self.signer
        if self.key_id is not None:
            body["key_id"] = self.key_id
        return envelope_hash(body)

    def verifies(self) -> bool:
        return self.computed_hash() == self.hash


_new = object.__new__
_FIELDS = frozenset(f.name for f in fields(Envelope))
_REQUIRED = frozenset(
    f.name for f in fields(Envelope) if f.default is MISSING and f.default_factory is MISSING
)
_SLOTS = tuple((getattr(Envelope, f.name).__set__, f.name) for f in fields(Envelope))
"""Each field's slot setter: ``from_json`` fills a new envelope without ``__init__``."""


_CANONICAL = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


class NotCanonicalError(ValueError):
    """A value the log cannot store exactly (an integer beyond 64 bits)."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8: one byte string per value.

    Payloads hold strings, integers, booleans, lists and objects only (floats are refused when an
    event is registered), so this is the JSON Canonicalization Scheme (RFC 8785) for our data.
    orjson writes exactly what ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes (a unit test compares them), several times faster; integers
    beyond 64 bits, which orjson refuses, are written by ``json``.
    """
    try:
        return orjson.dumps(value, option=_CANONICAL)
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_event_json(value: Any) -> bytes:
    """``canonical_json`` for what goes into the log, which is read back with orjson: integers
    beyond 64 bits would come back as floats and break the hash chain, so they are refused."""
    try:
        return orjson.dumps(value, option=_CANONICAL)
    except orjson.JSONEncodeError as exc:
        raise NotCanonicalError(f"an event cannot hold this value: {exc}") from None


def envelope_hash(envelope_without_hash: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_event_json(envelope_without_hash)).hexdigest()


_last_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def utc_now() -> str:
    """RFC 3339 UTC with ``Z`` and microseconds."""
    global _last_second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    last = _last_second  # one read: another thread may replace it meanwhile
    if last[0] != seconds:  # formatting the date and time is most of the cost
        last = _last_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{last[1]}.{micros:06d}Z"
