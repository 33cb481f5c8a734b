"""Request body limits, and the key checked before a body is read (decision 21).

FastAPI reads and parses a JSON body before any dependency runs, so an authentication
dependency alone cannot stop a caller without a key from making the process read and parse
50 MB. ``guarded_route`` makes the route class every service router uses; its handler, before
FastAPI's reads the body:

* checks the key, for routes that depend on the service's ``authenticated``: no key or a bad
  one is 401 without reading the body (and counts toward the failed-auth throttle); the
  principal is left in the request scope so that ``authenticated`` does not look it up twice;
* refuses a ``Content-Length`` over the route's limit with 413 without reading the body;
* counts a body without one (chunked) as it arrives and cuts it off with 413 as soon as it
  passes the limit;
* for a route limited per principal (``rate_limits.rate_limited``), takes from the key's
  budget (429 beyond it) before the body is read.

A route declares its limit where it is (``openapi_extra=body_limit(...)``, also shown in its
OpenAPI as ``x-body-limit``); others have ``DEFAULT_BODY_LIMIT``. FastAPI's own
``max_body_size`` is not used: its limiter replaces any answer to an over-long request with a
plain-text 413, a 401 included.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from ncii_events.http.problems import Problem
from ncii_events.http.rate_limits import RATE_KEY, take_before_body

KiB = 1024
MiB = 1024 * KiB
DEFAULT_BODY_LIMIT = 64 * KiB
"""For a route that declares none: any JSON command of a case or a bank fits many times."""
LIMIT_KEY = "x-body-limit"
"""Where a route declares its limit: an OpenAPI extension, so integrators read it too."""
PRINCIPAL_SCOPE_KEY = "ncii.principal"
"""Where the route leaves the principal it authenticated before the body, for ``authenticated``."""

Authenticate = Callable[[Request], Awaitable[Any]]


def describe(max_bytes: int) -> str:
    if max_bytes >= MiB and max_bytes % MiB == 0:
        return f"{max_bytes // MiB} MB"
    if max_bytes >= KiB and max_bytes % KiB == 0:
        return f"{max_bytes // KiB} KB"
    return f"{max_bytes} bytes"


def body_limit(max_bytes: int) -> dict[str, Any]:
    """``openapi_extra`` of a route whose bodies may be up to ``max_bytes``."""
    return {LIMIT_KEY: max_bytes}


def too_large(max_bytes: int) -> Problem:
    """413 with the limit: what to fix is sending less (the same body never passes)."""
    return Problem(
        413,
        "Request body too large",
        f"this endpoint takes at most {describe(max_bytes)} ({max_bytes} bytes) per request; "
        "send less per request (split the list into several requests)",
        kind="body-too-large",
    )


class BodyTooLargeError(HTTPException):
    """Raised from ``receive`` when a body passes its limit while it is read: FastAPI lets an
    ``HTTPException`` through its body parsing (anything else becomes a 400), and the
    service's handler answers it with the problem of ``too_large``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, too_large(max_bytes).detail)


def _depends_on(dependant: Dependant, call: object) -> bool:
    pending = [dependant]
    while pending:
        current = pending.pop()
        if current.call is call:
            return True
        pending.extend(current.dependencies)
    return False


def _declared_length(request: Request) -> int | None:
    """The body's declared length (0 when none is declared), or None when it is not a number."""
    value = request.headers.get("content-length")
    if value is None:
        return 0
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def _counted(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError(limit)
        return message

    return counted


def guarded_route(authenticate: Authenticate) -> type[APIRoute]:
    """The route class of a service's routers (``APIRouter(..., route_class=...)``):
    ``authenticate`` is the dependency that names the caller; routes depending on it check
    the key before the body is read."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            needs_key = _depends_on(self.dependant, authenticate)
            limit = int((self.openapi_extra or {}).get(LIMIT_KEY, DEFAULT_BODY_LIMIT))
            rate = (self.openapi_extra or {}).get(RATE_KEY)

            async def guarded(request: Request) -> Response:
                # the key first: a caller without one learns nothing, not even the limits
                if needs_key:
                    request.scope[PRINCIPAL_SCOPE_KEY] = await authenticate(request)
                declared = _declared_length(request)
                if declared is None:
                    raise Problem(
                        400,
                        "Invalid Content-Length",
                        "Content-Length must be a whole number of bytes",
                    )
                if declared > limit:
                    raise too_large(limit)
                principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
                if rate is not None and principal is not None:
                    # a key over its budget (decision 24) never has its body read either
                    take_before_body(request, rate, principal.principal_id, declared)
                return await handler(Request(request.scope, _counted(request.receive, limit)))

            return guarded

    return GuardedRoute
