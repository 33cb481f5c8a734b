"""A service's migrations build exactly the tables its read models declare (SQLite and
PostgreSQL). The runner's ``create_all`` would add a table the migrations forgot, but never a
column or an index to a table that exists: an index declared in the schema and missing from a
migration (or the reverse) would only show as a slow query on a migrated database, or vanish
on a rebuild (``Projection.reset`` recreates from the schema)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from ncii_cli.services import all_services
from ncii_events.db import make_engine, migrate, migrate_runtime
from sqlalchemy import Connection, MetaData

SERVICES = {name: spec for name, spec in all_services().items() if spec.migrations is not None}


def _differences(conn: Connection, metadata: MetaData, version_table: str) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"version_table": version_table})
    ours = set(metadata.tables)

    def concerns_ours(diff: Any) -> bool:
        # the database holds other metadata's tables too (the runtime's, other read models')
        if isinstance(diff, list):  # column modifications come as a list of tuples
            return any(concerns_ours(d) for d in diff)
        kind, item = diff[0], diff[1]
        if kind == "remove_table":
            return False
        if kind in ("remove_index", "add_index"):
            return item.table.name in ours
        if kind in ("remove_column", "add_column"):
            return diff[2] in ours
        return True

    return [d for d in compare_metadata(context, metadata) if concerns_ours(d)]


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_a_services_migrations_build_the_tables_and_indexes_its_read_models_declare(
    database_url: str, service: str
) -> None:
    spec = SERVICES[service]
    assert spec.migrations is not None
    engine = make_engine(database_url)
    try:
        await migrate_runtime(engine)
        await migrate(engine, spec.migrations, f"alembic_version_{service}")
        found: dict[str, list[Any]] = {}
        async with engine.connect() as conn:
            for projection in spec.projections:  # the principals' table is the runtime's
                diffs = await conn.run_sync(
                    _differences, projection.metadata, f"alembic_version_{service}"
                )
                if diffs:
                    found[projection.name] = diffs
    finally:
        await engine.dispose()
    assert not found, found
