"""How the event store talks to NATS: one small interface, two implementations.

- ``stock``: nats-py's public API only (``request``, ``subscribe``, ``publish``).
- ``fast``: the quarantined module that reaches into nats-py's private methods (a parser that
  hands messages straight to plain functions, prebuilt header blocks, one reply inbox without a
  future, timer and task per request). Nothing else in the code base touches nats-py internals.

``NCII_NATS_TRANSPORT`` chooses which client ``connect`` makes; the store follows the client it is
given (``transport_for``).
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Callable
from typing import Literal, Protocol

from nats.aio.client import Client

from ncii_events.settings import Settings

TransportName = Literal["stock", "fast"]
TRANSPORTS: tuple[TransportName, ...] = ("stock", "fast")

MAX_BATCHES_IN_FLIGHT = 32
"""Atomic batches this process keeps open at once: the server refuses more than 50 per stream."""

OnStored = Callable[[int, bytes], None]
"""Called with a stored message's stream sequence and data, as Direct Get replies arrive."""


class Transport(Protocol):
    """What the event store needs of a NATS connection."""

    batch_slot: asyncio.Semaphore
    """Held while an atomic batch is open on this connection."""

    async def request(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float
    ) -> bytes:
        """The reply's data. Raises nats-py's ``TimeoutError`` when none comes in time and
        ``NoStreamResponseError`` when no stream takes the subject (as ``js.publish`` does)."""
        ...

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        """A message without a reply subject (the leading messages of an atomic batch)."""
        ...

    async def direct_get(
        self, stream: str, request: bytes, on_stored: OnStored, timeout: float
    ) -> int:
        """One batched Direct Get: ``on_stored`` for each message, then the ``Nats-Num-Pending``
        of the last one (0 when none). Ends on the server's end-of-batch or not-found status;
        another status raises ``APIError``, silence for ``timeout`` seconds ``TimeoutError``."""
        ...


_TRANSPORTS: weakref.WeakKeyDictionary[Client, Transport] = weakref.WeakKeyDictionary()


def transport_for(nc: Client) -> Transport:
    """The transport of this connection (one per connection: it holds the reply inbox)."""
    transport = _TRANSPORTS.get(nc)
    if transport is None:
        from ncii_events.transport.fast import FastTransport, NciiNatsClient
        from ncii_events.transport.stock import StockTransport

        transport = FastTransport(nc) if isinstance(nc, NciiNatsClient) else StockTransport(nc)
        _TRANSPORTS[nc] = transport
    return transport


def inbox_prefix(user: str | None) -> str:
    """Where a user's replies arrive: its own prefix, so that its NATS permissions can let it
    read its own replies and nobody else's (decision 22)."""
    return f"_INBOX_{user}" if user else "_INBOX"


async def connect(
    url: str,
    *,
    name: str,
    user: str | None = None,
    password: str | None = None,
    transport: TransportName | None = None,
) -> Client:
    """A NATS connection for the chosen transport (default: the ``NCII_NATS_TRANSPORT`` setting):
    a plain nats-py ``Client`` for ``stock``, its subclass for ``fast``. With
    ``NCII_NATS_CA_FILE`` the server's certificate is checked against that CA (a private CA
    signs the cluster's: deploy/nats/cluster)."""
    settings = Settings()
    chosen = transport or settings.nats_transport
    ca_file = settings.nats_ca_file
    if chosen == "fast":
        from ncii_events.transport.fast import NciiNatsClient

        nc: Client = NciiNatsClient()
    elif chosen == "stock":
        nc = Client()
    else:  # pragma: no cover - the setting is a Literal
        raise ValueError(f"unknown NATS transport {chosen!r}")
    await nc.connect(
        servers=[url],
        name=name,
        user=user,
        password=password,
        inbox_prefix=inbox_prefix(user),
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
        tls=ssl.create_default_context(cafile=ca_file) if ca_file else None,
    )
    return nc
