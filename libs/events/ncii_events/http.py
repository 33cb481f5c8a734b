"""HTTP conventions shared by every service: RFC 9457 problem details, idempotency, pagination.

Errors never echo what the caller sent: pydantic's validation errors carry the offending input,
which may be personal data, so only the field path and what to fix are returned.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from starlette.exceptions import HTTPException as StarletteHTTPException

from ncii_events.envelope import canonical_json
from ncii_events.stream import IDEMPOTENCY_BUCKET

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
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
        problem = Problem(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            str(exc.detail) if exc.status_code != 404 else "no such resource",
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

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        problem = Problem(
            500, "Internal error", "the server failed; nothing was written; retry later"
        )
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(NatsError, on_log_unavailable)
    app.add_exception_handler(Exception, on_unexpected)


# -- idempotency -------------------------------------------------------------------------------


def request_fingerprint(method: str, path: str, body: Any) -> str:
    return hashlib.sha256(
        method.encode() + b" " + path.encode() + b"\n" + canonical_json(body)
    ).hexdigest()


class Idempotency:
    """Same key and same request: the first response again. Same key, other request: 422.

    First responses live for 24 hours in the NATS KV bucket ``ncii_idempotency`` (shared by a
    service's replicas; an atomic create settles a race between twins). They are stored without
    secrets: a handler returns what may be kept, and ``reveal`` adds anything that must be
    recomputed rather than kept (a victim's PIN).
    """

    def __init__(self, nc: NATS, service: str) -> None:
        self.nc = nc
        self.service = service
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self.nc.jetstream().key_value(IDEMPOTENCY_BUCKET)
        return self._kv

    def _entry_key(self, principal: str, key: str) -> str:
        # KV keys allow few characters; the client's key can hold anything
        return hashlib.sha256(f"{self.service}\x1f{principal}\x1f{key}".encode()).hexdigest()

    async def run(
        self,
        *,
        principal: str,
        key: str | None,
        fingerprint: str,
        handler: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
        reveal: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> JSONResponse:
        if key is None:
            status, body = await handler()
            return JSONResponse(await reveal(body) if reveal else body, status_code=status)
        if not 1 <= len(key) <= 200:
            raise Problem(
                422, "Invalid Idempotency-Key", "Idempotency-Key must be 1 to 200 characters"
            )
        kv = await self._bucket()
        entry_key = self._entry_key(principal, key)
        stored = await self._lookup(kv, entry_key)
        if stored is not None:
            return await self._replay(stored, fingerprint, reveal)
        status, body = await handler()
        if status < 500:
            record = json.dumps({"request": fingerprint, "status": status, "body": body})
            try:
                await kv.create(entry_key, record.encode())
            except KeyWrongLastSequenceError:
                stored = await self._lookup(kv, entry_key)  # a concurrent twin got there first
                if stored is not None:
                    return await self._replay(stored, fingerprint, reveal)
        full = await reveal(body) if reveal is not None else body
        return JSONResponse(full, status_code=status)

    async def _lookup(self, kv: KeyValue, entry_key: str) -> dict[str, Any] | None:
        try:
            entry = await kv.get(entry_key)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        record: dict[str, Any] = json.loads(entry.value)
        return record

    async def _replay(
        self,
        stored: dict[str, Any],
        fingerprint: str,
        reveal: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None,
    ) -> JSONResponse:
        if stored["request"] != fingerprint:
            raise Problem(
                422,
                "Idempotency-Key reused",
                "this Idempotency-Key was used for a different request; use a new key",
                kind="idempotency-key-reused",
            )
        body = stored["body"]
        full = await reveal(body) if reveal is not None else body
        return JSONResponse(
            full, status_code=int(stored["status"]), headers={"Idempotent-Replayed": "true"}
        )


# -- pagination --------------------------------------------------------------------------------


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(canonical_json(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        raise Problem(422, "Invalid cursor", "cursor is not one this API returned") from None
    if not isinstance(value, dict):
        raise Problem(422, "Invalid cursor", "cursor is not one this API returned")
    return value
