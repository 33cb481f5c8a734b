"""Security headers on every response (problems and ``/docs`` included).

- ``Cache-Control: no-store``: answers carry contact data, PINs and case details; no browser or
  proxy may keep a copy.
- ``X-Content-Type-Options: nosniff``: a browser renders a response only as the type it says.
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no page may frame ours (the
  first for old browsers, the second for current ones).

HSTS is the TLS terminator's to send: the services speak plain HTTP behind it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


class SecurityHeaders:
    """Plain ASGI middleware (no task or queue per request, unlike BaseHTTPMiddleware); it
    replaces a route's own value of these headers, so none can weaken them by accident."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() not in _NAMES]
                message["headers"] = [*headers, *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
