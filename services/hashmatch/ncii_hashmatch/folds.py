"""Hashmatch's aggregates of a case as hashmatch's own domain folds them, published for
auditors (decisions 52 and 56): pure (the contracts' events in, JSON values out), found by the
audit service through the ``ncii.folds`` entry points, which import nothing else of
hashmatch's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.audit import plain_state

from ncii_hashmatch.domain import CaseBanking, CaseMatch


def banking(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """``CaseBanking.replay``, with how many of the case's hashes still match."""
    folded = CaseBanking.replay(history)
    if folded is None:
        return None
    return {**plain_state(folded), "matchable": folded.matchable}


def match(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """``CaseMatch.replay``."""
    folded = CaseMatch.replay(history)
    return None if folded is None else plain_state(folded)
