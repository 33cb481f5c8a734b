"""Referral's aggregates of a case as referral's own domain folds them, published for auditors
(decision 52; the art. 7 report and the guidance since decision 56): pure (the contracts'
events in, JSON values out), found by the audit service through the ``ncii.folds`` entry
points, which import nothing else of referral's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.audit import plain_state

from ncii_referral.domain import MandatoryReport, Referral, ticked_guidance


def referral(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """``Referral.replay``."""
    folded = Referral.replay(history)
    return None if folded is None else plain_state(folded)


def mandatory_report(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """``MandatoryReport.replay``, with the local authority it goes to."""
    folded = MandatoryReport.replay(history)
    if folded is None:
        return None
    return {**plain_state(folded), "authority": folded.authority}


def guidance(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """The guidance items ticked and when (the checklist itself follows from the case's facts,
    which are intake's)."""
    ticked = ticked_guidance(history)
    return {"ticked": plain_state(ticked)} if ticked else None
