"""Runs one projection in its own process, so a test can kill it mid-batch.

    python -m tests.support.projection_worker NATS_URL DB_URL CASE_ID MODE

MODE ``run`` applies until killed; ``die-after-commit`` exits the process right after its third
batch's SQL commit.
"""

from __future__ import annotations

import asyncio
import os
import sys

from ncii_events.db import make_engine
from ncii_events.projection import ProjectionRunner
from ncii_events.store import EventStore
from ncii_events.transport import connect

from tests.support.events import REGISTRY
from tests.support.notes_projection import projection_for


async def main(nats_url: str, db_url: str, case_id: str, mode: str) -> None:
    commits = 0

    def committed(_seq: int) -> None:
        nonlocal commits
        commits += 1
        if mode == "die-after-commit" and commits == 3:
            os._exit(3)

    nc = await connect(nats_url, name="projection-worker")
    engine = make_engine(db_url)
    projection = projection_for(case_id, delay_per_event=0.002)
    runner = ProjectionRunner(
        nc,
        engine,
        EventStore(nc, None, registry=REGISTRY),
        projection,
        batch_size=20,
        on_commit=committed,
    )
    await runner.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
