"""The ``traceparent`` an event carries."""

from __future__ import annotations

from ncii_events.codec import traceparent
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import TracerProvider


def test_an_events_traceparent_is_what_the_w3c_propagator_writes() -> None:
    assert traceparent() is None  # no span: no traceparent, as the propagator writes none
    with TracerProvider().get_tracer("test").start_as_current_span("request"):
        carrier: dict[str, str] = {}
        inject(carrier)
        assert traceparent() == carrier["traceparent"]
    assert trace.get_current_span().get_span_context().is_valid is False
