"""A running service (intake, its own process) sends the security headers on every answer:
operations, docs, problems (F18)."""

from __future__ import annotations

from tests.e2e.conftest import RunningService

EXPECTED = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}


async def test_every_answer_of_a_service_carries_no_store_nosniff_and_frame_denial(
    intake: RunningService,
) -> None:
    async with intake.client() as client:
        answers = {
            "healthz": await client.get("/healthz"),
            "readyz": await client.get("/readyz"),
            "docs": await client.get("/docs"),
            "openapi": await client.get("/openapi.json"),
            "asyncapi": await client.get("/asyncapi"),
            "401 problem": await client.get("/v1/cases"),
            "404 problem": await client.get("/no/such/thing"),
        }
    assert answers["401 problem"].status_code == 401
    wrong = {
        what: {
            name: r.headers.get(name)
            for name, want in EXPECTED.items()
            if r.headers.get(name) != want
        }
        for what, r in answers.items()
    }
    assert {what: headers for what, headers in wrong.items() if headers} == {}
