"""The streams of the log and how their subjects are built: part of every event's contract, so
readers and the AsyncAPI document know where an event is published (no NATS here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSpec:
    """A stream and how its subjects are built. ``per_case`` streams put the case id first."""

    name: str
    prefix: str
    per_case: bool

    def subject(self, case_id: str, aggregate: str, aggregate_id: str, event_type: str) -> str:
        if self.per_case:
            return f"{self.prefix}.{case_id}.{aggregate}.{aggregate_id}.{event_type}"
        return f"{self.prefix}.{aggregate}.{aggregate_id}.{event_type}"

    def aggregate_filter(self, case_id: str, aggregate: str, aggregate_id: str) -> str:
        return self.subject(case_id, aggregate, aggregate_id, "*")

    def case_filter(self, case_id: str) -> str:
        return f"{self.prefix}.{case_id}.>" if self.per_case else f"{self.prefix}.>"

    @property
    def all_subjects(self) -> str:
        return f"{self.prefix}.>"


CASES = StreamSpec(name="NCII", prefix="ncii", per_case=True)
REFERENCE = StreamSpec(name="NCII_REF", prefix="nciiref", per_case=False)
REFERENCE_CASE = "-"
"""The case id of reference events (principals, organisations, banks): they belong to no case."""
