"""Field types that request bodies of every service share, each with a message that says what
to fix (never an echo of the value)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of our clock a client's "now" may be and still count as the past."""

_WEB_ADDRESS = re.compile(r"^https?://[^\s/]+\.[^\s]*$", re.IGNORECASE)


class RequestBody(BaseModel):
    """A request body: unknown fields are refused (so nothing unplanned, like a real name, can
    slip in), and the validated body cannot change afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def not_in_future(value: datetime) -> datetime:
    """The time in UTC, refused when later than now (give or take ``CLOCK_SKEW``)."""
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("must not be in the future (send UTC, e.g. 2026-11-24T08:30:00Z)")
    return value.astimezone(UTC)


def web_address(value: str) -> str:
    if not _WEB_ADDRESS.match(value):
        raise ValueError("must be the full web address, starting with https:// or http://")
    return value


def utc_text(value: datetime) -> str:
    """A time as the log writes it: UTC, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


PastTime = Annotated[AwareDatetime, AfterValidator(not_in_future)]
"""A time with its zone, not in the future; handed on in UTC."""

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
