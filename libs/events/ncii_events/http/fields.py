"""Field types that request bodies of every service share, each with a message that says what
to fix (never an echo of the value)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of our clock a client's "now" may be and still count as the past."""

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""The earliest time a request may carry. Every time in a body is about a case (when it was
learned of, stated, filed, seen): nothing in this domain predates 2000. The floor also keeps every
later step (UTC conversion at a +14:00 offset, the 24-hour clock, ``utc_text``'s four-digit year)
far from ``datetime``'s year-1 limit: a year-1 time was accepted, written, and then could not be
formatted or read back (security review F15)."""

_WEB_ADDRESS = re.compile(r"^https?://[^\s/]+\.[^\s]*$", re.IGNORECASE)


class RequestBody(BaseModel):
    """A request body: unknown fields are refused (so nothing unplanned, like a real name, can
    slip in), and the validated body cannot change afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def not_in_future(value: datetime) -> datetime:
    """The time in UTC, refused when before ``EARLIEST`` or later than now (give or take
    ``CLOCK_SKEW``). Both are compared before converting: comparing aware times cannot overflow,
    converting year 1 at +14:00 (or year 9999 at -14:00) to UTC can."""
    if value < EARLIEST:
        raise ValueError("must be on or after 2000-01-01T00:00:00Z (send UTC)")
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("must not be in the future (send UTC, e.g. 2026-11-24T08:30:00Z)")
    return value.astimezone(UTC)


def web_address(value: str) -> str:
    if not _WEB_ADDRESS.match(value):
        raise ValueError("must be the full web address, starting with https:// or http://")
    return value


def utc_text(value: datetime) -> str:
    """A time as the log writes it: UTC, microseconds, ``Z``. ``isoformat`` because it writes the
    year in four digits; ``strftime("%Y")`` writes year 999 as ``999``, which no parser reads."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


PastTime = Annotated[AwareDatetime, AfterValidator(not_in_future)]
"""A time with its zone, from 2000 on and not in the future; handed on in UTC."""

WebAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2048), AfterValidator(web_address)
]
"""A full http(s) address, trimmed."""

Hex64 = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[0-9a-f]{64}$")
]
"""64 lowercase hex characters (a PDQ hash): one spelling per hash. pydantic checks the pattern
on the value as sent, so upper case and surrounding spaces are refused, not repaired."""

Hex32 = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[0-9a-f]{32}$")
]
"""32 lowercase hex characters (an MD5), as ``Hex64``."""
