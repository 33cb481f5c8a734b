"""A local OTLP receiver on the real protocol: an HTTP server that accepts ``POST /v1/traces``,
``POST /v1/metrics`` and ``POST /v1/logs`` (OTLP/HTTP, protobuf, gzip or not), decodes them
with opentelemetry-proto and keeps what it got, as a collector would receive it."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    events: list[tuple[str, dict[str, Any]]]
    status_message: str


@dataclass(frozen=True)
class Point:
    service: str
    metric: str
    attributes: dict[str, Any]
    value: float


@dataclass(frozen=True)
class Log:
    service: str
    scope: str
    severity: str
    body: Any
    attributes: dict[str, Any]
    trace_id: str
    span_id: str


@dataclass
class Received:
    """Everything the receiver was sent, decoded, plus each request's bytes (after gzip)."""

    spans: list[Span] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            service = str(attributes(resource_spans.resource.attributes).get("service.name"))
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    spans.append(
                        Span(
                            service=service,
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            attributes=attributes(s.attributes),
                            links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                            events=[(e.name, attributes(e.attributes)) for e in s.events],
                            status_message=s.status.message,
                        )
                    )
        with self.lock:
            self.spans.extend(spans)
            self.bodies.append(body)
            self.texts.append(str(request))

    def metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        points = []
        for resource_metrics in request.resource_metrics:
            service = str(attributes(resource_metrics.resource.attributes).get("service.name"))
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for p in getattr(metric, kind).data_points:
                        if kind == "histogram":
                            value = float(p.count)
                        else:
                            value = float(getattr(p, p.WhichOneof("value")))
                        points.append(Point(service, metric.name, attributes(p.attributes), value))
        with self.lock:
            self.points.extend(points)
            self.bodies.append(body)
            self.texts.append(str(request))

    def log_records(self, body: bytes) -> None:
        request = ExportLogsServiceRequest.FromString(body)
        logs = []
        for resource_logs in request.resource_logs:
            service = str(attributes(resource_logs.resource.attributes).get("service.name"))
            for scope_logs in resource_logs.scope_logs:
                for r in scope_logs.log_records:
                    logs.append(
                        Log(
                            service=service,
                            scope=scope_logs.scope.name,
                            severity=r.severity_text,
                            body=value_of(r.body),
                            attributes=attributes(r.attributes),
                            trace_id=r.trace_id.hex(),
                            span_id=r.span_id.hex(),
                        )
                    )
        with self.lock:
            self.logs.extend(logs)
            self.bodies.append(body)
            self.texts.append(str(request))

    def received_logs(self) -> list[Log]:
        with self.lock:
            return list(self.logs)

    def snapshot(self) -> tuple[list[Span], list[Point], list[bytes], list[str]]:
        with self.lock:
            return list(self.spans), list(self.points), list(self.bodies), list(self.texts)


class OtlpReceiver:
    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    received.traces(body)
                    answer = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    received.metrics(body)
                    answer = ExportMetricsServiceResponse().SerializeToString()
                elif self.path == "/v1/logs":
                    received.log_records(body)
                    answer = ExportLogsServiceResponse().SerializeToString()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
