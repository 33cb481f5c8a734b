"""The ``ncii`` command line. Exit codes: 0 success, 1 failure, 2 bad usage.

Only typer, rich and the hash command's signature are imported here: NATS, SQL, FastAPI and the
services are imported inside the commands that use them, so that ``ncii --help`` and
``ncii hash`` start at once (decision 18; ``tests/unit/test_cli_imports.py`` holds it).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ncii_cli.hash_cmd import hash_command

if TYPE_CHECKING:
    from ncii_events.service import ServiceSpec
    from rich.console import Console

app = typer.Typer(
    help="ncii: case management for non-consensual intimate image abuse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's Rich help imports Markdown and Pygments, most of a --help (decision 18).
    rich_markup_mode=None,
)
log_app = typer.Typer(help="The event log (the NCII JetStream stream).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of principals.", no_args_is_help=True)
dead_app = typer.Typer(help="Events a projection could not apply.", no_args_is_help=True)
proj_app = typer.Typer(help="Read models (SQL projections).", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(keys_app, name="keys")
app.add_typer(dead_app, name="deadletters")
app.add_typer(proj_app, name="projections")
app.command("hash")(hash_command)


class _Console:
    """A Rich console made on first use: importing Rich's console is a third of a ``--help``."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def rich(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich(), name)


out = _Console(stderr=False)
err = _Console(stderr=True)


def fail(message: str) -> None:
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(1)


@app.command()
def run(
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="only these services")
    ] = None,
) -> None:
    """Start the whole system: NATS (embedded) and every service, each its own process.

    Example: `ncii run` (Ctrl-C stops everything; data stays in var/).
    Set NCII_NATS_URL and NCII_DATABASE_URL to use an existing NATS server and PostgreSQL, and
    NCII_BASE_PORT (NATS at it, services at base+1..) to run beside another `ncii run`.
    """
    from ncii_cli.runner import StartupError, run_system

    try:
        code = run_system(service)
    except StartupError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@log_app.command("init")
def log_init() -> None:
    """Create the log's streams and buckets, or update their settings (replicas from
    NCII_STREAM_REPLICAS). The operator's job: services only check that they exist.
    `ncii run` does it at every start.

    Example: `ncii log init` (another server: NCII_NATS_URL, NCII_NATS_USER=operator and
    NCII_NATS_PASSWORD)
    """
    from ncii_events.stream import ensure_streams

    from ncii_cli.log_access import log_access

    async def init() -> None:
        async with log_access(require=False) as access:
            await ensure_streams(access.nc, replicas=access.settings.stream_replicas)

    asyncio.run(init())
    err.print("the log's streams and buckets are in place")


