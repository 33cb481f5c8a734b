"""Idempotent writes: a retried request (same Idempotency-Key, same caller, same request) gets
the first response again, and is written once.

``Idempotency`` keeps first responses; ``Idempotent`` is what a route asks for (FastAPI
dependency ``IdempotentWrite``): it reads the header, fingerprints the request and runs the
route's handler under the key, so a route states only what it does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from ncii_events.envelope import canonical_json
from ncii_events.http.problems import Problem
from ncii_events.stream import IDEMPOTENCY_BUCKET

Handler = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]
"""A write: its status and the body that may be kept for a replay (no secrets)."""
Reveal = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Adds to a kept body what must be recomputed on every answer rather than kept (a PIN)."""

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="retrying with the same key is a no-op"),
]


def request_fingerprint(method: str, path: str, body: Any) -> str:
    return hashlib.sha256(
        method.encode() + b" " + path.encode() + b"\n" + canonical_json(body)
    ).hexdigest()


class Idempotency:
    """Same key and same request: the first response again. Same key, other request: 422.

    First responses live for 24 hours in the NATS KV bucket ``ncii_idempotency`` under
    ``<service>.`` (shared by a service's replicas; an atomic create settles a race between
    twins). They are stored without
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
        # KV keys allow few characters; the client's key can hold anything. The service's name
        # comes first: its NATS user may read and write only under it (decision 22).
        digest = hashlib.sha256(f"{self.service}\x1f{principal}\x1f{key}".encode()).hexdigest()
        return f"{self.service}.{digest}"

    async def run(
        self,
        *,
        principal: str,
        key: str | None,
        fingerprint: str,
        handler: Handler,
        reveal: Reveal | None = None,
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
        reveal: Reveal | None,
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


@dataclass(frozen=True)
class Idempotent:
    """One write request under its (optional) Idempotency-Key."""

    store: Idempotency
    method: str
    path: str
    key: str | None

    def required(self, what: str) -> str:
        """The key of a write that adds a fact with nothing in clear to tell its retry from a
        second one (decision 46's rule, decision 0057): without it, 428 saying to send one.
        Called after the role check, before anything is read or written."""
        if self.key is None:
            raise Problem(
                428,
                "Idempotency-Key required",
                f"send an Idempotency-Key header with this request: a new value for each {what}, "
                "the same value when you retry it (a retry is then answered with the first "
                f"response and adds no second {what})",
                kind="idempotency-key-required",
            )
        return self.key

    async def run(
        self,
        principal: str,
        body: BaseModel | None,
        handler: Handler,
        *,
        reveal: Reveal | None = None,
    ) -> JSONResponse:
        """Run ``handler`` once for this caller and key; ``body`` is the request's validated
        body, so a key reused for another request is told apart from a retry."""
        fingerprint = request_fingerprint(
            self.method, self.path, body.model_dump(mode="json") if body is not None else None
        )
        return await self.store.run(
            principal=principal,
            key=self.key,
            fingerprint=fingerprint,
            handler=handler,
            reveal=reveal,
        )


def idempotency_store(request: Request) -> Idempotency:
    # The service runtime owns the one store of a process. Reached through the app's state
    # because the runtime module imports this package.
    store = request.app.state.runtime.idempotency
    assert isinstance(store, Idempotency)
    return store


async def idempotent(request: Request, key: IdempotencyKey = None) -> Idempotent:
    """FastAPI dependency: the request's Idempotency-Key, bound to the service's store."""
    # The path itself: ``request.url`` would build and parse the whole URL on every request.
    return Idempotent(idempotency_store(request), request.method, request.scope["path"], key)


IdempotentWrite = Annotated[Idempotent, Depends(idempotent)]
