"""One way to connect to NATS (``connect``), for every program of the system.

The event store's transports live in ``ncii_events.transport``; the names below stay importable
from here for the code that still uses the fast client's direct paths (the projection runner's
pull consumer).
"""

from __future__ import annotations

from ncii_events.transport import TRANSPORTS, TransportName, connect
from ncii_events.transport.fast import DirectHandler, NciiNatsClient, wire
from ncii_events.transport.headers import (
    header_block,
    header_value,
    header_value_is_safe,
    parse_header_lines,
    status_description,
    status_of,
)

__all__ = [
    "TRANSPORTS",
    "DirectHandler",
    "NciiNatsClient",
    "TransportName",
    "connect",
    "header_block",
    "header_value",
    "header_value_is_safe",
    "parse_header_lines",
    "status_description",
    "status_of",
    "wire",
]
