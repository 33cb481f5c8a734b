"""Running one service as its own process.

uvicorn has no timeout for a request's headers: a client that connects and sends its headers a
byte at a time holds a connection (a file descriptor) for as long as it likes, and enough of them
make the process refuse everyone, health probes included (security review F5). ``HeaderTimeout``
closes a connection whose request headers are not complete ``http_header_timeout`` seconds after
it opened or after the first byte of a later request on it. An idle keep-alive connection is left
to uvicorn's keep-alive timeout, which closes it without a word: a 408 written into an idle
connection races the client's next request, which would read it as its answer. A reverse proxy
in front adds what a process cannot do alone (per-address connection limits, body timeouts): see
the README's deployment notes and decision 21.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ncii_events.service import ServiceSpec, create_app
from ncii_events.settings import Settings
from ncii_events.signing import SigningKeyError, own_signing_key

_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 45\r\n\r\n"
    b"request headers took too long; send them fast"
)


class HeaderTimeout(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for each request's headers."""

    header_timeout: float = 10.0

    _header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is held by nothing else

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # an earlier request on this connection is still being answered: let it finish,
            # then close instead of reading the slow one
            self.cycle.keep_alive = False
            return
        self.transport.write(_TIMED_OUT)
        self.transport.close()


def server_config(app: Any, settings: Settings, port: int) -> uvicorn.Config:
    """How every service is served (decision 21 for the limits)."""
    protocol = type(
        "HeaderTimeoutProtocol", (HeaderTimeout,), {"header_timeout": settings.http_header_timeout}
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="uvloop",
        http=protocol,
        # Above this many open connections (or requests in progress) a new request gets a quick
        # 503 instead of the process running out of file descriptors.
        limit_concurrency=settings.http_max_connections,
        backlog=settings.http_backlog,
        timeout_keep_alive=5,
        # X-Forwarded-For names the client only when a configured proxy sent it; by default no
        # one is believed, not even 127.0.0.1 (uvicorn's own default), so a co-located process
        # cannot choose its address to dodge the failed-auth throttles (decision 25)
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )


def serve(spec: ServiceSpec[Any]) -> None:
    settings = Settings()
    try:
        # checked again at start-up; here it is said plainly, not inside a lifespan traceback
        own_signing_key(settings, spec.name)
    except SigningKeyError as exc:
        print(f"{spec.name} cannot start: {exc}", file=sys.stderr)
        sys.exit(1)
    app = create_app(spec, settings)
    port = settings.port or spec.port
    server = uvicorn.Server(server_config(app, settings, port))
    server.run()
    if not server.started:
        sys.exit(1)
