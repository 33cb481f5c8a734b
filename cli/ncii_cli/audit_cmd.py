"""``ncii audit``: an auditor's commands over the log (decision 37). Server-side modules are
imported inside the commands (decision 18)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ncii_audit.history import CaseHistory

audit_app = typer.Typer(
    help="Auditors: replay a case, verify the whole log, case bundles.", no_args_is_help=True
)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def _public_keys(path: Path | None) -> dict[str, list[str]]:
    from ncii_audit.app import public_keys_doc
    from ncii_events.settings import Settings

    try:
        if path is not None:
            doc = json.loads(path.read_text())
            keys = {str(k): [v] if isinstance(v, str) else list(v) for k, v in doc.items()}
        else:
            found = public_keys_doc(Settings())
            if found is None:
                raise ValueError(
                    "pass --public-keys FILE (the public-keys.json `ncii signing-keys create` "
                    "writes) or set NCII_SIGNING_PUBLIC_KEYS"
                )
            keys = found
    except (OSError, ValueError, AttributeError) as exc:
        _console(True).print(f"cannot read the public keys: {exc}")
        raise typer.Exit(2) from None
    return keys


def _allowed() -> dict[str, frozenset[str]]:
    from ncii_events.signing import allowed_signers

    from ncii_cli.services import all_services

    return allowed_signers({name: spec.emits for name, spec in all_services().items()})


PublicKeysOption = Annotated[
    Path | None,
    typer.Option(help="the signers' public keys (default: NCII_SIGNING_PUBLIC_KEYS or var/keys)"),
]


async def _history(
    case: str, keys: dict[str, list[str]], as_of: datetime | None
) -> CaseHistory | None:
    from ncii_audit.app import AuditApp, CaseNotFoundError, settled_heap
    from ncii_events.envelope import Actor

    from ncii_cli.log_access import log_access

    async with log_access() as access:
        app = AuditApp(access.store, keys, _allowed(), None)
        with settled_heap():
            try:
                return await app.replay(case, Actor("-", "cli", "auditor"), as_of=as_of)
            except CaseNotFoundError:
                return None


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        _console(True).print("--as-of: give a time with its zone, e.g. 2026-11-30T08:00:00Z")
        raise typer.Exit(2)
    return when


@audit_app.command("replay")
def replay(
    case: str,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines: one event a line")] = False,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="the case as it stood then (with its zone)")
    ] = None,
    public_keys: PublicKeysOption = None,
) -> None:
    """A case's whole history across every service, in log order, from the log alone, with
    every link and signature verified; exit 1 if one is bad (the first is named). Personal
    fields are withheld here: an auditor reads them through the audit service
    (GET /v1/audit/cases/{id}?reveal=personal&reason=...), which records the read first.

    Example: `ncii audit replay 0196a3c2-... --as-of 2026-11-30T08:00:00Z --json`
    """
    from ncii_audit.history import fold

    keys = _public_keys(public_keys)
    history = asyncio.run(_history(case, keys, _time(as_of)))
    if history is None:
        _console(True).print(f"no case {case} in the log")
        raise typer.Exit(1)
    if as_json:
        write = sys.stdout.write
        for entry in history.entries:
            write(json.dumps({"event": entry.to_json()}, sort_keys=True) + "\n")
        if as_of is not None:
            for state in fold(history):
                write(json.dumps({"state": state.to_json()}, sort_keys=True) + "\n")
            for folded in history.domain or []:
                write(json.dumps({"domain": folded}, sort_keys=True) + "\n")
        write(json.dumps({"summary": history.summary()}, sort_keys=True) + "\n")
    else:
        _render(history, with_state=as_of is not None)
    if not history.ok:
        raise typer.Exit(1)


def _render(history: CaseHistory, *, with_state: bool) -> None:
    from ncii_audit.history import fold
    from rich.markup import escape
    from rich.table import Table

    out = _console()
    title = f"case {history.case_id}" + (f" as of {history.as_of}" if history.as_of else "")
    table = Table(title=title)
    columns = ("#", "when", "event", "who", "why (correlation / causation)", "payload", "check")
    for column in columns:
        table.add_column(column, overflow="fold")
    for e in history.entries:
        actor = f"{e.actor['role']} {e.actor['principal']}\n{e.actor['organisation']}"
        why = f"{e.correlation_id[:13]} / {e.causation_id[:13]}"
        check = "[green]ok[/]" if e.check == "ok" else f"[red]{e.check}[/]"
        # a personal field says why it is not shown (withheld, erased) rather than null
        shown = {**e.payload, **{k: f"<{v}>" for k, v in e.personal.items() if v != "shown"}}
        payload = escape(json.dumps(shown, ensure_ascii=False, separators=(", ", ": ")))
        table.add_row(
            str(e.position), e.occurred_at, f"{e.type}\n{e.signer}", actor, why, payload, check
        )
    out.print(table)
    if with_state:
        for state in fold(history):
            out.print(f"[bold]{state.aggregate} {state.aggregate_id}[/]: {state.fields}")
        for folded in history.domain or []:
            out.print(
                f"[bold]{folded['aggregate']} {folded['aggregate_id']}[/] as "
                f"{folded['folded_by']} folds it: {folded.get('error') or folded['state']}"
            )
    verdict = "[green]chain and signatures hold[/]" if history.ok else "[red]broken[/]"
    out.print(
        f"{len(history.entries)} events, {history.verified} verified: {verdict}"
        + (f"; first bad: {history.first_break}" if history.first_break else "")
    )


@audit_app.command("verify")
def verify(
    public_keys: PublicKeysOption = None,
    workers: Annotated[
        int | None, typer.Option(help="verifying processes (default: one per core)")
    ] = None,
) -> None:
    """The whole log (both streams): every hash, link and signature, and that each signer may
    write its type, on every core, with a progress bar, the count and the rate. Names the first
    bad event per stream (and sequences missing from the store); exit 1 if there is one.

    Example: `ncii audit verify --public-keys var/keys/public-keys.json`
    """
    from ncii_audit.verify import verify_store
    from ncii_events.audit import ChainReport
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ncii_cli.log_access import log_access

    keys = _public_keys(public_keys)
    allowed = _allowed()
    err = _console(True)

    async def run() -> list[tuple[str, ChainReport, float]]:
        done: list[tuple[str, ChainReport, float]] = []
        async with log_access() as access:
            with Progress(
                TextColumn("verifying {task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[rate]} events/s"),
                TimeElapsedColumn(),
                console=err,
            ) as bar:
                for store in (access.store, access.ref_store):
                    task = bar.add_task(store.spec.name, total=None, rate="-")
                    started = time.perf_counter()

                    def tick(
                        checked: int, last: int, task: Any = task, t0: float = started
                    ) -> None:
                        rate = checked / max(time.perf_counter() - t0, 1e-9)
                        bar.update(task, completed=checked, total=last, rate=f"{rate:,.0f}")

                    report = await verify_store(
                        store, keys, allowed, workers=workers, progress=tick
                    )
                    done.append((store.spec.name, report, time.perf_counter() - started))
        return done

    failed = False
    for name, report, seconds in asyncio.run(run()):
        rate = report.checked / max(seconds, 1e-9)
        _console().print(
            f"{name}: {report.checked} events in {report.aggregates} aggregates, "
            f"{seconds:.2f} s ({rate:,.0f} events/s): {report.verified} verified, "
            f"{report.unsigned} unsigned (written before signing began), {report.bad} bad"
        )
        if report.first_break is not None:
            failed = True
            err.print(f"[red]first bad event in {name}:[/] {report.first_break}")
    if failed:
        raise typer.Exit(1)


@audit_app.command("bundle")
def bundle(
    case: str,
    out: Annotated[Path, typer.Option(help="the bundle's JSON file; the HTML goes beside it")],
    public_keys: PublicKeysOption = None,
) -> None:
    """A case bundle for the police or a court: the history (personal fields withheld), the
    evidence hashes, every envelope as stored (the chain proof) and the audit signer's
    detached signature; plus printable HTML and PDF renderings beside it (not signed: the JSON
    is what verifies, and they say so). Needs the audit service's signing key.

    Example: `ncii audit bundle 0196a3c2-... --out case.json` then, anywhere,
    `ncii audit verify-bundle case.json --public-key <audit's base64 public key>`
    """
    from ncii_audit.app import AUDIT, AuditApp, CaseNotFoundError
    from ncii_audit.bundle import bundle_json, render_html, render_pdf
    from ncii_events.envelope import Actor
    from ncii_events.settings import Settings
    from ncii_events.signing import SigningKeyError, own_signing_key

    from ncii_cli.log_access import log_access

    keys = _public_keys(public_keys)
    try:
        signing = own_signing_key(Settings(), AUDIT)
    except SigningKeyError as exc:
        _console(True).print(str(exc))
        raise typer.Exit(2) from None

    async def run() -> dict[str, Any] | None:
        async with log_access() as access:
            app = AuditApp(access.store, keys, _allowed(), signing)
            try:
                return await app.bundle(case, Actor("-", "cli", "auditor"))
            except CaseNotFoundError:
                return None

    document = asyncio.run(run())
    if document is None:
        _console(True).print(f"no case {case} in the log")
        raise typer.Exit(1)
    out.write_text(bundle_json(document))
    page = out.with_suffix(".html")
    page.write_text(render_html(document))
    printable = out.with_suffix(".pdf")
    printable.write_bytes(render_pdf(document))
    _console().print(
        f"wrote {out} (signed by audit key {signing.key_id}: the file to verify), and its "
        f"printable renderings {page} and {printable}"
    )


def _key_id(b64: str) -> str | None:
    import base64
    import binascii

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from ncii_events.signing import key_id

    try:
        return key_id(Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True)))
    except (ValueError, binascii.Error):
        return None


@audit_app.command("verify-bundle")
def verify_bundle_command(
    file: Path,
    public_key: Annotated[
        str,
        typer.Option(help="the audit signer's public key: base64, or a public-keys.json file"),
    ],
) -> None:
    """Verify a case bundle offline (no server): the audit signer's signature over the bundle,
    then every event's hash, link and signature. FILE is the bundle's JSON, or its PDF (the
    JSON attached to it is verified). Exit 0 when it holds, 1 otherwise.

    Example: `ncii audit verify-bundle case.json --public-key var/keys/public-keys.json`
    """
    from ncii_audit.bundle import attached_bundle, verify_bundle

    try:
        raw = file.read_bytes()
        # a bundle's PDF carries the signed JSON as its attachment (decision 56)
        document = attached_bundle(raw) if raw.startswith(b"%PDF-") else json.loads(raw)
        if document is None:
            raise ValueError("this PDF has no case bundle attached")
        key = public_key
        candidate = Path(public_key)
        if candidate.is_file():
            # a public-keys.json: the audit key the bundle names (several after a rotation)
            listed = json.loads(candidate.read_text()).get("audit") or []
            listed = [listed] if isinstance(listed, str) else list(listed)
            named = document.get("signature", {}).get("key_id")
            key = next((k for k in listed if _key_id(k) == named), listed[-1] if listed else "")
    except (OSError, ValueError, AttributeError) as exc:
        _console(True).print(f"cannot read {file} or the public key: {exc}")
        raise typer.Exit(2) from None
    problems = verify_bundle(document, str(key))
    if problems:
        for problem in problems:
            _console(True).print(f"[red]{problem}[/]")
        raise typer.Exit(1)
    body = document["bundle"]
    _console().print(
        f"bundle of case {body['case_id']} holds: signed by audit key "
        f"{document['signature']['key_id']}, {len(body['envelopes'])} events, chain and "
        "signatures verified"
    )
