"""Verification of the log: what an auditor runs over a case or the whole log.

Every event's hash and its link to the previous event of its aggregate (decision 2) and, with a
``SignaturePolicy``, its signature and whether its signer may write its type (decision 23).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from ncii_events.envelope import GENESIS, Envelope
from ncii_events.signing import PublicKeys
from ncii_events.store import RecordedEvent


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_id: str
    reason: str
    type: str = ""

    def __str__(self) -> str:
        kind = self.type or "unknown type"
        return f"seq {self.seq} ({kind}, event {self.event_id}): {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    checked: int
    aggregates: int
    first_break: ChainBreak | None
    verified: int = 0
    unsigned: int = 0
    bad: int = 0

    @property
    def ok(self) -> bool:
        return self.first_break is None


@dataclass(frozen=True)
class SignaturePolicy:
    """What a signature must satisfy on one stream: made with a configured public key of its
    signer, and that signer one allowed to write the event's type."""

    stream: str
    public_keys: PublicKeys
    allowed: Mapping[str, frozenset[str]]
    """Event type -> signers (``ncii_events.signing.allowed_signers``)."""


class ChainVerifier:
    """Checks events fed in log order, page by page, so a whole log never sits in memory
    (it keeps one hash per aggregate). It goes on after a bad event, to count them all.

    Unsigned events are older than signing (legacy) only while no signed event has been seen
    on the stream: once one has, an unsigned event is a bad one, or a forger would simply leave
    the signature out.
    """

    def __init__(self, signatures: SignaturePolicy | None = None) -> None:
        self.signatures = signatures
        self.last: dict[tuple[str, str, str], str] = {}
        self.checked = 0
        self.verified = 0
        self.unsigned = 0
        self.bad = 0
        self.signed_from: int | None = None
        """The stream position of the first signed event seen."""
        self.first_break: ChainBreak | None = None
        self.last_reason: str | None = None
        """Why the last event fed was bad (``None``: it was not): what a replay shows per event."""

    @property
    def aggregates(self) -> int:
        return len(self.last)

    def report(self) -> ChainReport:
        return ChainReport(
            self.checked,
            self.aggregates,
            self.first_break,
            self.verified,
            self.unsigned,
            self.bad,
        )

    def feed(self, events: Iterable[RecordedEvent]) -> None:
        for recorded in events:
            env = recorded.envelope
            self.checked += 1
            why = self.last_reason = self._why_bad(recorded)
            if why is not None:
                self.mark_bad(recorded.seq, env.event_id, env.type, why)
            # later events were written after this one: they link to its stored hash
            self.last[(env.case_id, env.aggregate, env.aggregate_id)] = env.hash

    def feed_envelopes(self, stored: Iterable[tuple[int, Envelope | None]]) -> None:
        """``feed`` for envelopes as stored (``EventStore.read_envelopes``): ``None`` is an
        event whose bytes are not an envelope."""
        for seq, env in stored:
            if env is None:
                self.checked += 1
                self.mark_bad(seq, "?", "", "unreadable: not an event envelope")
            elif (mistyped := env.mistyped_field()) is not None:
                self.checked += 1
                self.mark_bad(seq, "?", "", f"unreadable: {mistyped} is not of its type")
            else:
                self.feed((RecordedEvent(seq=seq, envelope=env, event=None),))

    def mark_bad(self, seq: int, event_id: str, event_type: str, reason: str) -> None:
        self.bad += 1
        if self.first_break is None:
            self.first_break = ChainBreak(seq, event_id, reason, event_type)

    def _why_bad(self, recorded: RecordedEvent) -> str | None:
        env = recorded.envelope
        if env.computed_hash() != env.hash:
            return "content altered: hash does not match"
        key = (env.case_id, env.aggregate, env.aggregate_id)
        if env.prev_hash != self.last.get(key, GENESIS):
            if key in self.last:
                return "link broken: prev_hash is not the hash of the aggregate's previous event"
            return "link broken: first event of the aggregate does not start from genesis"
        policy = self.signatures
        if policy is None:
            self.verified += 1
            return None
        if env.signature is None and env.signer is None and env.key_id is None:
            if self.signed_from is not None:
                return f"unsigned, though events are signed since seq {self.signed_from}"
            self.unsigned += 1
            return None
        if self.signed_from is None:
            self.signed_from = recorded.seq
        if env.signature is None or env.signer is None or env.key_id is None:
            return "signature incomplete: signer, key_id and signature go together"
        why = policy.public_keys.check(
            policy.stream, env.signer, env.key_id, env.hash, env.signature
        )
        if why is not None:
            return why
        allowed = policy.allowed.get(env.type)
        if allowed is None:
            return f"no signer may write {env.type}: no service emits it"
        if env.signer not in allowed:
            only = ", ".join(sorted(allowed))
            return f"wrong signer: {env.signer} may not write {env.type} (only {only})"
        self.verified += 1
        return None


def verify_chain(
    events: Iterable[RecordedEvent], signatures: SignaturePolicy | None = None
) -> ChainReport:
    """Recompute every hash and every link, in log order; name the first event that fails.

    Each event's ``hash`` must match its content, and its ``prev_hash`` must be the hash of the
    previous event of the same aggregate (the genesis value for the first). With
    ``signatures``, each event must also be signed by a signer allowed to write its type.
    """
    verifier = ChainVerifier(signatures)
    verifier.feed(events)
    return verifier.report()


# -- published folds (decision 52) ---------------------------------------------------------------

FOLDS_GROUP = "ncii.folds"
"""The entry-point group in which a service publishes, per aggregate it owns, its own domain's
fold for auditors: ``fold(case_id, aggregate_id, history) -> dict | None`` with ``history`` the
aggregate's decoded events and their times, oldest first, and the result JSON values
(``plain_state``) including what the service derives from them (a status, a due time)."""


def plain_state(value: Any) -> Any:
    """A domain state as JSON values: dataclasses field by field, sets sorted, tuples as lists,
    contracts' models as their JSON, times as ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_state(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, frozenset | set):
        return sorted((plain_state(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [plain_state(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_state(v) for k, v in value.items()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
