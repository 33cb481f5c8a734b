"""Verification of the hash chains: what an auditor runs over a case or the whole log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ncii_events.envelope import GENESIS
from ncii_events.store import RecordedEvent


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    event_id: str
    reason: str


@dataclass(frozen=True)
class ChainReport:
    checked: int
    aggregates: int
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def verify_chain(events: Iterable[RecordedEvent]) -> ChainReport:
    """Recompute every hash and every link, in log order; name the first event that fails.

    Each event's ``hash`` must match its content, and its ``prev_hash`` must be the hash of the
    previous event of the same aggregate (the genesis value for the first).
    """
    last: dict[tuple[str, str, str], str] = {}
    checked = 0
    for recorded in events:
        env = recorded.envelope
        key = (env.case_id, env.aggregate, env.aggregate_id)
        checked += 1
        if env.computed_hash() != env.hash:
            return ChainReport(
                checked,
                len(last),
                ChainBreak(recorded.seq, env.event_id, "content altered: hash does not match"),
            )
        expected_prev = last.get(key, GENESIS)
        if env.prev_hash != expected_prev:
            reason = (
                "link broken: prev_hash is not the hash of the aggregate's previous event"
                if key in last
                else "link broken: first event of the aggregate does not start from genesis"
            )
            return ChainReport(checked, len(last), ChainBreak(recorded.seq, env.event_id, reason))
        last[key] = env.hash
    return ChainReport(checked, len(last), None)
