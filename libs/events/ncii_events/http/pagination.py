"""Opaque page cursors: what a list endpoint returns as ``next_cursor`` and takes back."""

from __future__ import annotations

import base64
import json
from typing import Any

from ncii_events.envelope import canonical_json
from ncii_events.http.problems import Problem

_INT64 = range(-(2**63), 2**63)
_MAX_TEXT = 100
"""Longer than any value a cursor of ours holds (a time, an id)."""


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(canonical_json(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        raise Problem(422, "Invalid cursor", "cursor is not one this API returned") from None
    if not isinstance(value, dict) or not all(map(_fits_a_column, value.values())):
        raise Problem(422, "Invalid cursor", "cursor is not one this API returned")
    return value


def _fits_a_column(value: object) -> bool:
    """Whether a cursor value is what ours hold and every database takes as a parameter: an
    integer in 64 bits, or short text without NUL. A cursor is the caller's text: 2**70 was a
    500 (OverflowError, DBAPIError), a NUL one on PostgreSQL (security review F15)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value in _INT64
    if isinstance(value, str):
        return len(value) <= _MAX_TEXT and "\x00" not in value
    return False
