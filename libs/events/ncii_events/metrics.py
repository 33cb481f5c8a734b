"""Metrics (decision 49): what a service counts and measures, with the OpenTelemetry metrics SDK,
exported over OTLP when configured (``telemetry.configure``). Nothing is recorded otherwise:
every recording call checks ``enabled()`` first, a module global, so the append path pays one
test.

Instruments (their attributes are closed sets or random ids, never personal data):

* ``ncii.events.appended`` (counter, ``{event}``): events appended, by ``ncii.event_type``; the
  service is the resource's ``service.name``.
* ``ncii.projection.lag`` (gauge, ``{event}``): by ``ncii.projection``, the log's last sequence
  the runner saw minus its checkpoint.
* ``ncii.deadlines.overdue`` (gauge, ``{deadline}``): deadlines passed and not met, by
  ``ncii.deadline`` (``takedown_notice``, ``art7_report``) and a closed ``ncii.kind``.
* ``http.server.request.duration`` (histogram, ``s``): by ``http.route`` (the template, never the
  path), ``http.request.method`` and ``http.response.status_code``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

EVENTS_APPENDED = "ncii.events.appended"
PROJECTION_LAG = "ncii.projection.lag"
DEADLINES_OVERDUE = "ncii.deadlines.overdue"
HTTP_DURATION = "http.server.request.duration"

Attributes = dict[str, str | int]
Reading = tuple[float, Attributes]


@dataclass(frozen=True)
class Sampled:
    """A gauge read from the service's database (``read``), sampled by a background task at
    the export interval, since the exporter's callbacks cannot wait on I/O."""

    instrument: str
    read: Callable[[], Awaitable[Sequence[Reading]]]


def overdue_deadlines(
    deadline: str,
    kinds: Sequence[str],
    counts: Callable[[], Awaitable[Iterable[tuple[str, int]]]],
) -> Sampled:
    """``ncii.deadlines.overdue`` for one kind of legal deadline, a reading per kind of it
    (0 for a kind with none), from ``counts``: (kind, how many) read from the read model."""

    async def read() -> list[Reading]:
        found = dict(await counts())
        return [
            (found.get(kind, 0), {"ncii.deadline": deadline, "ncii.kind": kind}) for kind in kinds
        ]

    return Sampled(DEADLINES_OVERDUE, read)


_enabled = False
_providers: dict[str, list[Callable[[], Iterable[Reading]]]] = {}
_appended: metrics.Counter | None = None
_http: metrics.Histogram | None = None


def enabled() -> bool:
    return _enabled


def install(meter: metrics.Meter) -> None:
    """Create the instruments on ``meter`` and start recording."""
    global _enabled, _appended, _http
    _appended = meter.create_counter(
        EVENTS_APPENDED, unit="{event}", description="events appended to the log"
    )
    _http = meter.create_histogram(
        HTTP_DURATION,
        unit="s",
        description="HTTP requests served, by route template, method and status",
        explicit_bucket_boundaries_advisory=[
            0.001,
            0.0025,
            0.005,
            0.01,
            0.025,
            0.05,
            0.1,
            0.25,
            0.5,
            1.0,
            2.5,
            5.0,
            10.0,
        ],
    )
    meter.create_observable_gauge(
        PROJECTION_LAG,
        callbacks=[_observer(PROJECTION_LAG)],
        unit="{event}",
        description="events in the log not yet applied by a projection",
    )
    meter.create_observable_gauge(
        DEADLINES_OVERDUE,
        callbacks=[_observer(DEADLINES_OVERDUE)],
        unit="{deadline}",
        description="legal deadlines passed and not met (takedown notices, art. 7 reports)",
    )
    _enabled = True


def uninstall() -> None:
    global _enabled, _appended, _http
    _enabled = False
    _appended = _http = None
    _providers.clear()


def _observer(name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        for provider in list(_providers.get(name, ())):
            for value, attributes in provider():
                yield Observation(value, attributes)

    return observe


def provide(instrument: str, provider: Callable[[], Iterable[Reading]]) -> None:
    """``provider`` gives the current readings of gauge ``instrument`` when it is collected
    (called on the exporter's thread: it reads what it has, without I/O)."""
    _providers.setdefault(instrument, []).append(provider)


def withdraw(instrument: str, provider: Callable[[], Iterable[Reading]]) -> None:
    providers = _providers.get(instrument, [])
    if provider in providers:
        providers.remove(provider)


def appended(event_types: Sequence[str]) -> None:
    if _appended is None:
        return
    for event_type in event_types:
        _appended.add(1, {"ncii.event_type": event_type})


def http_served(seconds: float, route: str | None, method: str, status: int) -> None:
    if _http is None:
        return
    attributes: Attributes = {"http.request.method": method, "http.response.status_code": status}
    if route:
        attributes["http.route"] = route
    _http.record(seconds, attributes)
