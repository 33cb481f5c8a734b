"""Whether spans are exported, and how a consumer's span joins the producer's trace (decision
49).

Without an exporter spans are not recorded, yet starting one is not free (decision 9 has the
figure): the log's per-event paths (an append, a projection's batch, an outbox row) start theirs
only when spans go somewhere. Trace ids still reach events and logs through the caller's span
(the HTTP request's).

Across services the trace context travels in each event's ``traceparent``: a consumer's span for
an event is a child of the span that appended it (``parent_of``). Within a service, a reactor's
decision reaches its outbox publisher through ``remember``/``recall`` (the consumer span of the
event that caused an outbox row, by that event's id), so the event the publisher appends
continues the same trace.

Spans carry names and attributes from ``ALLOWED_ATTRIBUTES`` only: event types, ids that are
random (event, case, aggregate ids, projection names), counts, HTTP route templates, methods and
statuses; never a payload field, a path, a query or an exception's message.
"""

from __future__ import annotations

from collections import OrderedDict

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

_exporting = False

ALLOWED_ATTRIBUTES = frozenset(
    {
        "ncii.aggregate",
        "ncii.aggregate_id",
        "ncii.case_id",
        "ncii.event_id",
        "ncii.event_type",
        "ncii.event_types",
        "ncii.handler",
        "ncii.seq",
        "ncii.projection",
        "messaging.batch.message_count",
        "messaging.system",
        "messaging.operation.type",
        "http.route",
        "http.request.method",
        "http.response.status_code",
        "error.type",
    }
)
"""Every span attribute the code may set (a unit test reads the sources for others)."""

REMEMBERED = 4096
"""Consumer spans kept for the outbox publisher (the newest; an older cause starts a new trace,
as one after a restart does)."""

_remembered: OrderedDict[str, SpanContext] = OrderedDict()


def exporting() -> bool:
    return _exporting


def set_exporting(on: bool) -> None:
    global _exporting
    _exporting = on
    if not on:
        _remembered.clear()


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The span context a W3C ``traceparent`` names (version 00), or None when it is absent or
    malformed (an event's traceparent is not trusted to be well-formed: it is only a hint)."""
    if not value or len(value) != 55:
        return None
    version, trace_id, span_id, flags = value.split("-") if value.count("-") == 3 else ("",) * 4
    if version != "00" or len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
        return None
    try:
        ctx = SpanContext(
            int(trace_id, 16),
            int(span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(int(flags, 16)),
        )
    except ValueError:
        return None
    return ctx if ctx.is_valid else None


def parent_of(traceparent: str | None) -> Context | None:
    """The context to start a consumer's span in: the producer's span, when it was sampled
    (None otherwise: an unsampled parent makes no span worth recording)."""
    ctx = parse_traceparent(traceparent)
    if ctx is None or not ctx.trace_flags.sampled:
        return None
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def remember(event_id: str, ctx: SpanContext) -> None:
    """The span that handled ``event_id`` in this process (see ``recall``)."""
    _remembered[event_id] = ctx
    _remembered.move_to_end(event_id)
    while len(_remembered) > REMEMBERED:
        _remembered.popitem(last=False)


def recall(event_id: str | None) -> Context | None:
    """The context of the span that handled ``event_id`` here, if it is still remembered."""
    if event_id is None:
        return None
    ctx = _remembered.get(event_id)
    if ctx is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(ctx))
