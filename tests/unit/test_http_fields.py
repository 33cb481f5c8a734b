"""The field types request bodies share (ncii_events.http.fields): what each accepts, what it
hands on, and that a refusal says what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from ncii_events.http.fields import (
    CLOCK_SKEW,
    EARLIEST,
    Hex64,
    PastTime,
    RequestBody,
    WebAddress,
    utc_text,
)
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


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",  # converting this to UTC overflows
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T13:59:59+14:00",
    ],
)
def test_a_time_before_2000_is_refused_saying_so_without_overflowing(when: str) -> None:
    with pytest.raises(ValidationError, match="on or after 2000-01-01"):
        Body.model_validate({"at": when})


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00"])
def test_a_time_at_the_end_of_the_calendar_is_refused_as_future_without_overflowing(
    when: str,
) -> None:
    with pytest.raises(ValidationError, match="must not be in the future"):
        Body.model_validate({"at": when})


def test_the_first_accepted_time_is_2000_in_any_offset_and_handed_on_in_utc() -> None:
    assert Body.model_validate({"at": "2000-01-01T14:00:00+14:00"}).at == EARLIEST
    assert utc_text(EARLIEST) == "2000-01-01T00:00:00.000000Z"


def test_utc_text_writes_four_digit_years_so_every_time_it_writes_reads_back() -> None:
    early = datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert utc_text(early) == "0999-01-02T03:04:05.000000Z"
    assert datetime.fromisoformat(utc_text(early)) == early


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
