"""Logs and traces. Logs carry trace and correlation ids, never personal data, keys or tokens."""

from __future__ import annotations

import json
import logging
import sys
import time

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ncii_events import tracing

_configured = False


class _Formatter(logging.Formatter):
    def __init__(self, service: str, as_json: bool) -> None:
        super().__init__()
        self.service = service
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        ctx = trace.get_current_span().get_span_context()
        trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else None
        if self.as_json:
            doc = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                "level": record.levelname.lower(),
                "service": self.service,
                "logger": record.name,
                "message": record.getMessage(),
                "trace_id": trace_id,
            }
            for extra in ("correlation_id", "event_type", "error_type"):
                if hasattr(record, extra):
                    doc[extra] = getattr(record, extra)
            if record.exc_info and record.exc_info[0] is not None:
                doc["error_type"] = record.exc_info[0].__name__
            return json.dumps(doc)
        line = f"{record.levelname:<7} {self.service} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[0] is not None:
            # the type only: an exception's message or locals may hold personal data
            line += f" [{record.exc_info[0].__name__}]"
        return line


def configure(service: str, *, log_format: str = "text", exporter: str | None = None) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(service, log_format == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("uvicorn.access", "nats", "alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Without an exporter spans are not recorded (they cost CPU for nothing), but they still
    # carry trace ids, which go into the logs and into each event's traceparent.
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"ncii-{service}"}),
        sampler=ParentBased(ALWAYS_ON if exporter else ALWAYS_OFF),
    )
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    tracing.set_exporting(bool(exporter))
    trace.set_tracer_provider(provider)


class _HttpTracing:
    """A span per request, as plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a
    task and two queues per request). Named by the route template, not the path: paths carry
    identifiers, and queries may carry anything."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.tracer = trace.get_tracer(f"ncii.{service}.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        with self.tracer.start_as_current_span(
            f"HTTP {method}", kind=trace.SpanKind.SERVER
        ) as span:
            status = {"code": 0}

            async def send_with_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"HTTP {method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.response.status_code", status["code"])


def install_http_tracing(app: FastAPI, service: str) -> None:
    app.add_middleware(_HttpTracing, service=service)
