"""``ncii hash``: hash images and videos locally; print (and optionally submit) the hashes.

Register with ``app.command("hash")(hash_command)``. The hashing libraries and the HTTP client
are imported when the command runs, not when the CLI builds its help.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

import typer

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from ncii_cli.hasher import FileHashes, HashSubmission

__all__ = ["DEFAULT_INTAKE_URL", "canonical_body", "hash_command", "idempotency_key"]

DEFAULT_INTAKE_URL = "http://127.0.0.1:18101"
#: Show a progress bar when hashing more files than this.
PROGRESS_THRESHOLD = 3
SUBMIT_TIMEOUT_SECONDS = 30.0
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def canonical_body(submission: HashSubmission) -> bytes:
    """The exact bytes sent to intake: compact JSON with sorted keys."""
    return json.dumps(
        submission.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def idempotency_key(case_id: str, submission: HashSubmission) -> str:
    """Same case + same hashes -> same key, so a retried submission is a no-op.

    The case id is part of the key so that submitting the same hashes to two
    different cases is never mistaken for a retry.
    """
    digest = hashlib.sha256()
    digest.update(case_id.encode("utf-8"))
    digest.update(b"\n")
    digest.update(canonical_body(submission))
    return digest.hexdigest()


def hash_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Images or videos to hash. They are read locally and never uploaded.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    dihedral: Annotated[
        bool,
        typer.Option(
            "--dihedral",
            help="Also compute the 8 rotated/flipped PDQ hashes, so rotated or mirrored "
            "copies are found too.",
        ),
    ] = False,
    submit: Annotated[
        str | None,
        typer.Option(
            "--submit",
            metavar="CASE_ID",
            help="Send the hashes (never the files, never their names) to this case.",
            show_default=False,
        ),
    ] = None,
    intake_url: Annotated[
        str,
        typer.Option("--intake-url", envvar="NCII_INTAKE_URL", help="Intake service base URL."),
    ] = DEFAULT_INTAKE_URL,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar="NCII_API_KEY",
            help="API key for --submit (sent as a Bearer token).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Hash images and videos on this computer and print the hashes as JSON.

    Only hashes leave your machine: never the images, never their file names.

    Images: a PDQ hash with its quality (below 50 is too low to match on) and an MD5.

    Videos: an MD5, plus vPDQ frame hashes if the optional 'vpdq' package is installed.

    stdout gets the JSON body intake accepts; stderr gets a per-file summary.

    Examples:

      ncii hash photo.jpg --dihedral

      NCII_API_KEY=... ncii hash photo.jpg clip.mp4 --submit CASE_ID
    """
    from rich.console import Console

    from ncii_cli.hasher import build_submission

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    url = _check_submit_options(submit, intake_url, api_key) if submit is not None else None

    results, failures = _hash_all(files, dihedral=dihedral, err=err)
    if failures:
        err.print(
            f"error: {failures} of {len(files)} file(s) could not be hashed; "
            "nothing was printed or submitted",
            markup=False,
        )
        raise typer.Exit(code=1)

    submission = build_submission(results)
    typer.echo(json.dumps(submission.body(), indent=2))

    if submit is not None and url is not None and api_key is not None:
        _submit(url, submit, api_key, submission, err)


def _check_submit_options(case_id: str, intake_url: str, api_key: str | None) -> str:
    if not _CASE_ID.fullmatch(case_id):
        raise typer.BadParameter(
            "a case id is 1-128 letters, digits, '.', '_', ':' or '-'", param_hint="--submit"
        )
    if not api_key:
        raise typer.BadParameter(
            "--submit needs an API key: pass --key or set NCII_API_KEY", param_hint="--key"
        )
    parts = urlsplit(intake_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(
            f"expected an http(s) URL, got {intake_url!r}", param_hint="--intake-url"
        )
    return f"{intake_url.rstrip('/')}/v1/cases/{quote(case_id, safe='')}/hashes"


def _hash_all(
    files: Sequence[Path], *, dihedral: bool, err: Console
) -> tuple[list[FileHashes], int]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ncii_cli.hasher import UnsupportedFile, hash_file

    results: list[FileHashes] = []
    failures = 0
    progress = Progress(
        TextColumn("hashing"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=len(files) <= PROGRESS_THRESHOLD,
    )
    with progress:
        task = progress.add_task("hashing", total=len(files))
        for path in files:
            try:
                result = hash_file(path, dihedral=dihedral)
            except UnsupportedFile as exc:
                failures += 1
                progress.console.print(f"error: {path}: {exc.reason}", markup=False)
            else:
                results.append(result)
                progress.console.print(_summary(path, result), markup=False)
                for warning in result.warnings:
                    progress.console.print(f"warning: {path.name}: {warning}", markup=False)
            progress.advance(task)
    return results, failures


def _summary(path: Path, result: FileHashes) -> str:
    parts = [f"{path.name}: {result.media}"]
    if result.width is not None and result.height is not None:
        parts[0] += f" {result.width}x{result.height}"
    pdq = result.pdq
    if pdq is not None and pdq.value is not None:
        flag = " (too low to match on)" if pdq.low_quality else ""
        parts.append(f"pdq {pdq.value[:16]}… quality {pdq.quality}{flag}")
        if pdq.dihedral is not None:
            parts.append("+8 dihedral")
    vpdq = result.vpdq
    if vpdq is not None and vpdq.frames is not None:
        parts.append(f"vpdq {len(vpdq.frames)} frames")
    md5 = result.md5.value or ""
    parts.append(f"md5 {md5[:16]}…")
    return ", ".join(parts)


def _submit(url: str, case_id: str, api_key: str, submission: HashSubmission, err: Console) -> None:
    import httpx

    if _plain_http_to_remote(url):
        err.print("warning: sending the API key over plain http to a non-local host", markup=False)
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Idempotency-Key": idempotency_key(case_id, submission),
        "Content-Type": "application/json",
        "Accept": "application/json, application/problem+json",
    }
    try:
        response = httpx.post(
            url,
            content=canonical_body(submission),
            headers=headers,
            timeout=SUBMIT_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        err.print(f"error: could not reach intake at {url}: {exc}", markup=False)
        raise typer.Exit(code=1) from exc
    if response.is_success:
        err.print(
            f"submitted {len(submission.hashes)} hash(es) to case {case_id} "
            f"(HTTP {response.status_code})",
            markup=False,
        )
        return
    err.print(
        f"error: intake answered HTTP {response.status_code}: {_problem_detail(response)}",
        markup=False,
    )
    raise typer.Exit(code=1)


def _problem_detail(response: httpx.Response) -> str:
    """The ``detail`` of an RFC 9457 problem (or FastAPI error), else the raw text."""
    try:
        payload: Any = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:500] if text else response.reason_phrase
    if isinstance(payload, dict):
        detail = payload.get("detail", payload.get("title"))
        if isinstance(detail, str):
            return detail
        if detail is not None:
            return json.dumps(detail)
    return json.dumps(payload)[:500]


def _plain_http_to_remote(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        return False
    if parts.hostname == "localhost":
        return False
    try:
        return not ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return True
