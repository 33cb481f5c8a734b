"""``ncii takedown``: staff's views of the takedown service that are not about one platform
(evidence due for erasure), over its staff API. Only typer is imported at the top (decision
18)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ncii_cli.platforms_cmd import UrlOption
from ncii_cli.staff_api import KeyOption, call

takedown_app = typer.Typer(help="The takedown service: staff views.", no_args_is_help=True)


@takedown_app.command("retention-due")
def retention_due(
    takedown_url: UrlOption = "http://127.0.0.1:18102",
    key: KeyOption = None,
    within_days: Annotated[
        int, typer.Option(help="also list what falls due within this many days")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ended takedowns whose evidence is due for erasure (180 days after the end; the service
    erases it when due). Example: `ncii takedown retention-due --within-days 30`"""
    url = f"{takedown_url.rstrip('/')}/v1/retention/due?within_days={within_days}&limit=500"
    items = call("GET", url, key, None, "takedown")["items"]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    for i in items:
        typer.echo(
            f"{i['erase_at']}  case {i['case_id']}  takedown {i['takedown_id']}  "
            f"{i['status']}  evidence records: {i['evidence_records']}"
        )
