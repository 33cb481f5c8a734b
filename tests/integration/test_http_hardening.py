"""An app with the shared HTTP pieces behind a real uvicorn server: an unhandled error is logged
once, by type and path only (F14), and every answer carries the security headers (F18)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from ncii_events.embedded import free_port
from ncii_events.http import install_error_handlers

from tests.support.eventually import eventually

SECRET = "victim@example.org"  # what an exception message may carry (an SQL parameter, say)
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom/{case_id}")
    async def boom(case_id: str) -> dict[str, str]:
        raise ValueError(f"INSERT ... parameters ('{SECRET}', '{case_id}')")

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
async def served() -> AsyncIterator[str]:
    port = free_port()
    # log_config=None: uvicorn's loggers propagate to the root, where the test sees them
    server = uvicorn.Server(
        uvicorn.Config(_app(), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="uvicorn to listen")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_an_unhandled_error_is_logged_once_with_its_type_and_path_only(
    served: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient(base_url=served) as client:
            response = await client.get("/boom/case-1")
            # the connection stays usable (uvicorn used to drop it after an unhandled error)
            assert (await client.get("/fine")).status_code == 200
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert SECRET not in response.text
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    [record] = errors
    assert record.name == "ncii.http"
    assert record.getMessage().startswith("unhandled ValueError on /boom/case-1 (raised at ")
    assert record.exc_info is None and record.exc_text is None
    assert SECRET not in caplog.text


async def test_every_answer_carries_the_security_headers_problems_and_docs_included(
    served: str,
) -> None:
    async with httpx.AsyncClient(base_url=served) as client:
        answers = {
            "ok": await client.get("/fine"),
            "500 problem": await client.get("/boom/x"),
            "404 problem": await client.get("/no/such/route"),
            "405 problem": await client.post("/fine"),
            "docs": await client.get("/docs"),
            "openapi": await client.get("/openapi.json"),
        }
    missing = {
        what: {
            name: r.headers.get(name)
            for name, value in SECURITY_HEADERS.items()
            if r.headers.get(name) != value
        }
        for what, r in answers.items()
    }
    assert {what: m for what, m in missing.items() if m} == {}
