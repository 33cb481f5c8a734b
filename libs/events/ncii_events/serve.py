"""Running one service as its own process."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from ncii_events.service import ServiceSpec, create_app
from ncii_events.settings import Settings


def serve(spec: ServiceSpec[Any]) -> None:
    settings = Settings()
    app = create_app(spec, settings)
    port = settings.port or spec.port
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
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
