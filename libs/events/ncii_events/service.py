"""What every service is made of: a NATS connection, the event store, case keys, its SQL
database with migrations and projections, and an HTTP app that follows the conventions
(``/healthz``, ``/readyz``, ``/openapi.json``, ``/docs``, ``/asyncapi``, problem details)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NATS
from ncii_contracts.base import DomainEvent
from ncii_contracts.principals import PRINCIPAL_EVENTS
from pydantic import BaseModel

from ncii_events import metrics
from ncii_events.asyncapi import asyncapi_document
from ncii_events.auth import Authenticator, Principal, PrincipalsProjection
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, migrate, migrate_runtime
from ncii_events.http import Idempotency, install_error_handlers
from ncii_events.http.docs import install_docs
from ncii_events.http.limits import PRINCIPAL_SCOPE_KEY, guarded_route
from ncii_events.http.rate_limits import RateLimits, budgets_from
from ncii_events.keys import NatsCaseKeys
from ncii_events.metrics import Reading, Sampled
from ncii_events.projection import Projection, ProjectionRunner
from ncii_events.registry import EventRegistry
from ncii_events.settings import Settings
from ncii_events.signing import own_signing_key
from ncii_events.store import EventStore
from ncii_events.stream import CASES, KV_STREAMS, REFERENCE, StreamSpec, require_streams
from ncii_events.telemetry import configure, install_http_tracing
from ncii_events.transport import connect
from ncii_events.worker import OK, Worker

log = logging.getLogger("ncii.service")
AppT = TypeVar("AppT")


class NatsUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceSpec(Generic[AppT]):
    """Everything a service is: the runtime builds and runs it from this alone."""

    name: str
    title: str
    description: str
    port: int
    """The port it serves on unless the settings say otherwise."""
    projections: Sequence[Projection] = ()
    """Its read models, each following the stream it names (principals are added to every
    service: see ``projections_of``)."""
    migrations: Path | None = None
    emits: Sequence[type[DomainEvent]] = ()
    consumes: Sequence[type[DomainEvent]] = ()
    routers: Sequence[APIRouter] = field(default_factory=list)
    version: str = "0.1.0"
    app: Callable[[ServiceRuntime[AppT]], Awaitable[AppT]] | None = None
    """Builds the service's application state once the runtime is up (NATS, SQL, stores);
    routes reach it through ``app_of``."""
    workers: Callable[[AppT], Sequence[Worker]] | None = None
    """What runs beside the projections (reactors, followers), from the application state.
    Every projection commit nudges them."""
    gauges: Callable[[AppT], Sequence[Sampled]] | None = None
    """Gauges read from its database (overdue deadlines), sampled while metrics are exported
    (decision 49)."""
    owns_case_keys: bool = False
    """Creates and erases case keys (the service that owns cases). Every other service reads
    them only; its NATS user may not write the key bucket (decision 22)."""
    key_spaces: Sequence[str] = ()
    """Spaces of the case-key bucket whose keys this service creates and purges, as
    ``<case_id>.<space>.<id>`` (takedown: ``evidence``, a key per evidence record, decision
    0032). Its NATS user may write those subjects only, never a case's own key."""
    reads_case_keys: bool = True
    """Decrypts or encrypts personal fields. A service of codes and counts only (the dashboard)
    says False: its runtime opens no case key and needs no master key, and its NATS user may
    not read the key bucket at all (decision 0057)."""


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def has_writes(spec: ServiceSpec[Any]) -> bool:
    """Whether any of its routes writes: only then does it keep Idempotency-Key records (its
    NATS user gets its space of the idempotency bucket, decision 0057)."""
    return any(
        WRITE_METHODS & getattr(route, "methods", set())
        for router in spec.routers
        for route in router.routes
    )


def kv_streams_of(spec: ServiceSpec[Any]) -> list[str]:
    """The key-value buckets' streams a service uses (checked at start, readable by its user)."""
    keys, idempotency = KV_STREAMS
    return [keys] * spec.reads_case_keys + [idempotency] * has_writes(spec)


def projections_of(spec: ServiceSpec[Any]) -> list[Projection]:
    """Every projection a service runs: the principals (for authentication) and its own."""
    return [PrincipalsProjection(), *spec.projections]


def streams_of(spec: ServiceSpec[Any]) -> list[StreamSpec]:
    """The streams a service reads: those of its projections and of the events it emits and
    consumes (what its NATS user may read, and what it checks at start)."""
    events = (*spec.emits, *spec.consumes)
    found = [p.stream for p in projections_of(spec)] + [s for e in events for s in e.streams]
    return [s for s in (CASES, REFERENCE) if s in found]


