"""The ``traceparent`` an event carries, and how a consumer's span joins its trace (decision
49)."""

from __future__ import annotations

import pytest
from ncii_events import metrics, tracing
from ncii_events.codec import traceparent
from ncii_events.settings import Settings
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags


def test_an_events_traceparent_is_what_the_w3c_propagator_writes() -> None:
    assert traceparent() is None  # no span: no traceparent, as the propagator writes none
    with TracerProvider().get_tracer("test").start_as_current_span("request"):
        carrier: dict[str, str] = {}
        inject(carrier)
        assert traceparent() == carrier["traceparent"]
    assert trace.get_current_span().get_span_context().is_valid is False


def test_a_consumers_span_is_a_child_of_the_span_that_wrote_the_traceparent() -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("append") as append:
        written = traceparent()
    consumer = tracer.start_span("handle", context=tracing.parent_of(written))
    parent = consumer.parent
    assert parent is not None and parent.is_remote
    assert parent.span_id == append.get_span_context().span_id
    assert consumer.get_span_context().trace_id == append.get_span_context().trace_id


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "00-" + "1" * 32 + "-" + "2" * 16 + "-00",  # not sampled: nothing worth a span
        "00-" + "0" * 32 + "-" + "2" * 16 + "-01",  # an invalid trace id
        "01-" + "1" * 32 + "-" + "2" * 16 + "-01",  # a version this code does not know
        "00-" + "x" * 32 + "-" + "2" * 16 + "-01",
        "00-" + "1" * 31 + "-" + "2" * 17 + "-01",
        "00_" + "1" * 32 + "-" + "2" * 16 + "-01",
    ],
)
def test_an_unsampled_or_malformed_traceparent_gives_the_consumer_no_parent(
    value: str | None,
) -> None:
    assert tracing.parent_of(value) is None


def test_work_an_event_caused_keeps_the_span_that_handled_it_else_the_events_own() -> None:
    handled = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    own = "00-" + "3" * 32 + "-" + "4" * 16 + "-01"
    try:
        tracing.remember("event-0", handled)
        assert tracing.caused_by("event-0", own) == tracing.format_traceparent(handled)
        assert tracing.caused_by("event-1", own) == own  # handled in another process
        assert tracing.caused_by("event-1", None) is None
        for i in range(1, tracing.REMEMBERED + 1):
            tracing.remember(f"event-{i}", handled)
        assert tracing.caused_by("event-0", own) == own  # only the newest are kept
    finally:
        tracing.set_exporting(False)  # forgets them


def test_unexported_work_still_carries_its_causes_trace_into_what_it_appends() -> None:
    cause = "00-" + "5" * 32 + "-" + "6" * 16 + "-01"
    assert not tracing.exporting()
    with tracing.work_span("ncii.outbox.publish X", parent=cause):
        assert traceparent() == cause  # what an append here writes
    assert traceparent() is None
    with tracing.work_span("ncii.sweep x") as span:  # no cause: nothing
        assert traceparent() is None
        tracing.link(span, cause)  # a no-op on a span that is not recorded


def test_otlp_is_chosen_when_an_otlp_endpoint_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert Settings().telemetry_exporter() is None
    assert Settings(otlp_endpoint="http://collector:4318").telemetry_exporter() == "otlp"
    assert Settings(otel_exporter="console").telemetry_exporter() == "console"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert Settings().telemetry_exporter() == "otlp"
    monkeypatch.setenv("NCII_OTEL_EXPORTER", "console")
    assert Settings().telemetry_exporter() == "console"


def test_metrics_record_nothing_until_installed() -> None:
    assert not metrics.enabled()
    metrics.appended(["CaseOpened"])  # no instrument: nothing to do, and no error
    metrics.http_served(0.01, "/v1/cases", "POST", 201)
