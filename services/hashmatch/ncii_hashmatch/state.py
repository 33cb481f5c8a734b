"""Starting hashmatch inside a service runtime: the two bank projections, the matcher that
follows them, and the outbox publisher. ``runtime.runners`` gets all of them, so readiness
(``/readyz``) waits until the bank, the matcher and the outbox have caught up, and stopping the
runtime stops them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from nats.aio.client import Client as NATS
from ncii_events.db import write_transaction
from ncii_events.projection import Delivery, Projection, ProjectionRunner, wait_caught_up
from ncii_events.service import ServiceRuntime
from ncii_events.store import EventStore, RecordedEvent
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_hashmatch import projections
from ncii_hashmatch.handlers import HashmatchHandlers, OutboxPublisher
from ncii_hashmatch.matcher import Matcher
from ncii_hashmatch.tokens import Tokens

log = logging.getLogger("ncii.hashmatch")
_POLL_MS = projections.MATCHER_POLL_MS


class HashmatchSettings(BaseSettings):
    """``NCII_HASHMATCH_*``. Several replicas sharing one PostgreSQL run the bank's projections
    in one of them (``NCII_HASHMATCH_PROJECTIONS=0`` in the others): every replica's matcher
    follows the bank by polling it."""

    model_config = SettingsConfigDict(env_prefix="NCII_HASHMATCH_", extra="ignore")
    projections: bool = True
    poll_interval_ms: int = Field(default=_POLL_MS, ge=10, le=5000)


class NotifyingRunner(ProjectionRunner):
    """A projection runner that tells the matcher and the outbox when it committed a batch."""

    def __init__(
        self,
        nc: NATS,
        engine: AsyncEngine,
        store: EventStore,
        projection: Projection,
        *,
        service: str,
        on_commit: Callable[[], None],
    ) -> None:
        super().__init__(nc, engine, store, projection, service=service)
        self._on_commit = on_commit

    async def commit(
        self, decoded: Sequence[tuple[Delivery, RecordedEvent | BaseException]]
    ) -> None:
        await super().commit(decoded)
        self._on_commit()


@dataclass
class _Named:
    name: str


class Probe:
    """Quacks like a ProjectionRunner for the runtime's readiness check and shutdown."""

    def __init__(self, name: str, pending: Any, stop: Any) -> None:
        self.projection = _Named(name)
        self._pending = pending
        self._stop = stop

    async def pending(self) -> int:
        return int(await self._pending())

    async def wait_caught_up(self, timeout: float = 30.0) -> None:
        await wait_caught_up(self.pending, self.projection.name, timeout)

    async def stop(self) -> None:
        await self._stop()


@dataclass
class Hashmatch:
    matcher: Matcher
    handlers: HashmatchHandlers
    tokens: Tokens
    outbox: OutboxPublisher
    runners: list[ProjectionRunner]


async def _instance_id(engine: AsyncEngine) -> str:
    for _ in range(3):
        try:
            async with write_transaction(engine) as conn:
                return await conn.run_sync(projections.instance_id)
        except IntegrityError:
            continue  # a replica sharing the database created it at the same moment
    raise RuntimeError("could not read this database's instance id")


async def start(runtime: ServiceRuntime, settings: HashmatchSettings | None = None) -> Hashmatch:
    assert runtime.nc is not None
    settings = settings or HashmatchSettings()
    instance = await _instance_id(runtime.engine)
    matcher = Matcher(runtime.engine, poll_interval=settings.poll_interval_ms / 1000)
    outbox = OutboxPublisher(
        runtime.engine, runtime.store, runtime.ref_store, registry=runtime.registry
    )

    def committed() -> None:
        matcher.nudge()
        outbox.nudge()

    service = f"{runtime.spec.name}_{instance}"
    runners: list[ProjectionRunner] = []
    if settings.projections:
        runners = [
            NotifyingRunner(
                runtime.nc,
                runtime.engine,
                runtime.store,
                projections.BankProjection(),
                service=service,
                on_commit=committed,
            ),
            NotifyingRunner(
                runtime.nc,
                runtime.engine,
                runtime.ref_store,
                projections.BankReferenceProjection(),
                service=service,
                on_commit=committed,
            ),
        ]
    for runner in runners:
        await runner.start()
    await matcher.restore()
    matcher.start()
    tokens = Tokens.from_master(runtime.master)
    state = Hashmatch(
        matcher=matcher,
        handlers=HashmatchHandlers(
            runtime.engine, runtime.store, runtime.ref_store, matcher, tokens
        ),
        tokens=tokens,
        outbox=outbox,
        runners=runners,
    )
    runtime.runners.extend(runners)
    runtime.runners.append(cast(ProjectionRunner, Probe("matcher", matcher.pending, matcher.stop)))
    if settings.projections:
        outbox.start()
        runtime.runners.append(cast(ProjectionRunner, Probe("outbox", outbox.pending, outbox.stop)))
    runtime.hashmatch = state  # type: ignore[attr-defined]
    log.info(
        "hashmatch %s: %d entries restored in %.2fs",
        "with the bank's projections" if settings.projections else "as a matcher only",
        matcher.stats.restored_rows,
        matcher.stats.restore_seconds,
    )
    return state
