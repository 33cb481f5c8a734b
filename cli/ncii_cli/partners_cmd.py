"""``ncii partners``: the referral service's registry of support partners, over its staff API
(so the registration is checked, recorded as an event and answered the same way as from any
client). Only typer is imported at the top (decision 18)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

partners_app = typer.Typer(
    help="Support partners that receive referrals (the referral service's registry).",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str,
    typer.Option("--referral-url", envvar="NCII_REFERRAL_URL", help="Referral service base URL."),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="NCII_API_KEY", help="A case worker's or admin's API key."),
]
SERVICES = (
    "counselling, legal_advice, police_accompaniment, stopncii_enrolment (adults) or "
    "photodna_programme (minors)"
)


def _call(method: str, url: str, key: str | None, body: Any = None) -> Any:
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
        typer.echo(f"error: could not reach referral at {url}: {type(exc).__name__}", err=True)
        raise typer.Exit(1) from exc
    payload = response.json() if response.content else {}
    if not response.is_success:
        detail = payload.get("detail", response.reason_phrase) if isinstance(payload, dict) else ""
        errors = payload.get("errors", []) if isinstance(payload, dict) else []
        typer.echo(f"error: referral answered HTTP {response.status_code}: {detail}", err=True)
        for item in errors:
            typer.echo(f"  {item.get('field')}: {item.get('message')}", err=True)
        raise typer.Exit(2 if response.status_code == 422 else 1)
    return payload


@partners_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="the partner's name, e.g. Garden of Hope")],
    organisation: Annotated[
        str, typer.Option(help="the organisation of its counsellors' API keys")
    ],
    service: Annotated[list[str], typer.Option(help=f"a service: {SERVICES} (repeat)")],
    region: Annotated[
        list[str], typer.Option(help="a city or county it serves, e.g. taipei_city (repeat)")
    ],
    language: Annotated[list[str], typer.Option(help="a language, e.g. zh-Hant (repeat)")],
    referral_url: UrlOption = "http://127.0.0.1:18104",
    key: KeyOption = None,
    taking_referrals: Annotated[
        bool, typer.Option("--taking-referrals/--not-taking-referrals")
    ] = True,
) -> None:
    """Register a support partner; prints its id.

    Example: `ncii partners register "Garden of Hope" --organisation goh --service counselling
    --service legal_advice --region taipei_city --region new_taipei_city --language zh-Hant`
    """
    body = {
        "organisation": organisation,
        "name": name,
        "services": service,
        "regions": region,
        "languages": language,
        "taking_referrals": taking_referrals,
    }
    created = _call("POST", f"{referral_url.rstrip('/')}/v1/partners", key, body)
    typer.echo(created["partner_id"])


@partners_app.command("list")
def list_partners(
    referral_url: UrlOption = "http://127.0.0.1:18104",
    key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every registered support partner. Example: `ncii partners list`"""
    items = _call("GET", f"{referral_url.rstrip('/')}/v1/partners", key)["items"]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    for p in items:
        taking = "taking referrals" if p["taking_referrals"] else "not taking referrals"
        typer.echo(
            f"{p['partner_id']}  {p['name']}  {p['organisation']}  {','.join(p['services'])}  "
            f"{','.join(p['regions'])}  {','.join(p['languages'])}  {taking}"
        )
