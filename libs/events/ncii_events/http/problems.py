"""RFC 9457 problem details: how every service answers an error.

Errors never echo what the caller sent: pydantic's validation errors carry the offending input,
which may be personal data, so only the field path and what to fix are returned.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ncii_events.http.headers import SecurityHeaders

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://ncii.invalid/problems/"
log = logging.getLogger("ncii.http")


class Problem(Exception):
    """Raise to answer with a problem document. ``errors``: [{"field": ..., "message": ...}]."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.errors = errors or []
        self.headers = headers or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.errors:
            doc["errors"] = self.errors
        return doc


def not_found(what: str = "case") -> Problem:
    # The same answer whether it does not exist or belongs to another organisation.
    return Problem(404, "Not found", f"no {what} with this identifier is visible to you")


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _what_to_fix(error: dict[str, Any]) -> str:
    """pydantic's message without the input value; ``ctx`` holds limits, never the input."""
    kind = error.get("type", "")
    if kind == "missing":
        return "this field is required"
    if kind == "extra_forbidden":
        return "this field is not accepted here; remove it"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": _field_path(tuple(e.get("loc", ()))), "message": _what_to_fix(e)}
            for e in exc.errors()
        ]
        problem = Problem(
            422,
            "Invalid request",
            "some fields are missing or invalid: see errors for what to fix",
            kind="validation",
            errors=errors,
        )
        return problem_response(problem, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        titles = {
            404: "Not found",
            405: "Method not allowed",
            401: "Unauthorized",
            413: "Request body too large",  # its detail says the limit (``limits``)
        }
        problem = Problem(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail) if exc.status_code != 404 else "no such resource",
            kind="body-too-large" if exc.status_code == 413 else None,
            headers=dict(exc.headers or {}),
        )
        return problem_response(problem, request.url.path)

    async def on_log_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A timeout may hide a write that did land: a retry with the same Idempotency-Key
        # finds it (event ids derive from the key), so the answer is "retry", not "failed".
        log.warning("event log unavailable (%s) on %s", type(exc).__name__, request.url.path)
        problem = Problem(
            503,
            "Event log unavailable",
            "the event log did not answer in time; retry with the same Idempotency-Key",
            kind="log-unavailable",
            headers={"Retry-After": "1"},
        )
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(NatsError, on_log_unavailable)
    # Not ``add_exception_handler(Exception, ...)``: Starlette runs that one in its outermost
    # middleware and then re-raises, so uvicorn logged every error a second time, with the
    # message and traceback (on PostgreSQL the SQL and its parameters).
    app.add_middleware(UnhandledErrors)
    # added after, so outside it: its 500 carries the headers too
    app.add_middleware(SecurityHeaders)


def _raised_at(exc: BaseException) -> str:
    """Where in the code it was raised (file:line): helps to find it, carries no values."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


class UnhandledErrors:
    """The last resort, as plain ASGI middleware inside Starlette's own error middleware: one
    log record per unhandled error, with the exception type, the path and where it was raised,
    never its message or traceback values (those may hold personal data or SQL parameters);
    the caller gets a 500 problem. Nothing is re-raised, so nothing logs it again."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as exc:
            path = scope.get("path", "")
            log.error(
                "unhandled %s on %s (raised at %s)",
                type(exc).__name__,
                path,
                _raised_at(exc),
                extra={"error_type": type(exc).__name__},
            )
            if started:  # too late for a problem document; the server closes the response
                return
            problem = Problem(
                500, "Internal error", "the server failed; nothing was written; retry later"
            )
            await problem_response(problem, path)(scope, receive, send)
