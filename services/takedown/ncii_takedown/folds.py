"""A takedown as takedown's own domain folds it, published for auditors (decision 52): pure (the
contracts' events in, JSON values out), found by the audit service through the ``ncii.folds``
entry point, which imports nothing else of takedown's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_events.audit import plain_state

from ncii_takedown.domain import Takedown


def takedown(
    case_id: str, aggregate_id: str, history: Sequence[tuple[DomainEvent, str]]
) -> dict[str, Any] | None:
    """``Takedown.replay``, with whether the platform was told."""
    folded = Takedown.replay(history)
    if folded is None:
        return None
    return {**plain_state(folded), "platform_was_told": folded.platform_was_told}
