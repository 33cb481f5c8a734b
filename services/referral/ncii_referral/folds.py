"""A referral as referral's own domain folds it, published for auditors (decision 52): pure
(the contracts' events in, JSON values out), found by the audit service through the
``ncii.folds`` entry point, which imports nothing else of referral's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.audit import plain_state

from ncii_referral.domain import Referral


def referral(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """``Referral.replay``."""
    folded = Referral.replay(history)
    return None if folded is None else plain_state(folded)
