"""SQL engines and migrations: SQLite under var/ by default, PostgreSQL in production."""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, Table, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

RUNTIME_METADATA = MetaData()
"""Tables every service has: projection checkpoints and dead letters."""


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


def upsert(conn: Connection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    """Insert a row or replace it (projections write rows again on replay).

    The statement is built once per table and column set, with the new values taken from
    ``excluded``, so SQLAlchemy compiles it once; values go in as parameters.
    """
    dialect = conn.dialect.name
    cache_key = (dialect, table.name, tuple(keys), tuple(sorted(values)))
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        base = insert(table)
        stmt = base.on_conflict_do_update(
            index_elements=keys,
            set_={name: base.excluded[name] for name in sorted(values) if name not in keys},
        )
        _UPSERTS[cache_key] = stmt
    conn.execute(stmt, values)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
        if path and path != ":memory:":
            # Owner-only: read models link hashes, organisations and case ids. SQLite gives its
            # -wal and -shm files the database file's mode, so creating that one 0600 is enough.
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the projection writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Overwritten and deleted content is zeroed, not left in free space: erasure
            # overwrites hash values that must not stay readable in the file (decision 26).
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


_write_locks: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction. SQLite takes one writer at a time and makes the others sleep in
    growing steps (up to 100 ms) while they wait; queueing this process's writers on a lock
    instead keeps latency at the length of the transactions. PostgreSQL needs no lock."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    lock = _write_locks.get(engine)
    if lock is None:
        lock = _write_locks[engine] = asyncio.Lock()
    async with lock, engine.begin() as conn:
        yield conn


def _upgrade(conn: Connection, script_location: Path, version_table: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table"] = version_table
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine, script_location: Path, version_table: str) -> None:
    """Bring one migration line (a service's own, or the runtime's) to its head revision."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, script_location, version_table)


async def migrate_runtime(engine: AsyncEngine) -> None:
    await migrate(engine, Path(__file__).parent / "migrations", "alembic_version_ncii_runtime")


def run_migrations_online(target_metadata: MetaData) -> None:
    """The body of every migrations/env.py: run on the connection handed over by ``migrate``."""
    from alembic import context

    conn = context.config.attributes["connection"]
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    )
    with context.begin_transaction():
        context.run_migrations()
