"""``ncii platforms``: the takedown service's platform registry, over its staff API (so the
registration is checked, recorded as an event and answered the same way as from any client),
and which hash-sharing programmes a platform receives from hashmatch (decision 39).
Only typer is imported at the top (decision 18)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ncii_cli.staff_api import KeyOption, call

platforms_app = typer.Typer(
    help="Platforms that receive takedown notices (the takedown service's registry).",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str,
    typer.Option("--takedown-url", envvar="NCII_TAKEDOWN_URL", help="Takedown service base URL."),
]
KINDS = (
    "social, video, forum, dating, cloud_or_image_host, messaging, content_farm, or authority "
    "(where overdue notices of its regimes are escalated)"
)
REGIMES = "tw, us_take_it_down, uk or eu_dsa"


@platforms_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="the platform's name, e.g. PhotoHost")],
    kind: Annotated[str, typer.Option(help=KINDS)],
    jurisdiction: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2, e.g. TW, US, GB")],
    regime: Annotated[list[str], typer.Option(help=f"a legal regime: {REGIMES} (repeat)")],
    channel: Annotated[str, typer.Option(help="webhook, email or web_form")],
    takedown_url: UrlOption = "http://127.0.0.1:18102",
    key: KeyOption = None,
    webhook_url: Annotated[str | None, typer.Option(help="for --channel webhook")] = None,
    email: Annotated[str | None, typer.Option(help="for --channel email")] = None,
    form_url: Annotated[str | None, typer.Option(help="for --channel web_form")] = None,
    api_organisation: Annotated[
        str | None, typer.Option(help="the organisation of its API keys (role platform)")
    ] = None,
    hash_lists: Annotated[bool, typer.Option(help="it takes hash lists")] = False,
    trusted_flagger: Annotated[
        bool, typer.Option(help="it recognises the centre as a trusted flagger (DSA art. 22)")
    ] = False,
) -> None:
    """Register a platform; prints its id (and, for a webhook, its signing secret, once).

    Example: `ncii platforms register PhotoHost --kind cloud_or_image_host --jurisdiction US
    --regime us_take_it_down --channel webhook --webhook-url https://photohost.example/ncii
    --api-organisation photohost`
    """
    body = {
        "name": name,
        "kind": kind,
        "jurisdiction": jurisdiction,
        "regimes": regime,
        "channel": channel,
        "webhook_url": webhook_url,
        "email": email,
        "form_url": form_url,
        "api_organisation": api_organisation,
        "takes_hash_lists": hash_lists,
        "trusted_flagger": trusted_flagger,
    }
    body = {k: v for k, v in body.items() if v is not None}
    created = call("POST", f"{takedown_url.rstrip('/')}/v1/platforms", key, body, "takedown")
    typer.echo(created["platform_id"])
    if created.get("webhook_secret"):
        typer.echo(f"webhook signing secret (give it to the platform): {created['webhook_secret']}")


@platforms_app.command("list")
def list_platforms(
    takedown_url: UrlOption = "http://127.0.0.1:18102",
    key: KeyOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every registered platform. Example: `ncii platforms list`"""
    items = call("GET", f"{takedown_url.rstrip('/')}/v1/platforms", key, None, "takedown")["items"]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    for p in items:
        typer.echo(
            f"{p['platform_id']}  {p['name']}  {p['kind']}  {p['jurisdiction']}  "
            f"{','.join(p['regimes'])}  {p['channel']}  hash-lists={p['takes_hash_lists']}"
        )


HashmatchUrlOption = Annotated[
    str,
    typer.Option(
        "--hashmatch-url", envvar="NCII_HASHMATCH_URL", help="Hashmatch service base URL."
    ),
]
PROGRAMMES = ("adults", "child_protection")


@platforms_app.command("programmes")
def programmes(
    organisation: Annotated[
        str, typer.Argument(help="the organisation of the platform's API keys (role platform)")
    ],
    programme: Annotated[
        list[str] | None,
        typer.Option(
            help="adults or child_protection (repeat for both); with --none, no programme"
        ),
    ] = None,
    none: Annotated[bool, typer.Option("--none", help="subscribe to no programme")] = False,
    hashmatch_url: HashmatchUrlOption = "http://127.0.0.1:18103",
    key: KeyOption = None,
) -> None:
    """Show, or set, the hash-sharing programmes a platform receives (its look-ups and delta
    feed): `adults` banks hold adults' hashes, `child_protection` banks minors'.

    Examples: `ncii platforms programmes photohost` (show);
    `ncii platforms programmes photohost --programme adults --programme child_protection`
    """
    url = f"{hashmatch_url.rstrip('/')}/v1/platforms/{organisation}/programmes"
    chosen = list(programme or [])
    unknown = [p for p in chosen if p not in PROGRAMMES]
    if unknown or (none and chosen):
        typer.echo("error: --programme is adults or child_protection; --none alone", err=True)
        raise typer.Exit(2)
    if chosen or none:
        answer = call("PUT", url, key, {"programmes": chosen}, "hashmatch")
    else:
        answer = call("GET", url, key, None, "hashmatch")
    shown = ", ".join(answer["programmes"]) or "none"
    default = "" if answer.get("recorded", True) else " (the default: never set)"
    typer.echo(f"{answer['platform']}: {shown}{default}")
