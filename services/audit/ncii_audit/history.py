"""A case's history as an auditor reads it: every event of the case (every service's aggregates,
log order), who wrote it, when, why (correlation, causation), its payload, and the verdict of
the hash chain and the signature on it. Pure: the events come in, nothing is read or written.

The as-of view is folded here, from the history, by the audit side (decision 37): services do
not import one another, and intake's domain is intake's to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ncii_events.audit import ChainVerifier, SignaturePolicy
from ncii_events.envelope import Actor
from ncii_events.store import RecordedEvent

OK = "ok"
UNCHECKED = "hash and link ok; signature not checked: no public keys configured"
"""Never a bare ``ok`` without the signature: a reader must not take an unchecked event for a
verified one."""
UNSIGNED = "unsigned (written before signing began)"


@dataclass(slots=True)
class Entry:
    """One event of the case, as the history shows it. Slots, not frozen: a replay makes a
    thousand of them, and a frozen dataclass sets each of 17 fields through
    ``object.__setattr__``."""

    position: int
    """1, 2, 3, ... in the case (not the stream's sequence: decision 27, F18)."""
    seq: int
    event_id: str
    type: str
    schema_version: int
    aggregate: str
    aggregate_id: str
    occurred_at: str
    actor: dict[str, str]
    correlation_id: str
    causation_id: str
    signer: str | None
    key_id: str | None
    hash: str
    prev_hash: str
    check: str
    """``ok``, ``unsigned ...`` (legacy) or why the event is bad."""
    payload: dict[str, Any]
    personal: dict[str, str] = field(default_factory=dict)
    """Personal field -> ``withheld`` (not asked for), ``erased`` (key destroyed), ``shown``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "event_id": self.event_id,
            "type": self.type,
            "schema_version": self.schema_version,
            "aggregate": self.aggregate,
            "aggregate_id": self.aggregate_id,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "signer": self.signer,
            "key_id": self.key_id,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
            "check": self.check,
            "payload": self.payload,
            "personal": self.personal,
        }


@dataclass(frozen=True)
class CaseHistory:
    case_id: str
    entries: list[Entry]
    first_break: str | None
    """The first bad event of the case, named (``None``: every link and signature holds)."""
    verified: int
    bad: int
    as_of: str | None = None
    signatures_checked: bool = True
    domain: list[dict[str, Any]] | None = None
    """With ``as_of``: the aggregates folded by their own services' domain code (decision 52,
    ``ncii_audit.folds``)."""

    @property
    def ok(self) -> bool:
        return self.first_break is None

    def summary(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "events": len(self.entries),
            "verified": self.verified,
            "bad": self.bad,
            "first_break": self.first_break,
            "signatures_checked": self.signatures_checked,
            "as_of": self.as_of,
        }


def _payload(recorded: RecordedEvent) -> dict[str, Any]:
    """The payload as JSON values: the decoded event's (upcast to the current version, personal
    fields as the read left them), or for a type this program does not know, the stored one
    (parsed JSON already: a copy, since the caller blanks personal fields in it)."""
    if recorded.event is None:
        return dict(recorded.envelope.payload)
    return recorded.event.model_dump(mode="json")


def build_history(
    case_id: str,
    events: Sequence[RecordedEvent],
    policy: SignaturePolicy | None,
    *,
    personal_fields: dict[str, frozenset[str]],
    shown: bool,
    as_of: datetime | None = None,
) -> CaseHistory:
    """Every event verified in log order (chain, link, signature, signer for type); with
    ``as_of``, the events that occurred up to then only. A case read alone cannot tell an
    unsigned event after signing began elsewhere from a legacy one (decision 23): the whole-log
    ``ncii audit verify`` can."""
    verifier = ChainVerifier(policy)
    entries: list[Entry] = []
    limit = as_of.astimezone(UTC) if as_of is not None else None
    # the store writes ``occurred_at`` as utc_now does (fixed width, Z): such a time compares
    # as text; any other form is parsed
    limit_text = limit.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if limit is not None else ""
    actors: dict[Actor, dict[str, str]] = {}
    no_fields: frozenset[str] = frozenset()
    for position, recorded in enumerate(events, start=1):
        env = recorded.envelope
        bad_before = verifier.bad
        unsigned_before = verifier.unsigned
        verifier.feed((recorded,))
        if verifier.bad > bad_before:
            check = verifier.last_reason or "bad"
        elif verifier.unsigned > unsigned_before:
            check = UNSIGNED
        else:
            check = OK if policy is not None else UNCHECKED
        if limit is not None and _after(env.occurred_at, limit, limit_text):
            continue
        personal: dict[str, str] = {}
        for name in personal_fields.get(env.type, no_fields):
            if env.payload.get(name) is None:
                continue
            if name in recorded.erased_fields:
                personal[name] = "erased"
            elif name in recorded.withheld_fields or not shown:
                personal[name] = "withheld"
            else:
                personal[name] = "shown"
        payload = _payload(recorded)
        if not shown:
            for name in personal:
                payload[name] = None
        entries.append(
            Entry(
                position=position,
                seq=recorded.seq,
                event_id=env.event_id,
                type=env.type,
                schema_version=env.schema_version,
                aggregate=env.aggregate,
                aggregate_id=env.aggregate_id,
                occurred_at=env.occurred_at,
                actor=actors.get(env.actor) or actors.setdefault(env.actor, _actor(env.actor)),
                correlation_id=env.correlation_id,
                causation_id=env.causation_id,
                signer=env.signer,
                key_id=env.key_id,
                hash=env.hash,
                prev_hash=env.prev_hash,
                check=check,
                payload=payload,
                personal=personal,
            )
        )
    first = verifier.first_break
    named = None
    if first is not None:
        pos = next((e.position for e in entries if e.seq == first.seq), None)
        where = f"event {pos} of the case" if pos is not None else "an event of the case"
        named = f"{where} ({first.type}, event {first.event_id}): {first.reason}"
    return CaseHistory(
        case_id=case_id,
        entries=entries,
        first_break=named,
        verified=verifier.verified,
        bad=verifier.bad,
        as_of=None if limit is None else limit.isoformat().replace("+00:00", "Z"),
        signatures_checked=policy is not None,
    )


def occurred_by(events: Sequence[RecordedEvent], as_of: datetime) -> list[RecordedEvent]:
    """The events that occurred up to ``as_of`` (the rule ``build_history`` cuts by)."""
    limit = as_of.astimezone(UTC)
    limit_text = limit.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [e for e in events if not _after(e.envelope.occurred_at, limit, limit_text)]


def _actor(actor: Actor) -> dict[str, str]:
    return {"organisation": actor.organisation, "principal": actor.principal, "role": actor.role}


def _after(occurred_at: str, limit: datetime, limit_text: str) -> bool:
    if (
        len(occurred_at) == 27 == len(limit_text)
        and occurred_at[-1] == "Z"
        and occurred_at[10] == "T"
    ):
        return occurred_at > limit_text
    return _parse(occurred_at) > limit


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- as of a time: the case as it stood ---------------------------------------------------------


@dataclass
class AggregateState:
    """One aggregate of the case folded from its events: each field's latest value and the
    event that set it; the events' types in order."""

    aggregate: str
    aggregate_id: str
    events: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    set_by: dict[str, int] = field(default_factory=dict)
    last_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "aggregate": self.aggregate,
            "aggregate_id": self.aggregate_id,
            "events": self.events,
            "fields": self.fields,
            "set_by": self.set_by,
            "last_at": self.last_at,
        }


def fold(history: CaseHistory) -> list[AggregateState]:
    """The case's aggregates as the history leaves them (with ``as_of``: as they stood then).
    Every field an event carries overwrites the aggregate's; a rule a service derives from
    them (a status, a deadline) is not restated here (decision 37)."""
    states: dict[tuple[str, str], AggregateState] = {}
    for entry in history.entries:
        key = (entry.aggregate, entry.aggregate_id)
        state = states.get(key)
        if state is None:
            state = states[key] = AggregateState(entry.aggregate, entry.aggregate_id)
        state.events.append(entry.type)
        for name, value in entry.payload.items():
            state.fields[name] = value
            state.set_by[name] = entry.position
        state.last_at = entry.occurred_at
    return list(states.values())
