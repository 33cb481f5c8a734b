"""What every service is made of: a NATS connection, the event store, case keys, its SQL
database with migrations and projections, and an HTTP app that follows the conventions
(``/healthz``, ``/readyz``, ``/openapi.json``, ``/docs``, ``/asyncapi``, problem details)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NATS
from ncii_contracts.base import DomainEvent
from ncii_contracts.principals import PRINCIPAL_EVENTS
from pydantic import BaseModel

from ncii_events.asyncapi import asyncapi_document
from ncii_events.auth import Authenticator, Principal, PrincipalsProjection
from ncii_events.connection import connect
from ncii_events.crypto import MasterKey
from ncii_events.db import make_engine, migrate, migrate_runtime
from ncii_events.http import Idempotency, install_error_handlers
from ncii_events.keys import NatsCaseKeys
from ncii_events.projection import Projection, ProjectionRunner
from ncii_events.registry import EventRegistry
from ncii_events.settings import SERVICE_PORTS, Settings
from ncii_events.store import EventStore
from ncii_events.stream import CASES, REFERENCE, ensure_streams
from ncii_events.telemetry import configure, install_http_tracing

log = logging.getLogger("ncii.service")


class NatsUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    description: str
    projections: Sequence[Projection] = ()
    migrations: Path | None = None
    emits: Sequence[type[DomainEvent]] = ()
    consumes: Sequence[type[DomainEvent]] = ()
    routers: Sequence[APIRouter] = field(default_factory=list)
    version: str = "0.1.0"
    on_start: Callable[[ServiceRuntime], Awaitable[object]] | None = None
    """Run once the runtime is up (NATS, SQL, projections), before the service is ready: for
    what a service starts beyond its case-stream projections."""

    @property
    def port(self) -> int:
        return SERVICE_PORTS[self.name]


class ServiceRuntime:
    def __init__(self, spec: ServiceSpec, settings: Settings | None = None) -> None:
        self.spec = spec
        self.settings = settings or Settings()
        self.nc: NATS | None = None
        self.runners: list[ProjectionRunner] = []
        # Every service reads the principals (API keys) besides what it emits and consumes.
        self.registry = EventRegistry(*spec.emits, *spec.consumes, *PRINCIPAL_EVENTS)

    async def start(self) -> None:
        url = self.settings.effective_nats_url()
        try:
            self.nc = await asyncio.wait_for(
                connect(
                    url,
                    name=f"ncii-{self.spec.name}",
                    user=self.settings.nats_user,
                    password=self.settings.nats_password,
                ),
                10,
            )
        except Exception as exc:
            raise NatsUnavailableError(
                f"cannot reach NATS at {url}: start the whole system with `ncii run`, "
                f"or set NCII_NATS_URL to a running NATS server with JetStream"
            ) from exc
        await ensure_streams(self.nc, replicas=self.settings.stream_replicas)
        if self.settings.master_key:
            master = MasterKey.from_base64(self.settings.master_key)
        else:
            master = MasterKey.load_or_create(self.settings.master_key_path())
        self.keys = NatsCaseKeys(self.nc, master)
        await self.keys.start()
        self.master = master
        self.store = EventStore(self.nc, self.keys, registry=self.registry, spec=CASES)
        self.ref_store = EventStore(self.nc, None, registry=self.registry, spec=REFERENCE)
        self.engine = make_engine(self.settings.database_url_for(self.spec.name))
        await migrate_runtime(self.engine)
        if self.spec.migrations is not None:
            await migrate(self.engine, self.spec.migrations, f"alembic_version_{self.spec.name}")
        self.authenticator = Authenticator(self.engine)
        self.idempotency = Idempotency(self.nc, self.spec.name)
        self.runners = [
            ProjectionRunner(
                self.nc, self.engine, self.ref_store, PrincipalsProjection(), service=self.spec.name
            )
        ] + [
            ProjectionRunner(self.nc, self.engine, self.store, p, service=self.spec.name)
            for p in self.spec.projections
        ]
        for runner in self.runners:
            await runner.start()

    async def stop(self) -> None:
        for runner in self.runners:
            with contextlib.suppress(Exception):
                await runner.stop()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.keys.stop()
            with contextlib.suppress(Exception):
                await self.nc.drain()
        with contextlib.suppress(Exception):
            await self.engine.dispose()

    async def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"nats": bool(self.nc and self.nc.is_connected)}
        lag: dict[str, int | str] = {}
        for runner in self.runners:
            try:
                lag[runner.projection.name] = await runner.pending()
            except Exception as exc:
                lag[runner.projection.name] = f"unknown ({type(exc).__name__})"
        checks["projections_pending"] = lag
        checks["ready"] = checks["nats"] and all(v == 0 for v in lag.values())
        return checks

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        for runner in self.runners:
            await runner.wait_caught_up(timeout)


def runtime_of(request: Request) -> ServiceRuntime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime


async def authenticated(request: Request) -> Principal:
    """FastAPI dependency: the calling principal, or 401/429."""
    return await runtime_of(request).authenticator(request)


class Health(BaseModel):
    status: str


def create_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure(spec.name, log_format=settings.log_format, exporter=settings.otel_exporter)
    runtime = ServiceRuntime(spec, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if spec.on_start is not None:
            await spec.on_start(runtime)
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
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_http_tracing(app, spec.name)
    asyncapi = asyncapi_document(
        title=f"ncii {spec.name}",
        version=spec.version,
        description=spec.description,
        emits=spec.emits,
        consumes=(*spec.consumes, *PRINCIPAL_EVENTS),
    )

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

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