@log_app.command("stats")
def log_stats(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Stream sequence, message count and bytes of the log and the reference stream.

    Example: `ncii log stats`
    """
    from ncii_cli.log_access import log_access

    async def collect() -> list[dict[str, object]]:
        async with log_access() as access:
            js = access.nc.jetstream()
            rows = []
            for spec in (access.store.spec, access.ref_store.spec):
                info = await js.stream_info(spec.name, subjects_filter=None)
                state = info.state
                rows.append(
                    {
                        "stream": spec.name,
                        "first_seq": state.first_seq,
                        "last_seq": state.last_seq,
                        "messages": state.messages,
                        "bytes": state.bytes,
                        "subjects": getattr(state, "num_subjects", None),
                        "consumers": state.consumer_count,
                        "deny_delete": info.config.deny_delete,
                        "deny_purge": info.config.deny_purge,
                    }
                )
            return rows

    rows = asyncio.run(collect())
    if as_json:
        out.print_json(json.dumps(rows))
        return
    from rich.table import Table

    table = Table(title="event log")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out.print(table)


@log_app.command("verify")
def log_verify(
    case: Annotated[
        str | None, typer.Option(help="only this case (default: the whole log)")
    ] = None,
) -> None:
    """Replay the log and recompute every event's hash and every link of every aggregate's chain;
    name the first event that does not verify. Exit 1 if one does not.

    Example: `ncii log verify` or `ncii log verify --case 0196a3c2-...`
    """
    from ncii_events.audit import ChainVerifier
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ncii_cli.log_access import log_access

    async def verify() -> tuple[int, int, object]:
        async with log_access() as access:
            verifier = ChainVerifier()
            if case is not None:
                verifier.feed(await access.store.read_case(case, decrypt=False))
                return verifier.checked, verifier.aggregates, verifier.first_break
            last = await access.store.last_sequence()
            with Progress(
                TextColumn("verifying"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[rate]} events/s"),
                TimeElapsedColumn(),
                console=err.rich(),
            ) as progress:
                task = progress.add_task("log", total=last, rate="-")
                started = time.perf_counter()
                seq = 1
                while seq <= last and verifier.first_break is None:
                    batch = await access.store.read_from(seq, limit=1000)
                    if not batch:
                        break
                    verifier.feed(batch)
                    seq = batch[-1].seq + 1
                    rate = verifier.checked / max(time.perf_counter() - started, 1e-9)
                    progress.update(task, completed=batch[-1].seq, rate=f"{rate:,.0f}")
            return verifier.checked, verifier.aggregates, verifier.first_break

    checked, aggregates, first_break = asyncio.run(verify())
    if first_break is not None:
        err.print(f"[red]chain broken[/] after {checked} events: {first_break}")
        raise typer.Exit(1)
    out.print(f"{checked} events in {aggregates} aggregates verify")


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option(help="the organisation the key acts for")],
    role: Annotated[
        str,
        typer.Option(help="partner, caseworker, platform, counsellor, auditor or admin"),
    ],
    label: Annotated[str, typer.Option(help="a note for people, e.g. who holds it")] = "",
) -> None:
    """Create a principal and print its API key, once. Only its hash is stored.

    Example: `ncii keys create --org garden-of-hope --role partner --label "intake desk"`
    """
    from ncii_events.auth import MAX_LABEL, MAX_ORGANISATION, ROLES, create_principal

    from ncii_cli.log_access import log_access

    if role not in ROLES:
        err.print(f"role must be one of: {', '.join(ROLES)}")
        raise typer.Exit(2)
    if not org.strip() or len(org) > MAX_ORGANISATION:
        err.print(f"--org must be 1 to {MAX_ORGANISATION} characters")
        raise typer.Exit(2)
    if len(label) > MAX_LABEL:
        err.print(f"--label must be at most {MAX_LABEL} characters")
        raise typer.Exit(2)

    async def create() -> tuple[str, str]:
        async with log_access() as access:
            return await create_principal(
                access.ref_store, organisation=org, role=role, label=label
            )

    principal_id, key = asyncio.run(create())
    err.print(f"principal {principal_id} ({role} of {org}). The key is shown once:")
    out.print(key, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(principal_id: str, reason: str = "") -> None:
    """Revoke a principal's key; every service refuses it from then on.

    Example: `ncii keys revoke 0196a3c2-...`
    """
    from ncii_events.auth import revoke_principal

    from ncii_cli.log_access import log_access

    async def revoke() -> bool:
        async with log_access() as access:
            return await revoke_principal(access.ref_store, principal_id, reason)

    if not asyncio.run(revoke()):
        fail(f"no principal {principal_id}")
    err.print(f"revoked {principal_id}")


@keys_app.command("list")
def keys_list() -> None:
    """Principals and their key hints (never the keys). Example: `ncii keys list`"""
    from ncii_contracts.principals import PrincipalCreated, PrincipalKeyRevoked

    from ncii_cli.log_access import log_access

    async def collect() -> list[dict[str, str]]:
        async with log_access() as access:
            principals: dict[str, dict[str, str]] = {}
            seq = 1
            while True:
                batch = await access.ref_store.read_from(seq, limit=1000)
                for recorded in batch:
                    ev = recorded.event
                    if isinstance(ev, PrincipalCreated):
                        principals[ev.principal_id] = {
                            "principal": ev.principal_id,
                            "organisation": ev.organisation,
                            "role": ev.role,
                            "key": ev.key_hint + "...",
                            "label": ev.label,
                            "revoked": "no",
                        }
                    elif isinstance(ev, PrincipalKeyRevoked) and ev.principal_id in principals:
                        principals[ev.principal_id]["revoked"] = "yes"
                if len(batch) < 1000:
                    return list(principals.values())
                seq = batch[-1].seq + 1

    rows = asyncio.run(collect())
    from rich.table import Table

    table = Table(title="principals")
    for column in ("principal", "organisation", "role", "key", "label", "revoked"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row.values())
    out.print(table)


def _service_or_exit(name: str) -> ServiceSpec[Any]:
    from ncii_cli.services import all_services

    specs = all_services()
    if name not in specs:
        err.print(f"--service must be one of: {', '.join(specs)}")
        raise typer.Exit(2)
    return specs[name]


@dead_app.command("list")
def deadletters_list(
    service: Annotated[str, typer.Option(help="whose read models")],
    all_: Annotated[bool, typer.Option("--all", help="include retried ones")] = False,
) -> None:
    """Events a projection gave up on: where they are in the log and what failed (never data).

    Example: `ncii deadletters list --service intake`
    """
    from ncii_events.db import make_engine
    from ncii_events.projection import DeadLetter, list_dead_letters
    from ncii_events.settings import Settings

    spec = _service_or_exit(service)

    async def collect() -> list[DeadLetter]:
        engine = make_engine(Settings().database_url_for(spec.name))
        try:
            return await list_dead_letters(engine, include_resolved=all_)
        finally:
            await engine.dispose()

    rows = asyncio.run(collect())
    from rich.table import Table

    table = Table(title=f"dead letters of {service}")
    for column in ("id", "projection", "stream_seq", "event_type", "error", "attempts", "status"):
        table.add_column(column)
    for d in rows:
        table.add_row(
            str(d.id),
            d.projection,
            str(d.stream_seq),
            d.event_type or "?",
            f"{d.error_type} at {d.error_where}",
            str(d.attempts),
            d.status,
        )
    out.print(table)


@dead_app.command("retry")
def deadletters_retry(
    dead_letter_id: int,
    service: Annotated[str, typer.Option(help="whose read models")],
) -> None:
    """Apply a dead-lettered event again, after the fix is deployed.

    Example: `ncii deadletters retry 3 --service intake`
    """
    from ncii_events.db import make_engine
    from ncii_events.projection import list_dead_letters, retry_dead_letter
    from ncii_events.service import projections_of
    from ncii_events.settings import Settings

    from ncii_cli.log_access import log_access

    spec = _service_or_exit(service)

    async def retry() -> bool:
        engine = make_engine(Settings().database_url_for(spec.name))
        try:
            letters = {d.id: d for d in await list_dead_letters(engine)}
            letter = letters.get(dead_letter_id)
            if letter is None:
                return False
            wanted = [p for p in projections_of(spec) if p.name == letter.projection]
            if not wanted:
                return False
            async with log_access(with_keys=True) as access:
                store = access.store_for(wanted[0].stream)
                return await retry_dead_letter(engine, store, wanted[0], dead_letter_id)
        finally:
            await engine.dispose()

    if not asyncio.run(retry()):
        fail(f"dead letter {dead_letter_id} is not open in {service}, or still fails")
    err.print(f"dead letter {dead_letter_id} applied")


@proj_app.command("rebuild")
def projections_rebuild(
    service: Annotated[str, typer.Option(help="whose read models")],
) -> None:
    """Drop a service's read models and replay the whole log into them. Stop the service first.

    Example: `ncii projections rebuild --service intake`
    """
    from ncii_events.db import make_engine, migrate
    from ncii_events.projection import ProjectionRunner, reset
    from ncii_events.service import projections_of
    from ncii_events.settings import Settings

    from ncii_cli.log_access import log_access

    spec = _service_or_exit(service)

    async def rebuild() -> int:
        engine = make_engine(Settings().database_url_for(spec.name))
        applied = 0
        try:
            if spec.migrations is not None:
                await migrate(engine, spec.migrations, f"alembic_version_{spec.name}")
            # Every projection at once: some share tables (hashmatch's two bank projections).
            projections = projections_of(spec)
            await reset(engine, projections)
            async with log_access(with_keys=True) as access:
                for projection in projections:
                    store = access.store_for(projection.stream)
                    runner = ProjectionRunner(None, engine, store, projection, batch_size=1000)
                    await runner.start()
                    try:
                        await runner.wait_caught_up(timeout=3600)
                    finally:
                        await runner.stop()
                    applied += runner.applied
                    err.print(f"{projection.name}: {runner.applied} events applied")
        finally:
            await engine.dispose()
        return applied

    asyncio.run(rebuild())


if __name__ == "__main__":
    app()
