"""Hot reads of the read model in one step (decision 46).

On SQLite, an ``AsyncEngine`` (aiosqlite) sends every DBAPI call of a read to the connection's
own thread and back: checkout, cursor, execute, fetch, close, rollback, each a queue put, a
thread wake-up and a future resolved on the event loop; and SQLAlchemy builds rows the page then
turns into dicts. For the case list that cost more than SQLite's own work (0.2-0.4 ms a page at
100,000 cases). ``read_rows`` runs a statement, compiled once, on a reader thread with its own
read-only ``sqlite3`` connection, and returns plain dicts: one hop there and one back. On
PostgreSQL (asyncpg) it executes the statement on the engine as usual.

For statements whose columns and parameters need no type processing (strings and integers, as
the cases table's are). The reader threads and connections close when the engine is disposed.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, event
from sqlalchemy.ext.asyncio import AsyncEngine

READER_THREADS = 2
"""SQLite releases the GIL while it steps through a query: two readers can use the second core
while the event loop serves the other requests."""


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]
    """The names of its parameters, in the order of its placeholders."""
    defaults: dict[str, Any]
    """What the dialect binds by itself (SQLite's ``OFFSET`` after a bound ``LIMIT``)."""
    columns: tuple[str, ...]


@functools.lru_cache(maxsize=512)
def _compiled(statement: Select[Any], dialect: Any) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    return _Compiled(
        compiled.string,
        tuple(compiled.positiontup or ()),
        {k: v for k, v in compiled.params.items() if v is not None},
        tuple(str(c.key) for c in statement.selected_columns),
    )


class _SqliteReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self.path = str(engine.url.database)
        self.dialect = engine.sync_engine.dialect
        self.local = threading.local()
        self.opened: list[sqlite3.Connection] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="intake-reads")
        event.listen(engine.sync_engine, "engine_disposed", self._close)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")  # a reader never writes
            self.local.conn = conn
            with self.lock:
                self.opened.append(conn)
        return conn

    def rows(self, statement: Select[Any], values: dict[str, Any]) -> list[dict[str, Any]]:
        c = _compiled(statement, self.dialect)
        bound = c.defaults | values
        cursor = self._connection().execute(c.sql, [bound[name] for name in c.order])
        try:
            return [dict(zip(c.columns, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def _close(self, _engine: Engine) -> None:
        self.pool.shutdown(wait=True)
        with self.lock:
            for conn in self.opened:
                conn.close()
            self.opened.clear()
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="intake-reads")


_TWINS: weakref.WeakKeyDictionary[AsyncEngine, _SqliteReads] = weakref.WeakKeyDictionary()


async def read_rows(
    engine: AsyncEngine, statement: Select[Any], values: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rows of ``statement`` with its parameters bound to ``values``, as dicts by column
    name, read in one step (see above)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        async with engine.connect() as conn:
            return [row._asdict() for row in await conn.execute(statement, values)]
    twin = _TWINS.get(engine)
    if twin is None:
        twin = _TWINS[engine] = _SqliteReads(engine)
    return await asyncio.get_running_loop().run_in_executor(twin.pool, twin.rows, statement, values)
