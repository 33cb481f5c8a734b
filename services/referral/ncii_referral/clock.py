"""The one clock of the referral service: the art. 7 report clocks, the overdue sweep and the
times commands record all read it, so tests move time instead of sleeping.

``NCII_REFERRAL_CLOCK_OFFSET_SECONDS`` moves a process's clock (tests only: a restart across a
deadline is the process stopped, the offset moved, the process started again; decision 0033).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, offset_seconds: int = 0) -> None:
        self.offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset
