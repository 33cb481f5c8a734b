"""How CLI commands reach the log: NCII_NATS_URL, the running embedded server, or (when the
system is not running) the embedded server started just for the command, on the same data. On
the embedded server they connect as the operator, with the password generated under var/."""

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
from ncii_events.stream import (
    CASES,
    KV_STREAMS,
    REFERENCE,
    StreamSpec,
    ensure_streams,
    require_streams,
)
from ncii_events.transport import connect

from ncii_cli.runner import nats_login, start_embedded_nats


@dataclass
class LogAccess:
    nc: NATS
    store: EventStore
    ref_store: EventStore
    settings: Settings

    def store_for(self, stream: StreamSpec) -> EventStore:
        return self.ref_store if stream.name == REFERENCE.name else self.store


@asynccontextmanager
async def log_access(
    *, with_keys: bool = False, signing: bool = False, require: bool = True
) -> AsyncIterator[LogAccess]:
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
    user, password = nats_login(settings)  # the operator, on the embedded server
    nc = await connect(url, name="ncii-cli", user=user, password=password)
    keys: NatsCaseKeys | None = None
    try:
        if server is not None:
            # the local data, started just for this command: the operator prepares it as
            # `ncii run` would; elsewhere `ncii run` or `ncii log init` did (decision 22)
            await ensure_streams(nc, replicas=settings.stream_replicas)
        elif require:
            await require_streams(nc, [CASES.name, REFERENCE.name, *KV_STREAMS])
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
