"""The page staff open in a browser (decision 0048): one HTML document with its script and
styles inline, no asset from any other origin (decision 27). It holds no data: it asks for the
staff API key, keeps it in the tab's ``sessionStorage`` and sends it to the JSON API as the
``Authorization`` header, polling for changes. Its language is the browser's (Accept-Language:
Traditional Chinese or English), switchable on the page."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])
LANGUAGES = ("en", "zh-TW")


@cache
def _template() -> str:
    return (files("ncii_dashboard") / "static" / "dashboard.html").read_text(encoding="utf-8")


def language(accept_language: str | None) -> str:
    """``zh-TW`` when the browser prefers Chinese (Taiwan, Traditional, or plain ``zh``) over
    English, else ``en``: the first of the two in the header's order of preference."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, rest = part.strip().partition(";")
        q = 1.0
        if rest.strip().startswith("q="):
            try:
                q = float(rest.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-TW"
        if tag.startswith("en"):
            return "en"
    return "en"


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def page(
    accept_language: Annotated[str | None, Header()] = None,
    lang: Annotated[str | None, Query(pattern="^(en|zh-TW)$")] = None,
) -> HTMLResponse:
    chosen = lang or language(accept_language)
    return HTMLResponse(_template().replace("__LANG__", chosen, 1))
