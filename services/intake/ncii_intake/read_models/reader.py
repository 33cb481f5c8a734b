"""Hot reads of the read model in one step (decision 46).

On SQLite, an ``AsyncEngine`` (aiosqlite) sends every DBAPI call of a read to the
connection's own thread and back: checkout, cursor, execute, fetch, close, rollback, each a
queue put, a thread wake-up and a future resolved on the event loop. For the case list those
hops, and the GIL handed back and forth with them, cost more than the query (0.2-0.4 ms at
100,000 cases). ``read`` runs the whole read, a function of one synchronous ``Connection``,
on a small pool of reader threads with their own read-only SQLite connections: one hop there
and one back. On PostgreSQL (asyncpg) it runs the same function through ``run_sync`` on the
engine's own connection.

The reader threads and connections belong to the engine: they are closed when it is disposed.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
READER_THREADS = 2
"""SQLite releases the GIL while it steps through a query: two readers use the second core
while the event loop serves the other requests."""

_TWINS: weakref.WeakKeyDictionary[AsyncEngine, _SqliteReads] = weakref.WeakKeyDictionary()


class _SqliteReads:
    def __init__(self, engine: AsyncEngine) -> None:
        url = engine.url.set(drivername="sqlite")
        self.engine: Engine = create_engine(
            url,
            pool_size=READER_THREADS,
            max_overflow=0,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @event.listens_for(self.engine, "connect")
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA query_only=ON")  # a reader never writes
            cur.close()

        self.pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="intake-reads")
        event.listen(engine.sync_engine, "engine_disposed", self._close)

    def _close(self, _engine: Engine) -> None:
        self.pool.shutdown(wait=True)
        self.engine.dispose()
        self.pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="intake-reads")

    def run(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)


async def read(engine: AsyncEngine, fn: Callable[..., T], *args: Any) -> T:
    """``fn(conn, *args)`` on one connection of the read model, in one step (see above)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        async with engine.connect() as conn:
            return await conn.run_sync(fn, *args)
    twin = _TWINS.get(engine)
    if twin is None:
        twin = _TWINS[engine] = _SqliteReads(engine)
    call = functools.partial(twin.run, lambda conn: fn(conn, *args))
    return await asyncio.get_running_loop().run_in_executor(twin.pool, call)
