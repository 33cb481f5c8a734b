"""The dashboard end to end (issue 13, decisions 0047 and 0048): its own process and NATS user
on the suite's shared log, staff keys and every other role's, events appended as the services
write them. The log holds other tests' cases too, so counts are compared before and after this
module's own events, and per platform on platforms only this module registers."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from ncii_dashboard.read_models.queries import PERIOD_COLUMNS
from ncii_events.signing import SigningKey
from ncii_events.store import EventStore
from ncii_events.stream import REFERENCE

from tests.conftest import ROOT, SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_intake_api import MakeKey
from tests.support.dashboard_events import SECRET, append_scenario
from tests.support.events import REGISTRY
from tests.support.eventually import eventually

ARTEFACTS = ROOT / "var" / "test-artefacts"


@pytest.fixture(scope="module")
def dashboard(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    service = start_service(
        "dashboard", nats_server, tmp_path_factory.mktemp("dashboard"), master_key_file
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
async def keys(dashboard: RunningService, make_key: MakeKey) -> dict[str, str]:
    made = {
        role: await make_key("centre" if role in ("caseworker", "admin", "auditor") else org, role)
        for role, org in (
            ("caseworker", ""),
            ("admin", ""),
            ("auditor", ""),
            ("partner", "ngo-dash"),
            ("platform", "plat-dash"),
            ("counsellor", "partner-dash"),
        )
    }
    await caught_up(dashboard)
    return made


@pytest.fixture(scope="module")
def ref_store(nc: NATS, test_signing: SigningKey) -> EventStore:
    return EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=test_signing)


@pytest.fixture
async def staff(
    dashboard: RunningService, keys: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with dashboard.client(keys["caseworker"]) as client:
        yield client


async def _summary(client: httpx.AsyncClient, path: str = "summary") -> dict[str, Any]:
    """The view once it reflects the read models as they are now (an answer names its
    version; while a newer one is computed the previous one is served)."""

    async def fresh() -> dict[str, Any]:
        current = (await client.get("/v1/dashboard/version")).json()["version"]
        response = await client.get(f"/v1/dashboard/{path}")
        assert response.status_code == 200, response.text
        body = dict(response.json())
        assert body["version"] == current
        return body

    return dict(await eventually(fresh, what=f"{path} reflecting the read models"))


def _platform(summary: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p for p in summary["takedowns"]["platforms"] if p["name"] == name]
    return found


async def test_the_views_count_the_events_appended_to_the_log(
    dashboard: RunningService, staff: httpx.AsyncClient, store: EventStore, ref_store: EventStore
) -> None:
    prefix = uuid.uuid4().hex[:8]
    before = await _summary(staff)
    await append_scenario(store, ref_store, prefix)
    await caught_up(dashboard)
    after = await _summary(staff)
    assert after["version"] != before["version"]
    cases, was = after["cases"], before["cases"]
    assert cases["total"] - was["total"] == 3
    for status in ("open", "closed", "withdrawn"):
        assert cases["by_status"].get(status, 0) - was["by_status"].get(status, 0) == 1, status
    assert cases["erased"] - was["erased"] == 1
    p1 = _platform(after, f"FaceSpace {prefix}")
    assert (p1["takedowns"], p1["removed"], p1["refused"], p1["removal_rate"]) == (2, 1, 1, 0.5)
    assert p1["median_hours_to_removal"] == 10.0 and p1["jurisdiction"] == "TW"
    p2 = _platform(after, f"VidHub {prefix}")
    assert (p2["overdue_open"], p2["removal_rate"]) == (1, 0.0)
    cards = {c["name"]: c for c in after["compliance"]["scorecards"]}
    assert cards[f"FaceSpace {prefix}"]["compliance_rate"] == 0.5
    (seen,) = [
        m for m in after["matches"]["by_platform"] if m["platform"] == f"plat-facespace-{prefix}"
    ]
    assert (seen["matches"], seen["sightings"]) == (1, 5)
    for path in ("cases", "takedowns", "compliance", "reports", "referrals", "matches"):
        view = await _summary(staff, path)
        assert view["version"] == after["version"]
        assert view[path] == after[path]
        assert SECRET not in json.dumps(view)


async def test_periods_export_as_csv_for_the_annual_report(staff: httpx.AsyncClient) -> None:
    for period, width in (("month", 7), ("year", 4)):
        response = await staff.get("/v1/dashboard/periods", params={"period": period})
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
        assert rows and all(len(r["period"]) == width for r in rows)
        exported = await staff.get(
            "/v1/dashboard/periods", params={"period": period, "format": "csv"}
        )
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert f"ncii-{period}s.csv" in exported.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert tuple(table[0]) == PERIOD_COLUMNS
        assert [r["period"] for r in table] == [r["period"] for r in rows]
        assert [int(r["cases_opened"]) for r in table] == [r["cases_opened"] for r in rows]


async def test_only_case_workers_and_admins_read_the_dashboard(
    dashboard: RunningService, keys: dict[str, str]
) -> None:
    for role in ("caseworker", "admin"):
        async with dashboard.client(keys[role]) as client:
            assert (await client.get("/v1/dashboard/summary")).status_code == 200, role
    for role in ("partner", "platform", "counsellor", "auditor"):
        async with dashboard.client(keys[role]) as client:
            response = await client.get("/v1/dashboard/takedowns")
        assert response.status_code == 403, role
        assert response.headers["content-type"] == "application/problem+json"
        assert "caseworker, admin" in response.json()["detail"]
    async with dashboard.client() as client:
        response = await client.get("/v1/dashboard/summary")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]


async def test_a_period_it_does_not_know_is_a_problem_saying_what_to_send(
    staff: httpx.AsyncClient,
) -> None:
    response = await staff.get("/v1/dashboard/periods", params={"period": "week"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "month" in response.text and "year" in response.text


async def test_the_page_comes_in_the_browsers_language_and_loads_nothing_from_elsewhere(
    dashboard: RunningService,
) -> None:
    async with dashboard.client() as client:
        chinese = await client.get("/dashboard", headers={"Accept-Language": "zh-TW,zh;q=0.9"})
        english = await client.get("/dashboard", headers={"Accept-Language": "en-GB,zh;q=0.5"})
        chosen = await client.get("/dashboard", params={"lang": "zh-TW"})
    assert chinese.status_code == 200 and '<html lang="zh-TW">' in chinese.text
    assert '<html lang="en">' in english.text
    assert '<html lang="zh-TW">' in chosen.text
    for page in (chinese.text, english.text):
        assert " src=" not in page and 'href="http' not in page and "<link" not in page


async def _eventually_text(page: Any, selector: str, want: str) -> None:
    async def shown() -> bool:
        text = await page.locator(selector).first.inner_text()
        assert want in text, f"{selector}: {text!r}"
        return True

    await eventually(shown, what=f"{selector} showing {want!r}")


async def test_staff_see_the_counts_update_by_themselves_in_headless_chromium(
    dashboard: RunningService,
    keys: dict[str, str],
    staff: httpx.AsyncClient,
    store: EventStore,
    ref_store: EventStore,
) -> None:
    from playwright.async_api import async_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
    from tests.support.dashboard_events import more_removals

    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (one stat, before anything runs)
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make chromium` (Debian's package)")
    prefix = uuid.uuid4().hex[:8]
    await append_scenario(store, ref_store, prefix)
    await caught_up(dashboard)
    total = (await _summary(staff))["cases"]["total"]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                locale="en-GB", extra_http_headers={"Accept-Language": "en-GB"}
            )
            page = await context.new_page()
            outside: list[str] = []
            page.on(
                "request",
                lambda r: None if r.url.startswith(dashboard.url) else outside.append(r.url),
            )
            await page.goto(f"{dashboard.url}/dashboard?every=250")
            # a key of another role is refused, with what the API said
            await page.fill("#key", keys["partner"])
            await page.click("#login button[type=submit]")
            await _eventually_text(page, "#error", "may not do this")
            await page.fill("#key", keys["caseworker"])
            await page.click("#login button[type=submit]")
            row = f"table[data-testid=takedowns] tr:has-text('FaceSpace {prefix}')"
            await _eventually_text(page, "[data-testid=cases-total]", str(total))
            await _eventually_text(page, row, "\t2\t2\t1\t50.0%\t10\t0\t1\t0")
            assert await page.evaluate("sessionStorage.getItem('ncii_key')") == keys["caseworker"]

            # more events: the page follows by itself (no reload)
            await more_removals(store, prefix)
            await _eventually_text(page, "[data-testid=cases-total]", str(total + 1))
            await _eventually_text(page, row, "\t3\t3\t2\t66.7%")
            await page.screenshot(path=str(ARTEFACTS / "dashboard-en.png"), full_page=True)

            await page.click("#lang")
            await _eventually_text(page, "h1", "中心儀表板")
            await _eventually_text(page, "main", "各平台下架情形")
            await _eventually_text(page, "main", "下架率")
            assert await page.evaluate("document.documentElement.lang") == "zh-TW"
            await page.screenshot(path=str(ARTEFACTS / "dashboard-zh-TW.png"), full_page=True)
            assert SECRET not in await page.content()
            assert outside == []
        finally:
            await browser.close()
    assert (ARTEFACTS / "dashboard-zh-TW.png").stat().st_size > 10_000
