"""Spans recorded in this process, for tests of the code that starts them: every module tracer
of ``ncii_events`` swapped for one of a local provider with an in-memory exporter (the global
provider can be set only once per process, and services in-process set it), and spans
exported while the test runs (``tracing.exporting()``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ncii_events import outbox, store, tracing
from ncii_events.projection import runner
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Recorded:
    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = list(self.exporter.get_finished_spans())
        return [s for s in found if name is None or s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.spans(name)
        return span


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("ncii.events")
    for module in (tracing, store, runner, outbox):
        if hasattr(module, "_tracer"):
            monkeypatch.setattr(module, "_tracer", tracer)
    tracing.set_exporting(True)
    try:
        yield Recorded(exporter)
    finally:
        tracing.set_exporting(False)
        provider.shutdown()
