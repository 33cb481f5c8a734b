"""Whether spans are exported.

Without an exporter spans are not recorded, yet starting one is not free (decision 9 has the
figure): the log's per-event paths (an append) start theirs only when spans go somewhere. Trace
ids still reach events and logs through the caller's span (the HTTP request's).
"""

from __future__ import annotations

_exporting = False


def exporting() -> bool:
    return _exporting


def set_exporting(on: bool) -> None:
    global _exporting
    _exporting = on
