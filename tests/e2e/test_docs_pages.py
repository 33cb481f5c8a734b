"""The browsable API pages load nothing from another origin (security review F18: Swagger UI
came from cdn.jsdelivr.net, so a key pasted into "Authorize" was readable by third-party
script). Intake as its own process; every service builds these pages the same way."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.e2e.conftest import RunningService


class References(HTMLParser):
    """Every address a page makes the browser load: script and image sources, links."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.found.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_a_docs_page_loads_only_assets_this_service_serves(
    intake: RunningService, page: str
) -> None:
    async with intake.client() as client:
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "http://" not in html and "https://" not in html, html
        parsed = References()
        parsed.feed(html)
        assert parsed.found, html
        for address in parsed.found:
            assert address.startswith("/") and not address.startswith("//"), address
        # the inline start-up script names no other origin and turns the online validator off
        for script in parsed.inline_scripts:
            assert "//" not in script.replace("'/openapi.json'", ""), script
        if page == "/docs":
            assert any('"validatorUrl": null' in s for s in parsed.inline_scripts), html
        for address in parsed.found:
            asset = await client.get(address)
            assert asset.status_code == 200, address
            assert len(asset.content) > 1000, address
            if address.endswith(".js"):
                assert "javascript" in asset.headers["content-type"], address
