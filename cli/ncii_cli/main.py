"""The ``ncii`` command line. Exit codes: 0 success, 1 failure, 2 bad usage.

Only typer, rich and the hash command's signature are imported here: NATS, SQL, FastAPI and the
services are imported inside the commands that use them, so that ``ncii --help`` and
``ncii hash`` start at once (decision 18; ``tests/unit/test_cli_imports.py`` holds it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ncii_cli.audit_cmd import audit_app
from ncii_cli.hash_cmd import hash_command
from ncii_cli.partners_cmd import partners_app
from ncii_cli.platforms_cmd import platforms_app
from ncii_cli.takedown_cmd import takedown_app

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
signing_app = typer.Typer(
    help="Keys that sign events (one per service, one for this command line).",
    no_args_is_help=True,
)
app.add_typer(log_app, name="log")
app.add_typer(keys_app, name="keys")
app.add_typer(dead_app, name="deadletters")
app.add_typer(proj_app, name="projections")
app.add_typer(platforms_app, name="platforms")
app.add_typer(takedown_app, name="takedown")
app.add_typer(audit_app, name="audit")
app.add_typer(partners_app, name="partners")
app.add_typer(signing_app, name="signing-keys")
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
    public_keys: Annotated[
        Path | None,
        typer.Option(
            help="the signers' public keys (the public-keys.json `ncii signing-keys create` "
            "writes); default: NCII_SIGNING_PUBLIC_KEYS, else the keys folder's file"
        ),
    ] = None,
) -> None:
    """Replay the log and check every event: its hash, its link to the previous event of its
    aggregate, its signature, and that its signer is the service allowed to write its type
    (principals: the operator). Names the first bad event; exit 1 if there is one. Events
    written before signing began are counted as unsigned, not failed.

    Example: `ncii log verify` or `ncii log verify --case 0196a3c2-... --public-keys keys.json`
    """
    from ncii_events.audit import ChainVerifier, SignaturePolicy
    from ncii_events.settings import Settings
    from ncii_events.signing import (
        PublicKeys,
        SigningKeyError,
        allowed_signers,
        configured_public_keys,
    )
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ncii_cli.log_access import log_access
    from ncii_cli.services import all_services

    try:
        keys = (
            PublicKeys.from_file(public_keys)
            if public_keys is not None
            else configured_public_keys(Settings())
        )
    except (OSError, ValueError, SigningKeyError) as exc:
        err.print(f"cannot read the public keys: {exc}")
        raise typer.Exit(2) from None
    if keys is None:
        err.print(
            "no public keys to check signatures with: pass --public-keys FILE (the "
            "public-keys.json `ncii signing-keys create` writes) or set NCII_SIGNING_PUBLIC_KEYS"
        )
        raise typer.Exit(2)
    allowed = allowed_signers({name: spec.emits for name, spec in all_services().items()})

    async def verify() -> list[tuple[str, ChainVerifier]]:
        async with log_access() as access:
            stores = [access.store] if case is not None else [access.store, access.ref_store]
            done: list[tuple[str, ChainVerifier]] = []
            with Progress(
                TextColumn("verifying {task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[rate]} events/s"),
                TimeElapsedColumn(),
                console=err.rich(),
            ) as progress:
                for store in stores:
                    name = store.spec.name
                    verifier = ChainVerifier(SignaturePolicy(name, keys, allowed))
                    last = await store.last_sequence()
                    task = progress.add_task(name, total=last, rate="-")
                    started = time.perf_counter()
                    seq = 1
                    while seq <= last:
                        batch = await store.read_envelopes(seq, case_id=case)
                        if not batch:
                            break
                        verifier.feed_envelopes(batch)
                        seq = batch[-1][0] + 1
                        rate = verifier.checked / max(time.perf_counter() - started, 1e-9)
                        progress.update(task, completed=batch[-1][0], rate=f"{rate:,.0f}")
                    done.append((name, verifier))
            return done

    results = asyncio.run(verify())
    failed = False
    for name, v in results:
        out.print(
            f"{name}: {v.checked} events in {v.aggregates} aggregates: {v.verified} verified, "
            f"{v.unsigned} unsigned (written before signing began), {v.bad} bad",
            soft_wrap=True,
        )
        if v.first_break is not None:
            failed = True
            err.print(f"[red]first bad event in {name}:[/] {v.first_break}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


T = TypeVar("T")


def _signed(command: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a command that writes events, signed with the operator's key; a missing key is
    reported with what to do (exit 1)."""
    from ncii_events.signing import SigningKeyError

    try:
        return asyncio.run(command())
    except SigningKeyError as exc:
        fail(str(exc))
        raise  # fail() exits; this line is for the type checker


