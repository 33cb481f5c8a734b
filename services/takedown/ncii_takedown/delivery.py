"""Delivery of notices and cancellations by signed webhook or e-mail. Webhooks follow Standard
Webhooks (``webhook-id`` = the notice id, so a platform de-duplicates a notice sent twice;
``webhook-timestamp`` in UTC seconds; ``webhook-signature`` v1, HMAC-SHA256 with the platform's
derived secret).

The rows come from the takedowns projection (written in its checkpoint's transaction). A 2xx
(or the mail server's acceptance) records ``NoticeSent`` (its id derived from the notice, so a
crash between the answer and the append sends the same notice again under the same id, and
records it once). Anything else is retried with exponential backoff and jitter, from the
injected clock and random source, and is a dead letter after ``max_attempts``: staff see it
(``GET /v1/deliveries?status=dead``) and retry it. E-mail notices go the same way over SMTP
(``ncii_takedown.mail``) when a mail server is configured; web-form notices, and e-mail ones
without a mail server, are ``manual`` rows: a case worker sends them and confirms.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from ncii_events.db import write_transaction
from ncii_events.store import Cause, append_once
from ncii_events.worker import LoopWorker
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook

from ncii_takedown import domain, mail
from ncii_takedown.outbox import SERVICE_ACTOR, derived_id, takedown_ref
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
        rows = await queries.deliveries_due(
            self.app.engine, domain.format_time(now), self.app.settings.delivery_batch
        )
        # Rows are independent (one per notice or cancellation): each mostly waits on the log
        # and the receiver, so they go out concurrently, at most ``delivery_concurrency`` at once.
        gate = asyncio.Semaphore(self.app.settings.delivery_concurrency)

        async def one(row: Any) -> None:
            async with gate:
                if not self._stopping.is_set():
                    await self._deliver(row)

        await asyncio.gather(*(one(row) for row in rows))
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
        smtp = app.smtp_settings()
        if platform is None:
            await self._set(row, status="manual", last_error="no_platform")
            return
        if platform.channel == "webhook" and platform.webhook_url:
            pass
        elif platform.channel == "email" and platform.email and smtp is not None:
            pass
        else:
            # a web form, an e-mail with no mail server configured, or a platform that changed
            # its channel since: a case worker sends it by hand
            reason = "no_smtp" if platform.channel == "email" else f"by_{platform.channel}"
            await self._set(row, status="manual", last_error=reason)
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
        attempts = row.attempts + 1
        if platform.channel == "email":
            assert smtp is not None
            error = await self._mail(smtp, platform.email, row, body, now_text)
        else:
            error = await self._post(platform, row, body, now)
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

    async def _post(
        self, platform: Any, row: Any, body: dict[str, Any], now: datetime
    ) -> str | None:
        """One signed webhook attempt: None when the receiver took it, else a short reason."""
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        secret = self.app.webhook_secret(platform.platform_id, platform.secret_version)
        headers = {
            "webhook-id": row.delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(row.delivery_id, now, data),
            "content-type": "application/json",
        }
        try:
            response = await self.client.post(
                platform.webhook_url, content=data.encode(), headers=headers
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if not 200 <= response.status_code < 300:
            return f"http_{response.status_code}"
        return None

    async def _mail(
        self,
        smtp: mail.SmtpSettings,
        recipient: str,
        row: Any,
        body: dict[str, Any],
        now_text: str,
    ) -> str | None:
        """One SMTP attempt (in a thread: smtplib blocks): None when the server accepted it."""
        msg = mail.message(
            body,
            sender=smtp.sender,
            recipient=recipient,
            delivery_id=row.delivery_id,
            sent_at=now_text,
        )
        try:
            await asyncio.to_thread(mail.send, smtp, msg)
        except mail.SmtpRefusedError as exc:
            return f"smtp_{exc}"
        except smtplib.SMTPResponseException as exc:
            return f"smtp_{exc.smtp_code}"
        except (smtplib.SMTPException, OSError) as exc:
            return type(exc).__name__
        return None

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
