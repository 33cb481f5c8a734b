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


class ChainVerifier:
    """Checks events fed in log order, page by page, so a whole log never sits in memory
    (it keeps one hash per aggregate)."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str, str], str] = {}
        self.checked = 0
        self.first_break: ChainBreak | None = None

    @property
    def aggregates(self) -> int:
        return len(self.last)

    def feed(self, events: Iterable[RecordedEvent]) -> None:
        for recorded in events:
            if self.first_break is not None:
                return
            env = recorded.envelope
            key = (env.case_id, env.aggregate, env.aggregate_id)
            self.checked += 1
            if env.computed_hash() != env.hash:
                self.first_break = ChainBreak(
                    recorded.seq, env.event_id, "content altered: hash does not match"
                )
                return
            if env.prev_hash != self.last.get(key, GENESIS):
                reason = (
                    "link broken: prev_hash is not the hash of the aggregate's previous event"
                    if key in self.last
                    else "link broken: first event of the aggregate does not start from genesis"
                )
                self.first_break = ChainBreak(recorded.seq, env.event_id, reason)
                return
            self.last[key] = env.hash


def verify_chain(events: Iterable[RecordedEvent]) -> ChainReport:
    """Recompute every hash and every link, in log order; name the first event that fails.

    Each event's ``hash`` must match its content, and its ``prev_hash`` must be the hash of the
    previous event of the same aggregate (the genesis value for the first).
    """
    verifier = ChainVerifier()
    verifier.feed(events)
    return ChainReport(verifier.checked, verifier.aggregates, verifier.first_break)