class ServiceRuntime(Generic[AppT]):
    def __init__(self, spec: ServiceSpec[AppT], settings: Settings | None = None) -> None:
        self.spec = spec
        self.settings = settings or Settings()
        self.nc: NATS | None = None
        self.runners: list[ProjectionRunner] = []
        # Every service reads the principals (API keys) besides what it emits and consumes.
        self.registry = EventRegistry(*spec.emits, *spec.consumes, *PRINCIPAL_EVENTS)
        self.workers: list[Worker] = []
        self._app: AppT | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._provided: list[tuple[str, Callable[[], Sequence[Reading]]]] = []
        self._keys: NatsCaseKeys | None = None
        self._master: MasterKey | None = None
        self.rate_limits = RateLimits(budgets_from(self.settings))
        """Per-principal budgets of this process (decision 24)."""

    @property
    def app(self) -> AppT:
        if self._app is None:
            raise RuntimeError(f"{self.spec.name} has no application state (not started?)")
        return self._app

    @property
    def keys(self) -> NatsCaseKeys:
        if self._keys is None:
            raise RuntimeError(f"{self.spec.name} reads no case keys (reads_case_keys=False)")
        return self._keys

    @property
    def master(self) -> MasterKey:
        if self._master is None:
            raise RuntimeError(f"{self.spec.name} holds no master key (reads_case_keys=False)")
        return self._master

    def store_for(self, stream: StreamSpec) -> EventStore:
        return self.ref_store if stream.name == REFERENCE.name else self.store

    async def start(self) -> None:
        # First: a service without its key could not write a single event (decision 23).
        self.signing = own_signing_key(self.settings, self.spec.name)
        url = self.settings.effective_nats_url()
        try:
            self.nc = await asyncio.wait_for(
                connect(
                    url,
                    name=f"ncii-{self.spec.name}",
                    user=self.settings.nats_user,
                    password=self.settings.nats_password,
                    transport=self.settings.nats_transport,
                ),
                10,
            )
        except Exception as exc:
            raise NatsUnavailableError(
                f"cannot reach NATS at {url}: start the whole system with `ncii run`, "
                f"or set NCII_NATS_URL to a running NATS server with JetStream"
            ) from exc
        # The operator creates the streams (`ncii log init`, `ncii run`); a service only checks
        # them, and its NATS user could not create them anyway (decision 22).
        await require_streams(
            self.nc, [*(s.name for s in streams_of(self.spec)), *kv_streams_of(self.spec)]
        )
        if self.spec.reads_case_keys:
            if self.settings.master_key:
                master = MasterKey.from_base64(self.settings.master_key)
            else:
                master = MasterKey.load_or_create(self.settings.master_key_path())
            self._keys = NatsCaseKeys(self.nc, master, writer=self.spec.owns_case_keys)
            await self._keys.start()
            self._master = master
        # without keys the store reads personal fields as withheld and cannot write them
        self.store = EventStore(
            self.nc, self._keys, registry=self.registry, spec=CASES, signing=self.signing
        )
        self.ref_store = EventStore(
            self.nc, None, registry=self.registry, spec=REFERENCE, signing=self.signing
        )
        self.engine = make_engine(self.settings.database_url_for(self.spec.name))
        await migrate_runtime(self.engine)
        if self.spec.migrations is not None:
            await migrate(self.engine, self.spec.migrations, f"alembic_version_{self.spec.name}")
        self.authenticator = Authenticator(self.engine)
        self.idempotency = Idempotency(self.nc, self.spec.name)
        self.runners = [
            ProjectionRunner(
                self.nc, self.engine, self.store_for(p.stream), p, on_commit=self._committed
            )
            for p in projections_of(self.spec)
        ]
        for runner in self.runners:
            await runner.start()
        if self.spec.app is not None:
            self._app = await self.spec.app(self)
            if self.spec.workers is not None:
                self.workers = list(self.spec.workers(self._app))
        for worker in self.workers:
            await worker.start()
        if metrics.enabled():
            self._measure()

    def _measure(self) -> None:
        """Projection lag from the runners; the spec's gauges sampled from the database."""
        self._provided.append((metrics.PROJECTION_LAG, self._lags))
        gauges = list(self.spec.gauges(self.app)) if self.spec.gauges is not None else []
        readings: list[Sequence[Reading]] = [() for _ in gauges]
        for i, gauge in enumerate(gauges):
            self._provided.append((gauge.instrument, functools.partial(_latest, readings, i)))
        for instrument, provider in self._provided:
            metrics.provide(instrument, provider)
        if gauges:
            self._sampler = asyncio.create_task(
                self._sample(gauges, readings), name="metrics-sampler"
            )

    def _lags(self) -> list[Reading]:
        return [(r.lag, {"ncii.projection": r.name}) for r in self.runners]

    async def _sample(self, gauges: Sequence[Sampled], readings: list[Sequence[Reading]]) -> None:
        while True:
            for i, gauge in enumerate(gauges):
                try:
                    readings[i] = await gauge.read()
                except Exception as exc:  # the type only, as everywhere
                    log.warning("gauge %s not read (%s)", gauge.instrument, type(exc).__name__)
            await asyncio.sleep(self.settings.otel_export_interval)

    def _committed(self, _seq: int) -> None:
        for worker in self.workers:
            worker.nudge()

    @property
    def everything(self) -> list[Worker]:
        """Runners first, then workers: the order to wait for them (workers follow runners)."""
        return [*self.runners, *self.workers]

    async def stop(self) -> None:
        for instrument, provider in self._provided:
            metrics.withdraw(instrument, provider)
        self._provided = []
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(BaseException):
                await self._sampler
            self._sampler = None
        for worker in reversed(self.everything):
            with contextlib.suppress(Exception):
                await worker.stop()
        if self.nc is not None:
            if self._keys is not None:
                with contextlib.suppress(Exception):
                    await self._keys.stop()
            with contextlib.suppress(Exception):
                await self.nc.drain()
        with contextlib.suppress(Exception):
            await self.engine.dispose()

    def stopped_for_good(self) -> dict[str, str]:
        """The workers whose loop has ended without a stop (name -> why): the service can no
        longer do that work, and only a restart brings it back."""
        return {w.name: w.health() for w in self.everything if not w.alive()}

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"nats": bool(self.nc and self.nc.is_connected)}
        lag: dict[str, int | str] = {}
        troubles: dict[str, str] = {}
        for worker in self.everything:
            try:
                lag[worker.name] = await worker.pending()
            except Exception as exc:
                lag[worker.name] = f"unknown ({type(exc).__name__})"
            if worker.health() != OK:
                troubles[worker.name] = worker.health()
        checks["projections_pending"] = lag
        checks["not_working"] = troubles
        checks["ready"] = checks["nats"] and not troubles and all(v == 0 for v in lag.values())
        return checks

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until everything written to the log before the call is applied (read-your-writes)."""
        for worker in self.everything:
            await worker.wait_caught_up(timeout)


def _latest(readings: list[Sequence[Reading]], i: int) -> Sequence[Reading]:
    return readings[i]


def runtime_of(request: Request) -> ServiceRuntime[Any]:
    runtime = request.app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime


def app_of(cls: type[AppT]) -> Callable[[Request], Awaitable[AppT]]:
    """A FastAPI dependency: the service's application state, typed
    (``state: Annotated[HashmatchApp, Depends(app_of(HashmatchApp))]``). Async, as every
    dependency here: FastAPI runs a plain function in its thread pool, a thread hop per call."""

    async def dependency(request: Request) -> AppT:
        app = runtime_of(request).app
        if not isinstance(app, cls):
            raise RuntimeError(f"the application state is not a {cls.__name__}")
        return app

    return dependency


async def authenticated(request: Request) -> Principal:
    """FastAPI dependency: the calling principal, or 401/429. On a ``ServiceRoute`` the key
    was checked before the body was read (decision 21): that principal is taken, not looked up
    again."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(principal, Principal):
        return principal
    return await runtime_of(request).authenticator(request)


