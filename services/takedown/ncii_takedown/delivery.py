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

A round (decision 0044): the due rows and their platforms read once; each row's notice
composed from one read of its case, signed (one signer per platform and secret version) and
posted on a kept-alive connection (``webhook_client``), ``NoticeSent`` appended on the version
that read returned (reloaded only when another writer got in between), at most
``delivery_concurrency`` rows in flight; then every row's new state in one SQL transaction. A
crash before that transaction leaves the rows pending: they are sent again under the same ids
and recorded once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ncii_contracts.takedown import TakedownEscalated
from ncii_events import tracing
from ncii_events.db import write_transaction
from ncii_events.model import ConcurrencyError
from ncii_events.store import Cause, Version, append_once
from ncii_events.worker import LoopWorker
from opentelemetry import trace
from sqlalchemy import bindparam, select, update
from standardwebhooks.webhooks import Webhook

from ncii_takedown import domain, mail
from ncii_takedown.outbox import SERVICE_ACTOR, derived_id, takedown_ref
from ncii_takedown.read_models import queries
from ncii_takedown.read_models.schema import DELIVERIES, PLATFORMS
from ncii_takedown.webhook_client import WebhookClient, WebhookError

if TYPE_CHECKING:
    from ncii_takedown.app import TakedownApp

log = logging.getLogger("ncii.takedown.delivery")


_UPDATE = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("row_id"), DELIVERIES.c.status == "pending")
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("new_attempts"),
        last_error=bindparam("new_error"),
        next_attempt_at=bindparam("new_next"),
        delivered_at=bindparam("new_delivered"),
    )
)


