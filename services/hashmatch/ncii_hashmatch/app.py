"""Hashmatch's application state, built once the runtime is up: the matcher that follows the
bank (restored from it when it starts), the outbox publisher, the commands and the tokens. The
bank's projections are in the spec; the runtime runs them and nudges the matcher and the outbox
after each commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ncii_events.service import ServiceRuntime
from ncii_events.worker import Worker
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ncii_hashmatch import projections
from ncii_hashmatch.handlers import HashmatchHandlers, OutboxPublisher
from ncii_hashmatch.matcher import Matcher
from ncii_hashmatch.tokens import Tokens


class HashmatchSettings(BaseSettings):
    """``NCII_HASHMATCH_*``. Replicas sharing one PostgreSQL all run the bank's projections
    (one of them wins each batch); every replica's matcher follows the bank, nudged by its own
    projections and polling for what the others applied."""

    model_config = SettingsConfigDict(env_prefix="NCII_HASHMATCH_", extra="ignore")
    poll_interval_ms: int = Field(default=projections.MATCHER_POLL_MS, ge=10, le=5000)


@dataclass
class HashmatchApp:
    matcher: Matcher
    handlers: HashmatchHandlers
    tokens: Tokens
    outbox: OutboxPublisher


async def build(
    runtime: ServiceRuntime[HashmatchApp], settings: HashmatchSettings | None = None
) -> HashmatchApp:
    settings = settings or HashmatchSettings()
    matcher = Matcher(runtime.engine, poll_interval=settings.poll_interval_ms / 1000)
    tokens = Tokens.from_master(runtime.master)
    return HashmatchApp(
        matcher=matcher,
        handlers=HashmatchHandlers(
            runtime.engine, runtime.store, runtime.ref_store, matcher, tokens
        ),
        tokens=tokens,
        outbox=OutboxPublisher(
            runtime.engine, runtime.store, runtime.ref_store, registry=runtime.registry
        ),
    )


def workers(app: HashmatchApp) -> Sequence[Worker]:
    return (app.matcher, app.outbox)