ServiceRoute = guarded_route(authenticated)
"""The route class of every service router (``APIRouter(prefix="/v1", route_class=ServiceRoute)``):
a route that depends on ``authenticated`` checks the key before its body is read, and every
route's body is limited (decision 21)."""


class Health(BaseModel):
    status: str
    stopped: dict[str, str] = {}
    """The workers that stopped for good (name -> exception type), when the status is not ok."""


def create_app(spec: ServiceSpec[Any], settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure(
        spec.name,
        log_format=settings.log_format,
        exporter=settings.telemetry_exporter(),
        endpoint=settings.otlp_endpoint,
        interval=settings.otel_export_interval,
    )
    runtime = ServiceRuntime(spec, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        # Start-up objects (modules, models, compiled SQL) live for ever: keep the collector
        # from scanning them again on every full collection (fewer long pauses under load).
        gc.collect()
        gc.freeze()
        log.info("%s ready to serve", spec.name)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=f"ncii {spec.name}",
        description=spec.description,
        version=spec.version,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, without a CDN
        redoc_url=None,
        # FastAPI's own telemetry is off (decision 49): its server span records the path and
        # the query (``?reference=`` is a victim's case reference), trusts a client's
        # traceparent, logs validation errors with the values sent, and runs on every request
        # once a tracer provider is set, exported or not. ``install_http_tracing`` does it.
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_docs(app)
    install_http_tracing(app, spec.name)
    asyncapi = asyncapi_document(
        title=f"ncii {spec.name}",
        version=spec.version,
        description=spec.description,
        emits=spec.emits,
        consumes=(*spec.consumes, *PRINCIPAL_EVENTS),
    )

    @app.get("/healthz", tags=["operations"], responses={503: {"model": Health}})
    async def healthz() -> JSONResponse:
        """Liveness: the process answers and every projection and worker still runs (one
        retrying an outage is alive: see ``/readyz``). 503: restart the process."""
        stopped = runtime.stopped_for_good()
        if stopped:
            return JSONResponse(
                Health(status="stopped", stopped=stopped).model_dump(), status_code=503
            )
        return JSONResponse(Health(status="ok").model_dump(exclude={"stopped"}))

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Readiness: connected to NATS and every projection caught up with the log."""
        checks = await runtime.readiness()
        return JSONResponse(checks, status_code=200 if checks["ready"] else 503)

    @app.get("/asyncapi", tags=["operations"])
    async def asyncapi_json() -> JSONResponse:
        """The events this service emits and consumes (AsyncAPI 3.0)."""
        return JSONResponse(asyncapi)

    for router in spec.routers:
        app.include_router(router)
    return app