class Deliverer(LoopWorker):
    name = "deliveries"
    interval = 1.0

    def __init__(self, app: TakedownApp, client: WebhookClient | None = None) -> None:
        super().__init__()
        self.app = app
        self._client = client
        self._signers: dict[tuple[str, int], Webhook] = {}

    @property
    def client(self) -> WebhookClient:
        if self._client is None:
            self._client = WebhookClient(self.app.settings.webhook_timeout_s)
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
        if not rows:
            return 0
        platforms = await self._platforms({row.platform_id for row in rows})
        # Rows are independent (one per notice or cancellation): each mostly waits on the log
        # and the receiver, so they go out concurrently, at most ``delivery_concurrency`` at once.
        gate = asyncio.Semaphore(self.app.settings.delivery_concurrency)
        changes: list[dict[str, Any]] = []

        async def one(row: Any) -> None:
            async with gate:
                if self._stopping.is_set():
                    return
                # in the trace of the event that queued the row (decision 55)
                with tracing.work_span(
                    f"ncii.deliver {row.kind}",
                    parent=row.traceparent,
                    attributes={
                        "ncii.handler": self.name,
                        "ncii.case_id": row.case_id,
                        "ncii.aggregate_id": row.takedown_id,
                    },
                ):
                    change = await self._deliver(row, platforms.get(row.platform_id))
                if change is not None:
                    changes.append(change)

        # every row ends its attempt before the round's state is written, even when one fails
        # (a row whose append failed stays pending: sent again under its id, recorded once)
        outcomes = await asyncio.gather(*(one(row) for row in rows), return_exceptions=True)
        if changes:  # every row's new state in one transaction
            async with write_transaction(self.app.engine) as conn:
                await conn.execute(_UPDATE, changes)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return len(rows)

    async def _platforms(self, ids: set[str]) -> dict[str, Any]:
        async with self.app.engine.connect() as conn:
            found = await conn.execute(select(PLATFORMS).where(PLATFORMS.c.platform_id.in_(ids)))
            return {row.platform_id: row for row in found}

    @staticmethod
    def _change(row: Any, **values: Any) -> dict[str, Any]:
        """A row's new state (unnamed columns keep their value)."""
        return {
            "row_id": row.id,
            "new_status": values.get("status", row.status),
            "new_attempts": values.get("attempts", row.attempts),
            "new_error": values.get("last_error", row.last_error),
            "new_next": values.get("next_attempt_at", row.next_attempt_at),
            "new_delivered": values.get("delivered_at", row.delivered_at),
        }

    async def _deliver(self, row: Any, platform: Any) -> dict[str, Any] | None:
        if row.kind == "escalation":
            return await self._escalate(row)
        app = self.app
        now = app.clock.now()
        now_text = domain.format_time(now)
        smtp = app.smtp_settings()
        if platform is None:
            return self._change(row, status="manual", last_error="no_platform")
        if platform.channel == "webhook" and platform.webhook_url:
            pass
        elif platform.channel == "email" and platform.email and smtp is not None:
            pass
        else:
            # a web form, an e-mail with no mail server configured, or a platform that changed
            # its channel since: a case worker sends it by hand
            reason = "no_smtp" if platform.channel == "email" else f"by_{platform.channel}"
            return self._change(row, status="manual", last_error=reason)
        takedown: domain.Takedown | None = None
        version: Version | None = None
        if row.kind == "notice":
            draft = await app.compose(
                row.case_id, row.takedown_id, sent_at=now_text, platform=platform
            )
            if draft is None:
                return self._change(row, status="cancelled", last_error="no_notice")
            takedown, body, version = draft.takedown, draft.document, draft.version
            if takedown.status != "requested":
                settled = "delivered" if takedown.platform_was_told else "cancelled"
                return self._change(row, status=settled)
        else:
            body = domain.cancellation_document(row.notice_id, row.cancel_reason)
        attempts = row.attempts + 1
        if platform.channel == "email":
            assert smtp is not None
            error = await self._mail(smtp, platform.email, row, body, now_text)
        else:
            error = await self._post(platform, row, body, now)
        if error is None:
            if takedown is not None and version is not None:
                await self._record_sent(row, takedown, version, now_text, attempts)
            return self._change(row, status="delivered", attempts=attempts, delivered_at=now_text)
        return self._failed(row, attempts, error, now)

    async def _escalate(self, row: Any) -> dict[str, Any] | None:
        """An escalation record to the authority registered for the notice's regime, with the
        notice as sent and the timeline as proof; ``EscalationSent`` once it was taken. With
        no authority registered for the regime (or no mail server for its e-mail), a case
        worker sends it by hand (``manual``), and staff retry it once one is."""
        app = self.app
        now = app.clock.now()
        now_text = domain.format_time(now)
        draft = await app.compose(row.case_id, row.takedown_id)
        if draft is None or draft.escalated is None:
            return self._change(row, status="cancelled", last_error="no_notice")
        takedown, escalated = draft.takedown, draft.escalated
        if takedown.status == "cancelled":
            return self._change(row, status="cancelled", last_error="cancelled")
        if takedown.escalation_sent_at is not None:
            return self._change(row, status="delivered")
        assert takedown.deadline_regime is not None
        authority = await queries.authority_for(app.engine, takedown.deadline_regime)
        smtp = app.smtp_settings()
        if authority is None:
            return self._change(row, status="manual", last_error="no_authority")
        if not (
            (authority.channel == "webhook" and authority.webhook_url)
            or (authority.channel == "email" and authority.email and smtp is not None)
        ):
            reason = "no_smtp" if authority.channel == "email" else f"by_{authority.channel}"
            return self._change(row, status="manual", last_error=reason)
        record = escalated.event
        assert isinstance(record, TakedownEscalated)
        body = domain.escalation_document(
            draft.document,
            record,
            escalation_event_id=escalated.envelope.event_id,
            escalation_hash=escalated.envelope.hash,
            escalation_occurred_at=escalated.envelope.occurred_at,
            authority_name=authority.name,
            notifier=app.notifier,
        )
        attempts = row.attempts + 1
        if authority.channel == "email":
            assert smtp is not None
            error = await self._mail(smtp, authority.email, row, body, now_text)
        else:
            error = await self._post(authority, row, body, now)
        if error is None:
            events = takedown.escalation_sent(
                authority_id=authority.platform_id,
                channel=authority.channel,
                at=now_text,
                attempts=attempts,
            )
            if events:
                cause = Cause(SERVICE_ACTOR, row.notice_id, row.notice_id)
                ref = takedown_ref(row.case_id, row.takedown_id)
                event_id = derived_id(row.notice_id, "escalation-sent")
                await append_once(app.store, ref, events[0], event_id, cause)
            return self._change(row, status="delivered", attempts=attempts, delivered_at=now_text)
        return self._failed(row, attempts, error, now)

    def _failed(self, row: Any, attempts: int, error: str, now: datetime) -> dict[str, Any]:
        app = self.app
        log.warning("delivery of a %s failed (attempt %s): %s", row.kind, attempts, error)
        if attempts >= app.settings.max_attempts:
            return self._change(row, status="dead", attempts=attempts, last_error=error)
        delay = domain.retry_delay(attempts, app.jitter(), app.settings.retry_base_ms / 1000)
        return self._change(
            row,
            attempts=attempts,
            last_error=error,
            next_attempt_at=domain.format_time(now + timedelta(seconds=delay)),
        )

    def _signer(self, platform: Any) -> Webhook:
        key = (platform.platform_id, platform.secret_version)
        signer = self._signers.get(key)
        if signer is None:
            if len(self._signers) > 10_000:
                self._signers.clear()
            secret = self.app.webhook_secret(platform.platform_id, platform.secret_version)
            signer = self._signers[key] = Webhook(secret)
        return signer

    async def _post(
        self, platform: Any, row: Any, body: dict[str, Any], now: datetime
    ) -> str | None:
        """One signed webhook attempt: None when the receiver took it, else a short reason."""
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        headers = {
            "webhook-id": row.delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer(platform).sign(row.delivery_id, now, data),
            "content-type": "application/json",
        }
        # The receiver's URL is not recorded, nor is a traceparent sent: the platform is not
        # part of our traces (decision 55).
        with tracing.child_span(
            "HTTP POST webhook",
            attributes={"http.request.method": "POST"},
            kind=trace.SpanKind.CLIENT,
        ) as span:
            try:
                status = await self.client.post(platform.webhook_url, data.encode(), headers)
            except WebhookError as exc:
                span.set_attribute("error.type", type(exc).__name__)
                return str(exc)
            span.set_attribute("http.response.status_code", status)
            if status >= 400:  # a client span's error (semantic conventions), with no message
                span.set_status(trace.StatusCode.ERROR)
        if not 200 <= status < 300:
            return f"http_{status}"
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
        with tracing.child_span("SMTP send", kind=trace.SpanKind.CLIENT) as span:
            try:
                await asyncio.to_thread(mail.send, smtp, msg)
            except mail.SmtpRefusedError as exc:
                span.set_attribute("error.type", type(exc).__name__)
                return f"smtp_{exc}"
            except smtplib.SMTPResponseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                return f"smtp_{exc.smtp_code}"
            except (smtplib.SMTPException, OSError) as exc:
                span.set_attribute("error.type", type(exc).__name__)
                return type(exc).__name__
        return None

    async def _record_sent(
        self,
        row: Any,
        takedown: domain.Takedown,
        version: Version,
        sent_at: str,
        attempts: int,
    ) -> None:
        events = takedown.send(sent_at, attempts=attempts)
        if not events:
            return
        event_id = derived_id(row.notice_id, "sent")
        cause = Cause(SERVICE_ACTOR, row.notice_id, row.notice_id)
        ref = takedown_ref(row.case_id, row.takedown_id)
        try:  # on the version the notice was composed from: no second read
            await self.app.store.append(
                ref, events, expected=version, cause=cause, event_ids=[event_id]
            )
        except ConcurrencyError:  # another writer got in between: reload, decide again
            await append_once(self.app.store, ref, events[0], event_id, cause)
