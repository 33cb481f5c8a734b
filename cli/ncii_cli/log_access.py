"""How CLI commands reach the log: NCII_NATS_URL, the running embedded server, or (when the
system is not running) the embedded server started just for the command, on the same data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from ncii_contracts import ALL_EVENTS
from ncii_events.crypto import MasterKey
from ncii_events.embedded import EmbeddedNats, port_is_free
from ncii_events.keys import NatsCaseKeys
from ncii_events.registry import EventRegistry
from ncii_events.settings import Settings
from ncii_events.signing import OPERATOR, own_signing_key
from ncii_events.store import EventStore
from ncii_events.stream import CASES, REFERENCE, StreamSpec, ensure_streams
from ncii_events.transport import connect

from ncii_cli.runner import start_embedded_nats


@dataclass
class LogAccess:
    nc: NATS
    store: EventStore
    ref_store: EventStore
    settings: Settings

    def store_for(self, stream: StreamSpec) -> EventStore:
        return self.ref_store if stream.name == REFERENCE.name else self.store


@asynccontextmanager
async def log_access(*, with_keys: bool = False, signing: bool = False) -> AsyncIterator[LogAccess]:
    """``signing``: the command writes (principals), signed with the operator's key; without
    it the stores only read."""
    settings = Settings()
    # before anything starts: a missing key is the operator's to fix (SigningKeyError says how)
    operator_key = own_signing_key(settings, OPERATOR) if signing else None
    server: EmbeddedNats | None = None
    url = settings.nats_url
    if url is None:
        url = settings.embedded_nats_url()
        if port_is_free(settings.embedded_nats_port()):
            server = start_embedded_nats(settings)
    nc = await connect(
        url, name="ncii-cli", user=settings.nats_user, password=settings.nats_password
    )
    keys: NatsCaseKeys | None = None
    try:
        await ensure_streams(nc, replicas=settings.stream_replicas)
        if with_keys:
            master = (
                MasterKey.from_base64(settings.master_key)
                if settings.master_key
                else MasterKey.load_or_create(settings.master_key_path())
            )
            keys = NatsCaseKeys(nc, master)
        registry = EventRegistry(*ALL_EVENTS)  # the CLI reads every service's events
        yield LogAccess(
            nc=nc,
            store=EventStore(nc, keys, registry=registry, spec=CASES, signing=operator_key),
            ref_store=EventStore(nc, None, registry=registry, spec=REFERENCE, signing=operator_key),
            settings=settings,
        )
    finally:
        await nc.drain()
        if server is not None:
            server.stop()
