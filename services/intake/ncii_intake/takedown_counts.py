"""What the victim learns of her takedowns: how many places were reported to platforms, how many
are removed, how many still pending, in plain words, never a URL or a platform's name.

A projection of takedown's published events (``ncii_contracts.takedown``; intake imports the
contract, never the service), folded from the case's own events that the victim's status read
loads anyway, so it needs no table: a victim's read is rare and throttled, and the counts are
always as current as the log. Only removals count (a freeze or preserve notice is no location).
"""

from __future__ import annotations

from collections.abc import Sequence

from ncii_contracts.takedown import TakedownOpened
from ncii_events.store import RecordedEvent
from pydantic import BaseModel

from ncii_intake.http.views import VictimView

#: The takedown event that ends it, and how: removed, or ended without a removal.
_ENDS = {
    "ContentRemoved": "removed",
    "TakedownRefused": "not_removed",
    "TakedownCancelled": "not_removed",
    "RequestFulfilled": "not_removed",
}


class TakedownCounts(BaseModel):
    reported: int
    removed: int
    pending: int
    not_removed: int
    summary: str


class VictimStatus(VictimView):
    takedowns: TakedownCounts


def takedown_counts(events: Sequence[RecordedEvent]) -> TakedownCounts:
    ended: dict[str, str] = {}
    removals: list[str] = []
    for recorded in events:
        env = recorded.envelope
        if env.aggregate != "takedown":
            continue
        if isinstance(recorded.event, TakedownOpened):
            if recorded.event.purpose == "removal":
                removals.append(env.aggregate_id)
        elif env.type in _ENDS:
            ended[env.aggregate_id] = _ENDS[env.type]
    reported = len(removals)
    removed = sum(1 for t in removals if ended.get(t) == "removed")
    not_removed = sum(1 for t in removals if ended.get(t) == "not_removed")
    pending = reported - removed - not_removed
    return TakedownCounts(
        reported=reported,
        removed=removed,
        pending=pending,
        not_removed=not_removed,
        summary=_in_words(reported, removed, pending, not_removed),
    )


def _places(n: int) -> str:
    return "1 place" if n == 1 else f"{n} places"


def _in_words(reported: int, removed: int, pending: int, not_removed: int) -> str:
    if reported == 0:
        return "No place has been reported to a platform yet."
    parts = [f"{removed} removed", f"{pending} still waiting for the platform"]
    if not_removed:
        parts.append(f"{not_removed} not removed (your case worker can tell you more)")
    verb = "was" if reported == 1 else "were"
    return f"{_places(reported)} {verb} reported to platforms: " + ", ".join(parts) + "."


def victim_status(view: VictimView, events: Sequence[RecordedEvent]) -> VictimStatus:
    return VictimStatus(**view.model_dump(), takedowns=takedown_counts(events))
