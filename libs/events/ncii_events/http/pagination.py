"""Opaque page cursors: what a list endpoint returns as ``next_cursor`` and takes back."""

from __future__ import annotations

import base64
import json
from typing import Any

from ncii_events.envelope import canonical_json
from ncii_events.http.problems import Problem


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(canonical_json(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        raise Problem(422, "Invalid cursor", "cursor is not one this API returned") from None
    if not isinstance(value, dict):
        raise Problem(422, "Invalid cursor", "cursor is not one this API returned")
    return value
