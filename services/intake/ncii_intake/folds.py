"""The case as intake's own domain folds it, published for auditors (decision 52): pure (the
contracts' events in, JSON values out), found by the audit service through the ``ncii.folds``
entry point, which imports nothing else of intake's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.audit import plain_state

from ncii_intake.domain import Case


def case(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """``Case.replay``, with the rules intake derives from the facts: the status and whether
    the case may still be acted on (the minor's art. 7 report is referral's, decision 36)."""
    folded = Case.replay(case_id, history)
    if folded is None:
        return None
    return {
        **plain_state(folded),
        "status": folded.status,
        "is_minor": folded.is_minor,
        "may_act": folded.may_act,
    }
