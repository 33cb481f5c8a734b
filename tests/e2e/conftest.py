"""End-to-end fixtures: each service runs as its own process (``python -m ncii_<name>.main``)
against the run's NATS server and a fresh SQLite file, driven over HTTP as a client would."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS
from ncii_events.auth import create_principal
from ncii_events.embedded import free_port
from ncii_events.signing import SigningKey
from ncii_events.store import EventStore
from ncii_events.stream import REFERENCE

from tests.conftest import ROOT, NatsLogin, SuiteNats
from tests.support.events import REGISTRY
from tests.support.eventually import STUCK_AFTER, eventually, eventually_sync


@dataclass
class RunningService:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def client(self, key: str | None = None, *, keyed: bool = True) -> httpx.AsyncClient:
        """A client as the CLI is one: each write it sends without an Idempotency-Key gets a
        new one (writes that add a fact need it, decision 0057). ``keyed=False``: sent as
        written, for the tests of what a write without a key does."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        hooks = {"request": [_new_key_per_write]} if keyed else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, event_hooks=hooks)


async def _new_key_per_write(request: httpx.Request) -> None:
    if request.method in ("POST", "PUT") and "Idempotency-Key" not in request.headers:
        request.headers["Idempotency-Key"] = uuid.uuid4().hex


def start_service(
    name: str,
    nats: NatsLogin,
    workdir: Path,
    master_key_file: Path,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> RunningService:
    """Service ``name`` as its own process, connected as its own NATS user with the shipped
    permissions (the credentials the suite's server was generated with)."""
    port = free_port()
    env = {
        **os.environ,
        "NCII_NATS_URL": nats.plain_url,
        **nats.login(name),
        "NCII_VAR_DIR": str(workdir),
        "NCII_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{workdir / f'{name}.db'}",
        "NCII_MASTER_KEY_FILE": str(master_key_file),
        # the run's keys folder (tests/conftest.py keys_dir): the service's own signing key,
        # <name>.ed25519, and the public keys it is checked against
        "NCII_SIGNING_KEYS_DIR": str(master_key_file.parent),
        "NCII_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    log = open(workdir / f"{name}.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", f"ncii_{name}.main"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {(workdir / f'{name}.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually_sync(ready, what=f"{name} becoming ready")
    except AssertionError:
        process.kill()
        raise
    return RunningService(name, url, process, env)


def stop_service(service: RunningService) -> None:
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(15)
        except subprocess.TimeoutExpired:
            service.process.kill()


@pytest.fixture(scope="session")
def intake(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service(
        "intake", nats_server, tmp_path_factory.mktemp("intake"), master_key_file
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="session")
async def make_key(
    nc: NATS, operator_signing: SigningKey
) -> AsyncIterator[Callable[[str, str], object]]:
    """``await make_key(org, role)`` issues a key, signed as ``ncii keys create`` signs it; it
    is usable once services projected it."""
    ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=operator_signing)

    async def make(organisation: str, role: str) -> str:
        _principal, key = await create_principal(ref_store, organisation=organisation, role=role)
        return key

    yield make


async def caught_up(service: RunningService, timeout: float = STUCK_AFTER) -> None:
    """Wait until the service's projections have applied everything in the log so far (the
    server counts an appended event as pending at once, so this follows every earlier write)."""
    async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready, what=f"{service.name} catching up with the log", within=timeout)
