"""Event timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from ncii_events.envelope import utc_now


def test_utc_now_is_rfc_3339_utc_with_microseconds_and_is_now() -> None:
    first = utc_now()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", first), first
    parsed = datetime.strptime(first, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(parsed - datetime.now(UTC)) < timedelta(seconds=1)
    assert first <= utc_now()
