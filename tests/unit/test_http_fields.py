"""The field types request bodies share (ncii_events.http.fields): what each accepts, what it
hands on, and that a refusal says what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from ncii_events.http.fields import CLOCK_SKEW, Hex64, PastTime, RequestBody, WebAddress, utc_text
from pydantic import ValidationError


class Body(RequestBody):
    at: PastTime
    url: WebAddress | None = None
    hash: Hex64 | None = None


def test_a_past_time_is_handed_on_in_utc_and_a_future_one_is_refused() -> None:
    local = datetime(2026, 11, 24, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    assert Body(at=local).at == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    within_skew = datetime.now(UTC) + CLOCK_SKEW - timedelta(seconds=30)
    assert Body(at=within_skew).at == within_skew
    with pytest.raises(ValidationError, match="must not be in the future"):
        Body(at=datetime.now(UTC) + CLOCK_SKEW + timedelta(minutes=1))
    with pytest.raises(ValidationError, match="timezone"):
        Body.model_validate({"at": "2026-11-24T08:30:00"})


def test_a_web_address_is_trimmed_and_must_be_a_full_http_address() -> None:
    assert Body(at=datetime(2026, 1, 1, tzinfo=UTC), url=" https://x.example/a ").url == (
        "https://x.example/a"
    )
    for wrong in ("x.example/a", "ftp://x.example", "https://localhost"):
        with pytest.raises(ValidationError, match="full web address"):
            Body(at=datetime(2026, 1, 1, tzinfo=UTC), url=wrong)


def test_hex_is_lower_case_only_so_one_hash_has_one_spelling() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert Body(at=at, hash="ab" * 32).hash == "ab" * 32
    for wrong in ("AB" * 32, "ab" * 31, "xy" * 32):
        with pytest.raises(ValidationError, match="pattern"):
            Body(at=at, hash=wrong)


def test_a_request_body_refuses_unknown_fields_and_cannot_change() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="Extra inputs"):
        Body.model_validate({"at": at, "name": "someone"})
    body = Body(at=at)
    with pytest.raises(ValidationError):
        body.at = at  # type: ignore[misc]


def test_utc_text_is_the_logs_time_format() -> None:
    local = datetime(2026, 11, 24, 10, 30, 1, 5, tzinfo=timezone(timedelta(hours=2)))
    assert utc_text(local) == "2026-11-24T08:30:01.000005Z"
