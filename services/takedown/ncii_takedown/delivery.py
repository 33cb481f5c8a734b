"""Delivery of notices and cancellations by signed webhook (Standard Webhooks: ``webhook-id``
= the notice id, so a platform de-duplicates a notice sent twice; ``webhook-timestamp`` in UTC
seconds; ``webhook-signature`` v1, HMAC-SHA256 with the platform's derived secret).

The rows come from the takedowns projection (written in its checkpoint's transaction). A 2xx
records ``NoticeSent`` (its id derived from the notice, so a crash between the answer and the
append sends the same notice again under the same webhook id, and records it once). Anything
else is retried with exponential backoff and jitter, from the injected clock and random source,
and is a dead letter after ``max_attempts``: staff see it (``GET /v1/deliveries?status=dead``)
and retry it. Web-form and e-mail notices are not sent here: a case worker sends them and
confirms (``manual`` rows).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from ncii_events.db import write_transaction
from ncii_events.store import Cause
from ncii_events.worker import LoopWorker
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook

from ncii_takedown import domain
from ncii_takedown.outbox import SERVICE_ACTOR, append_once, derived_id, takedown_ref
from ncii_takedown.read_models import queries
from ncii_takedown.read_models.schema import DELIVERIES

if TYPE_CHECKING:
    from ncii_takedown.app import TakedownApp

log = logging.getLogger("ncii.takedown.delivery")


class Deliverer(LoopWorker):
    name = "deliveries"
    interval = 1.0

    def __init__(self, app: TakedownApp, client: httpx.AsyncClient | None = None) -> None:
        super().__init__()
        self.app = app
        self._client = client

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.app.settings.webhook_timeout_s, follow_redirects=False
            )
        return self._client

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def pending(self) -> int:
        return await queries.never_tried(self.app.engine)

    async def step(self) -> int:
        now = self.app.clock.now()
        rows = await queries.deliveries_due(self.app.engine, domain.format_time(now), 20)
        for row in rows:
            if self._stopping.is_set():
                break
            await self._deliver(row)
        return len(rows)

    async def _set(self, row: Any, **values: Any) -> None:
        async with write_transaction(self.app.engine) as conn:
            await conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == row.id, DELIVERIES.c.status == "pending")
                .values(**values)
            )

    async def _deliver(self, row: Any) -> None:
        app = self.app
        now = app.clock.now()
        now_text = domain.format_time(now)
        platform = await queries.platform(app.engine, row.platform_id)
        if platform is None or platform.channel != "webhook" or not platform.webhook_url:
            # the platform changed its channel since: a case worker sends it by hand
            await self._set(row, status="manual", last_error="not_a_webhook")
            return
        takedown: domain.Takedown | None = None
        if row.kind == "notice":
            composed = await app.notice(row.case_id, row.takedown_id, sent_at=now_text)
            if composed is None:
                await self._set(row, status="cancelled", last_error="no_notice")
                return
            takedown, body = composed
            if takedown.status != "requested":
                settled = "delivered" if takedown.platform_was_told else "cancelled"
                await self._set(row, status=settled)
                return
        else:
            body = domain.cancellation_document(row.notice_id, row.cancel_reason)
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        secret = app.webhook_secret(platform.platform_id, platform.secret_version)
        headers = {
            "webhook-id": row.delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(row.delivery_id, now, data),
            "content-type": "application/json",
        }
        attempts = row.attempts + 1
        error: str | None = None
        try:
            response = await self.client.post(
                platform.webhook_url, content=data.encode(), headers=headers
            )
            if not 200 <= response.status_code < 300:
                error = f"http_{response.status_code}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        if error is None:
            if takedown is not None:
                await self._record_sent(row, takedown, now_text, attempts)
            await self._set(row, status="delivered", attempts=attempts, delivered_at=now_text)
            return
        log.warning("delivery of a %s failed (attempt %s): %s", row.kind, attempts, error)
        if attempts >= app.settings.max_attempts:
            await self._set(row, status="dead", attempts=attempts, last_error=error)
            return
        delay = domain.retry_delay(attempts, app.jitter(), app.settings.retry_base_ms / 1000)
        await self._set(
            row,
            attempts=attempts,
            last_error=error,
            next_attempt_at=domain.format_time(now + timedelta(seconds=delay)),
        )

    async def _record_sent(
        self, row: Any, takedown: domain.Takedown, sent_at: str, attempts: int
    ) -> None:
        events = takedown.send(sent_at, attempts=attempts)
        if not events:
            return
        event_id = derived_id(row.notice_id, "sent")
        cause = Cause(SERVICE_ACTOR, row.notice_id, row.notice_id)
        await append_once(
            self.app.store, takedown_ref(row.case_id, row.takedown_id), events[0], event_id, cause
        )
