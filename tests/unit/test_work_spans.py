# ruff: noqa: F811 (the tests take the fixture imported from tests.support.spans)
"""The spans a worker starts (decision 55): a child of the trace its row kept, else a root;
calls out inside it; clock-driven work linked to what it acts on; an exception's type only."""

from __future__ import annotations

import pytest
from ncii_events import tracing
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tests.support.spans import Recorded, recorded  # noqa: F401 (the fixture)

CAUSE = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
UNSAMPLED = "00-" + "c" * 32 + "-" + "d" * 16 + "-00"


def test_work_caused_by_an_event_is_a_child_of_the_span_its_row_kept(
    recorded: Recorded,
) -> None:
    with tracing.work_span("ncii.deliver notice", parent=CAUSE, attributes={"ncii.handler": "d"}):
        with tracing.child_span("HTTP POST webhook", kind=trace.SpanKind.CLIENT):
            pass
    work, post = recorded.one("ncii.deliver notice"), recorded.one("HTTP POST webhook")
    assert work.parent is not None and work.parent.span_id == int("b" * 16, 16)
    assert work.context.trace_id == int("a" * 32, 16)
    assert post.parent is not None and post.parent.span_id == work.context.span_id
    assert post.kind == trace.SpanKind.CLIENT


def test_work_without_a_sampled_cause_starts_a_trace_of_its_own_whatever_is_current(
    recorded: Recorded,
) -> None:
    with TracerProvider().get_tracer("test").start_as_current_span("elsewhere"):
        with tracing.work_span("ncii.sweep deadlines"):
            pass
        with tracing.work_span("ncii.outbox.publish X", parent=UNSAMPLED):
            pass
    for name in ("ncii.sweep deadlines", "ncii.outbox.publish X"):
        assert recorded.one(name).parent is None


def test_a_failed_piece_of_work_records_the_exceptions_type_never_its_message(
    recorded: Recorded,
) -> None:
    with pytest.raises(ValueError), tracing.work_span("ncii.deliver notice", parent=CAUSE):
        raise ValueError("victim@example.org")
    span = recorded.one("ncii.deliver notice")
    assert span.attributes is not None and span.attributes["error.type"] == "ValueError"
    assert span.status.status_code == trace.StatusCode.ERROR
    assert not span.status.description and not span.events


def test_a_sweep_links_the_sampled_events_it_acts_on_and_a_follow_round_its_sources(
    recorded: Recorded,
) -> None:
    with tracing.work_span("ncii.sweep reports") as span:
        tracing.link(span, CAUSE)
        tracing.link(span, UNSAMPLED)  # nothing recorded upstream: nothing to point at
        tracing.link(span, None)
    (linked,) = recorded.one("ncii.sweep reports").links
    assert linked.context.span_id == int("b" * 16, 16)
    tracing.past_span("ncii.matcher.follow", 0, {"messaging.batch.message_count": 3}, [CAUSE])
    follow = recorded.one("ncii.matcher.follow")
    assert follow.parent is None
    assert [link.context.trace_id for link in follow.links] == [int("a" * 32, 16)]


def test_a_span_that_handled_an_event_is_found_by_the_events_place_in_the_log() -> None:
    ctx = trace.SpanContext(5, 6, is_remote=False, trace_flags=trace.TraceFlags(1))
    try:
        tracing.remember(tracing.position("NCII_CASES", 41), ctx)
        assert tracing.handled_at("NCII_CASES", 41) == tracing.format_traceparent(ctx)
        assert tracing.handled_at("NCII_CASES", 42) is None
        assert tracing.handled_at("NCII_REFERENCE", 41) is None
    finally:
        tracing.set_exporting(False)
