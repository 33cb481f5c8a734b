"""The case as of a time, folded by each service's own domain code (decision 52): the folds the
services publish in the ``ncii.folds`` entry points (aggregate -> ``fold(case_id,
aggregate_id, history)``), found as the CLI finds the services' specs. The auditor calls no
service and imports nothing else of theirs; an aggregate no service publishes a fold for is
shown by the generic fold of ``history.fold`` only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.audit import FOLDS_GROUP
from ncii_events.store import RecordedEvent

Fold = Callable[[str, str, Sequence[tuple[DomainEvent, str]]], "dict[str, Any] | None"]


@dataclass(frozen=True)
class PublishedFold:
    service: str
    fold: Fold


@cache
def published_folds() -> dict[str, PublishedFold]:
    """Aggregate -> the fold its service publishes (loaded once per process)."""
    found: dict[str, PublishedFold] = {}
    for point in entry_points(group=FOLDS_GROUP):
        service = point.dist.name.removeprefix("ncii-") if point.dist else point.module
        found[point.name] = PublishedFold(service, point.load())
    return found


def domain_states(
    case_id: str, events: Sequence[RecordedEvent], folds: dict[str, PublishedFold]
) -> list[dict[str, Any]]:
    """Each aggregate of ``events`` (already cut at the as-of time) that has a published fold,
    folded by it: ``{aggregate, aggregate_id, folded_by, state}``; ``state`` is None before the
    aggregate's first event in the fold's sense (a case before it was opened). A fold that
    fails is named with the error's type only (the state may hold personal fields)."""
    groups: dict[tuple[str, str], list[tuple[DomainEvent, str]]] = {}
    for recorded in events:
        env = recorded.envelope
        if recorded.event is not None and env.aggregate in folds:
            key = (env.aggregate, env.aggregate_id)
            groups.setdefault(key, []).append((recorded.event, env.occurred_at))
    out: list[dict[str, Any]] = []
    for (aggregate, aggregate_id), history in groups.items():
        published = folds[aggregate]
        entry: dict[str, Any] = {
            "aggregate": aggregate,
            "aggregate_id": aggregate_id,
            "folded_by": published.service,
        }
        try:
            entry["state"] = published.fold(case_id, aggregate_id, history)
        except Exception as exc:  # another service's code: its failure is shown, not raised
            entry["state"] = None
            entry["error"] = f"{published.service}'s fold failed ({type(exc).__name__})"
        out.append(entry)
    return out
