"""``ncii partners``: the referral service's registry of support partners, over its staff API
(so the registration is checked, recorded as an event and answered the same way as from any
client). Only typer is imported at the top (decision 18)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ncii_cli.staff_api import KeyOption, call

partners_app = typer.Typer(
    help="Support partners that receive referrals (the referral service's registry).",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str,
    typer.Option("--referral-url", envvar="NCII_REFERRAL_URL", help="Referral service base URL."),
]
SERVICES = (
    "counselling, legal_advice, police_accompaniment, stopncii_enrolment (adults) or "
    "photodna_programme (minors)"
)


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
    created = call("POST", f"{referral_url.rstrip('/')}/v1/partners", key, body, "referral")
    typer.echo(created["partner_id"])


@partners_app.command("list")
def list_partners(
    referral_url: UrlOption = "http://127.0.0.1:18104",
    key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every registered support partner. Example: `ncii partners list`"""
    items = call("GET", f"{referral_url.rstrip('/')}/v1/partners", key, None, "referral")["items"]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    for p in items:
        taking = "taking referrals" if p["taking_referrals"] else "not taking referrals"
        typer.echo(
            f"{p['partner_id']}  {p['name']}  {p['organisation']}  {','.join(p['services'])}  "
            f"{','.join(p['regions'])}  {','.join(p['languages'])}  {taking}"
        )
