"""``ncii projections rebuild`` (issue 13): read models rebuilt from the log alone hold exactly
the rows the running services built live, event by event, for intake, takedown and referral.

The services here are driven over HTTP (a case with a location, hence a takedown, and a
referral); once each has caught up, takedown and referral are stopped (intake is the run's),
each service's read models are rebuilt by the CLI into a new database, and every table of its
projections is compared row for row with the live one."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from ncii_cli.main import app as cli
from ncii_cli.services import all_services
from ncii_events.service import projections_of
from typer.testing import CliRunner

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_referral import offer, register_partner
from tests.e2e.test_referral import open_case as open_referral_case
from tests.e2e.test_takedown import (
    MakeKey,
    open_case,
    platform_body,
    record_evidence,
    register,
    report_location,
    takedowns,
    unique,
)
from tests.support.eventually import eventually


@pytest.fixture(scope="module")
def live(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[dict[str, RunningService]]:
    started: dict[str, RunningService] = {}
    try:
        for name in ("takedown", "referral"):
            folder = tmp_path_factory.mktemp(f"rebuild-live-{name}")
            started[name] = start_service(name, nats_server, folder, master_key_file)
        yield started
    finally:
        for service in started.values():
            stop_service(service)


PENDING_WORK = {
    "td_outbox": "published_at IS NULL",
    "rf_outbox": "published_at IS NULL",
    "reopen_queue": "NOT done",
}
"""Rows a service's workers still have to act on: each action appends to the log, after the
service caught up with it."""


async def _settled(service: RunningService) -> None:
    """Caught up, and nothing left for its workers to append: the log it read is final."""
    database = _database(service)
    mine = [t for t in _tables(service.name) if t in PENDING_WORK]

    def nothing_pending() -> bool:
        with sqlite3.connect(database) as conn:
            for table in mine:
                query = f'SELECT count(*) FROM "{table}" WHERE {PENDING_WORK[table]}'  # noqa: S608
                (pending,) = conn.execute(query).fetchone()
                assert pending == 0, f"{service.name}: {pending} rows of {table} pending"
        return True

    await caught_up(service)
    await eventually(nothing_pending, what=f"{service.name}'s workers finishing")
    await caught_up(service)


def _database(service: RunningService) -> Path:
    return Path(service.env["NCII_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))


OUTBOX_RUNTIME = frozenset({"id", "created_at", "published_at"})
"""An outbox row's own number and times: the order and time the reactor wrote it in (several of
a service's projections write to its outbox, each at its own pace, live and in a rebuild) and
when the publisher appended it.
A rebuild writes the reactor's decisions again (same derived event ids, so the publisher's
appends are no-ops in the log), at another time and not yet published."""
WORKER_STATE = {"reopen_queue": frozenset({"done"})}
"""Columns a service's worker sets as it works through rows a projection queued, not the log:
after a rebuild intake's reopen worker goes through its queue again (its appends carry ids
derived from the match, so a case reopens once)."""


def _tables(name: str) -> dict[str, str]:
    """Each table of the service's projections -> the query of its columns, by name (a table
    the migrations made orders its columns as they were added; a rebuilt one as declared)."""
    spec = all_services()[name]
    tables = {t.name: t for p in projections_of(spec) for t in p.metadata.tables.values()}
    queries = {}
    for table_name, table in sorted(tables.items()):
        skip = OUTBOX_RUNTIME if table_name.endswith("_outbox") else frozenset()
        skip |= WORKER_STATE.get(table_name, frozenset())
        columns = sorted(c.name for c in table.columns if c.name not in skip)
        listed = ", ".join(f'"{c}"' for c in columns)
        queries[table_name] = f'SELECT {listed} FROM "{table_name}"'  # noqa: S608 - our names
    return queries


def _rows(database: Path, tables: dict[str, str]) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(database) as conn:
        return {
            table: sorted(conn.execute(query).fetchall(), key=repr)
            for table, query in tables.items()
        }


def _difference(name: str, live: Path, rebuilt: Path, tables: dict[str, str]) -> str:
    """The rows only one side has, each column named: what a failure shows."""
    out = []
    for table, query in tables.items():
        with sqlite3.connect(live) as a, sqlite3.connect(rebuilt) as b:
            columns = [d[0] for d in a.execute(query).description]
            ours, theirs = set(a.execute(query).fetchall()), set(b.execute(query).fetchall())
        for side, rows in (("live only", ours - theirs), ("rebuilt only", theirs - ours)):
            for row in sorted(rows, key=repr)[:3]:
                out.append(f"{name}.{table} {side}: {dict(zip(columns, row, strict=True))}")
    return "\n".join(out)


async def _rebuild(
    nats_server: SuiteNats, master_key_file: Path, name: str, folder: Path
) -> tuple[Result, Path]:
    database = folder / f"{name}-rebuilt.db"
    env = {
        "NCII_NATS_URL": nats_server.url,
        "NCII_VAR_DIR": str(folder),
        "NCII_MASTER_KEY_FILE": str(master_key_file),
        "NCII_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    args = ["projections", "rebuild", "--service", name]
    # the command runs its own event loop, as it does from a shell
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    return result, database


async def test_rebuilt_read_models_equal_the_ones_the_services_built_live(
    nats_server: SuiteNats,
    master_key_file: Path,
    tmp_path: Path,
    intake: RunningService,
    live: dict[str, RunningService],
    make_key: MakeKey,
) -> None:
    takedown, referral = live["takedown"], live["referral"]
    caseworker = await make_key("centre", "caseworker")
    partner = await make_key(unique("ngo"), "partner")
    for service in (intake, takedown, referral):
        await caught_up(service)

    # live: a platform, a case with a location (a takedown, with its evidence), a referral
    name = unique("PhotoHost")
    await register(takedown, caseworker, platform_body(name))
    case_id = await open_case(intake, partner, "adult")
    await report_location(intake, partner, case_id, name)

    async def opened() -> str:
        (item,) = await takedowns(takedown, partner, case_id)
        return str(item["takedown_id"])

    takedown_id = await eventually(opened, what="the takedown opening")
    assert (await record_evidence(takedown, partner, case_id, takedown_id)).status_code == 200
    partner_id = await register_partner(referral, caseworker, unique("counsel"))
    referred = await open_referral_case(intake, partner, "adult")
    await caught_up(referral)
    assert (await offer(referral, partner, referred, partner_id)).status_code == 201
    for service in (intake, takedown, referral):
        await _settled(service)
    stop_service(takedown)
    stop_service(referral)

    for service in (intake, takedown, referral):
        result, rebuilt = await _rebuild(
            nats_server, master_key_file, service.name, tmp_path / service.name
        )
        assert result.exit_code == 0, result.output
        assert "events applied" in result.output and "events/s" in result.output
        if service is intake:
            await caught_up(intake)  # the run's intake goes on: everything it read, it applied
        tables = _tables(service.name)
        built_live = _rows(_database(service), tables)
        assert sum(map(len, built_live.values())) > 0, f"{service.name} built nothing live"
        assert _rows(rebuilt, tables) == built_live, _difference(
            service.name, _database(service), rebuilt, tables
        )
