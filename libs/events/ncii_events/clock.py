"""The one clock of a service that keeps legal deadlines (takedown, referral): deadlines,
overdue sweeps, delivery attempts and the times commands record all read it, so tests move
time instead of sleeping.

``NCII_<SERVICE>_CLOCK_OFFSET_SECONDS`` moves a process's clock (tests only: a restart across a
deadline is the process stopped, the offset moved, the process started again; decisions 0030,
0033).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, offset_seconds: int = 0) -> None:
        self.offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset
