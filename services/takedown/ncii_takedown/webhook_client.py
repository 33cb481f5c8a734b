"""A lean HTTP/1.1 client for webhook deliveries: one POST, its status, nothing else.

The deliverer sends many small signed POSTs to few receivers; a general client (httpx) spent
most of the deliverer's time in its own machinery (decision 0031's profile). This one keeps
idle connections per origin (scheme, host, port) and reuses them (keep-alive), writes the
request in one buffer and reads only the status line, the headers and the body's length (the
body is read and dropped, up to a bound). Redirects are not followed (a 3xx is a failed
attempt, as before). A reused connection that the receiver closed while idle is retried once on
a new one, before any answer was read: the same request under the same ``webhook-id``, which the
receiver de-duplicates on anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

MAX_BODY = 1 << 20
"""Answer bodies beyond this are not read: the connection is closed instead of reused."""
MAX_IDLE = 256


class WebhookError(Exception):
    """The attempt failed before a status was read; ``str(exc)`` is a short reason."""


def _default_tls() -> ssl.SSLContext:
    try:
        import certifi  # httpx's bundle, so receivers verify as they did before
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class WebhookClient:
    def __init__(self, timeout_s: float, tls: ssl.SSLContext | None = None) -> None:
        self.timeout_s = timeout_s
        self._tls = tls
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = _default_tls()
        return self._tls

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST ``body``; the answer's status code, or ``WebhookError``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookError("InvalidURL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = (parts.scheme, parts.hostname, port)
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"POST {target} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(self.timeout_s):
                reused = self._take(origin)
                if reused is not None:
                    try:
                        return await self._exchange(origin, reused, request)
                    except _StaleConnectionError:
                        pass  # closed by the receiver while idle: once more, on a new one
                fresh = await self._connect(origin)
                try:
                    return await self._exchange(origin, fresh, request)
                except _StaleConnectionError as exc:
                    raise WebhookError("RemoteProtocolError") from exc
        except TimeoutError as exc:
            raise WebhookError("Timeout") from exc
        except (OSError, ssl.SSLError) as exc:
            raise WebhookError("ConnectError" if isinstance(exc, OSError) else "TLSError") from exc

    def _take(self, origin: tuple[str, str, int]) -> Connection | None:
        pool = self._idle.get(origin)
        while pool:
            reader, writer = pool.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    async def _connect(self, origin: tuple[str, str, int]) -> Connection:
        scheme, hostname, port = origin
        if scheme == "https":
            return await asyncio.open_connection(
                hostname, port, ssl=self._context(), server_hostname=hostname
            )
        return await asyncio.open_connection(hostname, port)

    async def _exchange(
        self, origin: tuple[str, str, int], connection: Connection, request: bytes
    ) -> int:
        reader, writer = connection
        keep = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                raise _StaleConnectionError from exc
            if not status_line:
                raise _StaleConnectionError
            status, keep = await self._read_answer(status_line, reader)
            return status
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            if isinstance(exc, _StaleConnectionError):
                raise
            raise WebhookError("RemoteProtocolError") from exc
        finally:
            if keep:
                pool = self._idle.setdefault(origin, [])
                if len(pool) < MAX_IDLE:
                    pool.append(connection)
                else:
                    writer.close()
            else:
                writer.close()

    async def _read_answer(
        self, status_line: bytes, reader: asyncio.StreamReader
    ) -> tuple[int, bool]:
        version, _, rest = status_line.decode("latin-1").partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError("not an HTTP/1.x answer")
        status = int(rest[:3])
        keep = version == "HTTP/1.1"
        length: int | None = None
        chunked = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                keep = "close" not in value if keep else "keep-alive" in value
        if 100 <= status < 200 or status in (204, 304):
            return status, keep
        if chunked:
            total = 0
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                total += size
                if total > MAX_BODY:
                    return status, False
                await reader.readexactly(size + 2)  # the chunk and its CRLF
                if size == 0:
                    return status, keep
        if length is not None:
            if length > MAX_BODY:
                return status, False
            await reader.readexactly(length)
            return status, keep
        return status, False  # the body runs to the connection's end: not reused

    async def aclose(self) -> None:
        pools, self._idle = self._idle, {}
        for pool in pools.values():
            for _, writer in pool:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


class _StaleConnectionError(ConnectionError):
    """The connection ended before the answer's first byte."""
