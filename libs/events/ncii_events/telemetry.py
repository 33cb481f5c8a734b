"""Logs and traces. Logs carry trace and correlation ids, never personal data, keys or tokens."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

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
            for extra in ("correlation_id", "event_type"):
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
    for noisy in ("uvicorn.access", "nats", "faststream", "alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    provider = TracerProvider(resource=Resource.create({"service.name": f"ncii-{service}"}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def install_http_tracing(app: FastAPI, service: str) -> None:
    tracer = trace.get_tracer(f"ncii.{service}.http")

    @app.middleware("http")
    async def _span(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # The route template, not the path: paths carry identifiers, queries may carry anything.
        with tracer.start_as_current_span(
            f"HTTP {request.method}", kind=trace.SpanKind.SERVER
        ) as span:
            span.set_attribute("http.request.method", request.method)
            response = await call_next(request)
            route = request.scope.get("route")
            if route is not None:
                span.set_attribute("http.route", getattr(route, "path", ""))
                span.update_name(f"HTTP {request.method} {getattr(route, 'path', '')}")
            span.set_attribute("http.response.status_code", response.status_code)
            return response
