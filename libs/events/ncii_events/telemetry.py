"""Logs, traces and metrics. Logs carry trace and correlation ids, never personal data, keys or
tokens; exported over OTLP beside spans and metrics when OTLP is configured (decision 55)."""

from __future__ import annotations

import json
import logging
import sys
import time

from fastapi import FastAPI
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ncii_events import metrics, tracing

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


LOG_ATTRIBUTES = {
    "correlation_id": "ncii.correlation_id",
    "event_type": "ncii.event_type",
    "error_type": "error.type",
}
"""What an exported log record may say besides its message (a record's ``extra`` of these names,
under these attribute keys); the logger's name is the record's scope."""

_SEVERITIES = {
    logging.DEBUG: SeverityNumber.DEBUG,
    logging.INFO: SeverityNumber.INFO,
    logging.WARNING: SeverityNumber.WARN,
    logging.ERROR: SeverityNumber.ERROR,
    logging.CRITICAL: SeverityNumber.FATAL,
}


class _OtlpLogs(logging.Handler):
    """Each log record, as its log line says it, to the OpenTelemetry logs SDK (exported over
    OTLP, in the current span's trace). Not the SDK's ``LoggingHandler``: that one exports every
    extra of a record, the source file's path, and an exception's message and stack trace, which
    may quote personal data (decision 55)."""

    def __init__(self, provider: LoggerProvider) -> None:
        super().__init__(logging.INFO)
        self.provider = provider
        self._loggers: dict[str, Logger] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry"):
            return  # the exporter's own troubles: not sent through the exporter
        logger = self._loggers.get(record.name)
        if logger is None:
            logger = self._loggers[record.name] = self.provider.get_logger(record.name)
        attributes = {
            key: str(getattr(record, name))
            for name, key in LOG_ATTRIBUTES.items()
            if hasattr(record, name)
        }
        if record.exc_info and record.exc_info[0] is not None:
            attributes["error.type"] = record.exc_info[0].__name__  # the type, not the message
        logger.emit(
            timestamp=int(record.created * 1e9),
            severity_number=_SEVERITIES.get(record.levelno, SeverityNumber.UNSPECIFIED),
            severity_text=record.levelname,
            body=record.getMessage(),
            attributes=attributes,
        )


def configure(
    service: str,
    *,
    log_format: str = "text",
    exporter: str | None = None,
    endpoint: str | None = None,
    interval: float = 5.0,
) -> None:
    """Logs, and spans and metrics for ``exporter`` (``console``, ``otlp``, or None: spans carry
    ids and nothing is recorded). OTLP (spans, metrics, log records) goes to ``endpoint`` (a
    base URL), else to where the standard ``OTEL_EXPORTER_OTLP_*`` variables say. Once per
    process."""
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
    resource = Resource.create({"service.name": f"ncii-{service}"})
    # Without an exporter spans are not recorded (they cost CPU for nothing), but they still
    # carry trace ids, which go into the logs and into each event's traceparent.
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(ALWAYS_ON if exporter else ALWAYS_OFF)
    )
    millis = max(1, int(interval * 1000))
    if exporter == "console":
        provider.add_span_processor(
            BatchSpanProcessor(ConsoleSpanExporter(), schedule_delay_millis=millis)
        )
        _meter_provider(resource, ConsoleMetricExporter(), millis)
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = endpoint.rstrip("/") if endpoint else None
        spans = OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None)
        provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=millis))
        _meter_provider(
            resource, OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None), millis
        )
        # logs too: the console exporter's are the lines on stderr already
        logs = LoggerProvider(resource=resource)
        logs.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{base}/v1/logs" if base else None),
                schedule_delay_millis=millis,
            )
        )
        root.addHandler(_OtlpLogs(logs))
    tracing.set_exporting(bool(exporter))
    trace.set_tracer_provider(provider)


def _meter_provider(resource: Resource, exporter: MetricExporter, millis: int) -> None:
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=millis)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    otel_metrics.set_meter_provider(provider)
    metrics.install(provider.get_meter("ncii"))


_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
"""Methods named as they are; any other is ``_OTHER`` (a client chooses it: no open-ended label)."""


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
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        started = time.perf_counter()
        # record_exception=False: an exception's message may quote a request's body; the type
        # is recorded instead (error.type)
        with self.tracer.start_as_current_span(
            f"HTTP {method}",
            kind=trace.SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            status = {"code": 0}

            async def send_with_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(trace.StatusCode.ERROR)
                status["code"] = status["code"] or 500
                raise
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"HTTP {method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.response.status_code", status["code"])
                if metrics.enabled():
                    metrics.http_served(
                        time.perf_counter() - started, template, method, status["code"]
                    )


def install_http_tracing(app: FastAPI, service: str) -> None:
    app.add_middleware(_HttpTracing, service=service)
