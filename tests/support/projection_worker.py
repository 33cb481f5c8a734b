"""Runs one projection in its own process, so a test can kill it mid-batch.

    python -m tests.support.projection_worker NATS_URL DB_URL CASE_ID MODE

MODE ``run`` applies until killed; ``die-after-commit`` exits the process at the third
batch's acknowledgement (one per batch), i.e. after that batch's SQL commit and before its ack.
"""

from __future__ import annotations

import asyncio
import os
import sys

from ncii_events.connection import connect
from ncii_events.db import make_engine
from ncii_events.projection import Delivery, ProjectionRunner
from ncii_events.store import EventStore

from tests.support.events import REGISTRY
from tests.support.notes_projection import projection_for


async def main(nats_url: str, db_url: str, case_id: str, mode: str) -> None:
    if mode == "die-after-commit":
        original_ack = Delivery.ack
        acks = {"seen": 0}

        async def ack_then_maybe_die(self: Delivery) -> None:
            acks["seen"] += 1
            if acks["seen"] == 3:  # a batch is settled by one ack: the third batch's
                os._exit(3)
            await original_ack(self)

        Delivery.ack = ack_then_maybe_die  # type: ignore[method-assign]

    nc = await connect(nats_url, name="projection-worker")
    engine = make_engine(db_url)
    projection = projection_for(case_id, delay_per_event=0.002)
    runner = ProjectionRunner(
        nc,
        engine,
        EventStore(nc, None, registry=REGISTRY),
        projection,
        service="test",
        batch_size=20,
        ack_wait=1.0,
    )
    await runner.start()
    print("started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
