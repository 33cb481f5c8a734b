"""Whether spans are exported, and how a consumer's span joins the producer's trace (decision
49).

Without an exporter spans are not recorded, yet starting one is not free (decision 9 has the
figure): the log's per-event paths (an append, a projection's batch, an outbox row) start theirs
only when spans go somewhere. Trace ids still reach events and logs through the caller's span
(the HTTP request's).

Across services the trace context travels in each event's ``traceparent``: a consumer's span for
an event is a child of the span that appended it (``parent_of``). Within a service, work an
event causes later (an outbox row, a delivery, a queued match) keeps the traceparent of the span
that handled the event (``caused_by``) in its own SQL row, so the worker that does it continues
the same trace (``work_span``), after a restart too (decision 55). A timer-driven sweep starts a
trace of its own and links the events it acts on (``link``).

Spans carry names and attributes from ``ALLOWED_ATTRIBUTES`` only: event types, ids that are
random (event, case, aggregate ids, projection names), counts, HTTP route templates, methods and
statuses; never a payload field, a path, a query or an exception's message.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import Attributes

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
"""Every span attribute the code may set (the e2e telemetry test fails on any other)."""

REMEMBERED = 8192
"""Consumer spans kept (by event id and by log position: two entries each) until what they
caused is committed and followed (a batch starts at most ``EVENT_SPANS``, 256, of them)."""

_tracer = trace.get_tracer("ncii.events")

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
    if not traceparent or traceparent.endswith("-00"):
        return None  # the common unsampled case (nothing exported upstream), without parsing
    ctx = parse_traceparent(traceparent)
    if ctx is None or not ctx.trace_flags.sampled:
        return None
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def format_traceparent(ctx: SpanContext) -> str:
    """``ctx`` as a W3C ``traceparent`` (what the propagator would write)."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def remember(event_id: str, ctx: SpanContext) -> None:
    """The span that handled ``event_id`` in this process (see ``caused_by``)."""
    _remembered[event_id] = ctx
    _remembered.move_to_end(event_id)
    while len(_remembered) > REMEMBERED:
        _remembered.popitem(last=False)


def position(stream: str, seq: int) -> str:
    """The key ``remember`` keeps a handled event under besides its id: its place in the log
    (for work that knows where its cause is, not which it is: hashmatch's bank changes)."""
    return f"{stream}#{seq}"


def handled_at(stream: str, seq: int) -> str | None:
    """The traceparent of the span that handled the event at ``seq`` of ``stream`` in this
    process, if it is still remembered."""
    ctx = _remembered.get(position(stream, seq))
    return format_traceparent(ctx) if ctx is not None else None


def caused_by(event_id: str, traceparent: str | None) -> str | None:
    """The traceparent to keep with work that event ``event_id`` (carrying ``traceparent``)
    caused: the span that handled it here when there was one, else the event's own, so the
    work joins the event's trace either way. Stored in the work's row: it outlives a restart."""
    ctx = _remembered.get(event_id)
    return format_traceparent(ctx) if ctx is not None else traceparent


@contextlib.contextmanager
def work_span(
    name: str,
    *,
    parent: str | None = None,
    attributes: Attributes = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> Iterator[trace.Span]:
    """A worker's span for one piece of work: a child of ``parent`` (the traceparent its row
    kept, see ``caused_by``), else the root of a new trace. While spans are not exported none
    is started, but ``parent`` is made current so that what the work appends still carries the
    trace on. Never records an exception's message (decision 49): its type only."""
    context = parent_of(parent)
    if not _exporting:
        if context is None:
            yield trace.INVALID_SPAN
            return
        token = otel_context.attach(context)
        try:
            yield trace.get_current_span(context)
        finally:
            otel_context.detach(token)
        return
    with _recorded(name, context or Context(), attributes, kind) as span:  # empty: a root
        yield span


@contextlib.contextmanager
def child_span(
    name: str,
    *,
    attributes: Attributes = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> Iterator[trace.Span]:
    """A span inside the current one (a worker's call out, within its ``work_span``); none
    while spans are not exported. The exception's type only, as ``work_span``."""
    if not _exporting:
        yield trace.INVALID_SPAN
        return
    with _recorded(name, None, attributes, kind) as span:
        yield span


@contextlib.contextmanager
def _recorded(
    name: str, context: Context | None, attributes: Attributes, kind: trace.SpanKind
) -> Iterator[trace.Span]:
    with _tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        record_exception=False,  # an exception's message may quote a value: its type only
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(trace.StatusCode.ERROR)
            raise


def link(span: trace.Span, traceparent: str | None) -> None:
    """Link ``span`` to the span a traceparent names (a sweep to each event it acts on), when
    that one was sampled."""
    ctx = parse_traceparent(traceparent)
    if ctx is not None and ctx.trace_flags.sampled and span.is_recording():
        span.add_link(ctx)


def past_span(
    name: str,
    started_ns: int,
    attributes: Attributes = None,
    links: Iterable[str | None] = (),
) -> None:
    """A root span for work already done since ``started_ns`` (``time.time_ns()``), for a loop
    that learns only afterwards whether a round did anything worth a span; linked to the spans
    ``links`` name (traceparents; the unsampled and unknown ones are left out)."""
    if not _exporting:
        return
    found = (parse_traceparent(tp) for tp in links)
    _tracer.start_span(
        name,
        context=Context(),
        start_time=started_ns,
        attributes=attributes,
        links=[trace.Link(ctx) for ctx in found if ctx is not None and ctx.trace_flags.sampled],
    ).end()
