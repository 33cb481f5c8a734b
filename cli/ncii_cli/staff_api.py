"""Calls to the services' staff APIs shared by ``ncii platforms``, ``ncii partners`` and
``ncii takedown``. Only typer is imported at the top (decision 18)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="NCII_API_KEY", help="A case worker's or admin's API key."),
]


def call(method: str, url: str, key: str | None, body: Any, service: str) -> Any:
    """One request to a service's staff API as the CLI makes it: the key as a bearer token, a
    write keyed by its body (a retried invocation is written once), a problem printed with its
    fields and turned into the exit code (2 for what the user must fix, 1 otherwise)."""
    import httpx

    if not key:
        typer.echo("error: pass --key or set NCII_API_KEY", err=True)
        raise typer.Exit(2)
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    if body is not None:
        # one key per invocation: a retried request (same body) is written once
        headers["Idempotency-Key"] = str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(body)))
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"error: could not reach {service} at {url}: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from exc
    payload = response.json() if response.content else {}
    if not response.is_success:
        detail = payload.get("detail", response.reason_phrase) if isinstance(payload, dict) else ""
        errors = payload.get("errors", []) if isinstance(payload, dict) else []
        typer.echo(f"error: {service} answered HTTP {response.status_code}: {detail}", err=True)
        for item in errors:
            typer.echo(f"  {item.get('field')}: {item.get('message')}", err=True)
        raise typer.Exit(2 if response.status_code == 422 else 1)
    return payload
