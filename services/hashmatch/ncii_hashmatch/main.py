"""The hashmatch service: wiring only."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from ncii_events.service import ServiceSpec, create_app
from ncii_events.settings import Settings

from ncii_hashmatch import state
from ncii_hashmatch.api import router
from ncii_hashmatch.events import CONSUMED, EMITTED

SPEC = ServiceSpec(
    name="hashmatch",
    title="Hashmatch",
    description=(
        "The hash bank (one bank per partner organisation for case hashes, named banks for "
        "imported lists, a negative bank of confirmed false positives), exact matching of "
        "PDQ (with rotations and flips), MD5 and vPDQ, and the platform exchange: look-ups, "
        "sightings, a delta feed of the hash list and feedback. Withdrawn and erased cases' "
        "hashes leave matching at once. Imports and exports python-threatexchange's plain "
        "list format."
    ),
    # The bank's projections follow two streams and are started by ``state.start`` (they are
    # not in ``projections``: the runtime would run them on the cases' stream only).
    projections=(),
    migrations=Path(__file__).parent / "migrations",
    emits=EMITTED,
    consumes=CONSUMED,
    routers=[router],
)


def create_hashmatch_app(settings: Settings | None = None) -> FastAPI:
    app = create_app(SPEC, settings)
    runtime_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime_lifespan(app):
            await state.start(app.state.runtime)
            yield

    app.router.lifespan_context = lifespan
    return app


def run() -> None:
    """As ``ncii_events.serve.serve``, with hashmatch's own start (``state.start``)."""
    settings = Settings()
    app = create_hashmatch_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port or SPEC.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="uvloop",
        http="httptools",
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(1)


if __name__ == "__main__":
    run()