@signing_app.command("create")
def signing_keys_create(
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="where to keep the keys (default: NCII_SIGNING_KEYS_DIR, else var/keys)"
        ),
    ] = None,
) -> None:
    """Create the signing key of every installed service and of the operator's command line,
    where missing (existing keys are kept), and print every public key as JSON.

    Each service gets its own private key file (<service>.ed25519, mode 0600, folder 0700): give
    each service only its own (NCII_SIGNING_KEY_FILE). The public keys (also written to
    public-keys.json in the folder) go in every auditor's configuration
    (NCII_SIGNING_PUBLIC_KEYS). `ncii run` does this itself for the embedded default.

    Example: `ncii signing-keys create --dir /etc/ncii/keys`
    """
    from ncii_events.settings import Settings
    from ncii_events.signing import OPERATOR, PUBLIC_KEYS_FILE, provision

    from ncii_cli.services import all_services

    where = folder or Settings().signing_keys_path()
    created = provision(where, [*all_services(), OPERATOR])
    err.print(
        f"created the signing keys of {', '.join(created)} in {where}"
        if created
        else f"every signer already has its key in {where}"
    )
    err.print(f"public keys ({where / PUBLIC_KEYS_FILE}), for NCII_SIGNING_PUBLIC_KEYS:")
    listed = json.loads((where / PUBLIC_KEYS_FILE).read_text())
    out.print(json.dumps(listed, separators=(",", ":")), soft_wrap=True, highlight=False)


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
        async with log_access(signing=True) as access:
            return await create_principal(
                access.ref_store, organisation=org, role=role, label=label
            )

    principal_id, key = _signed(create)
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
        async with log_access(signing=True) as access:
            return await revoke_principal(access.ref_store, principal_id, reason)

    if not _signed(revoke):
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
    """Drop a service's read models and replay the whole log into them, with a progress bar,
    the count and the rate per projection. Stop the service first.

    Example: `ncii projections rebuild --service intake`
    """
    from ncii_events.db import make_engine, migrate
    from ncii_events.projection import ProjectionRunner, reset
    from ncii_events.service import projections_of
    from ncii_events.settings import Settings
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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
                with Progress(
                    TextColumn("rebuilding {task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed:,.0f}/{task.total:,.0f} read"),
                    TextColumn("{task.fields[applied]:,} applied"),
                    TextColumn("{task.fields[rate]} events/s"),
                    TimeElapsedColumn(),
                    console=err.rich(),
                    transient=True,
                ) as bar:
                    for projection in projections:
                        store = access.store_for(projection.stream)
                        last = await store.last_sequence()
                        task = bar.add_task(projection.name, total=last, applied=0, rate="-")
                        started = time.perf_counter()
                        runner = ProjectionRunner(None, engine, store, projection, batch_size=1000)

                        def tick(
                            checkpoint: int,
                            task: Any = task,
                            t0: float = started,
                            last: int = last,
                            runner: ProjectionRunner = runner,
                        ) -> None:
                            rate = checkpoint / max(time.perf_counter() - t0, 1e-9)
                            bar.update(
                                task,
                                completed=min(checkpoint, last),
                                applied=runner.applied,
                                rate=f"{rate:,.0f}",
                            )

                        runner.on_commit = tick
                        await runner.start()
                        try:
                            await runner.wait_caught_up(timeout=3600)
                        finally:
                            await runner.stop()
                        seconds = time.perf_counter() - started
                        applied += runner.applied
                        err.print(
                            f"{projection.name}: {runner.applied:,} events applied, "
                            f"{runner.checkpoint:,} read in {seconds:.2f} s "
                            f"({runner.checkpoint / max(seconds, 1e-9):,.0f} events/s)"
                        )
        finally:
            await engine.dispose()
        return applied

    asyncio.run(rebuild())


if __name__ == "__main__":
    app()
