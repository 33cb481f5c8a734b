# ruff: noqa: F811 (the tests take fixtures imported from the bank's tests and tests.support)
"""Workers in the trace of the events that caused their work (decision 55), in-process with
spans recorded: hashmatch's matcher links the bank projection's span for each event whose
changes a follow round applied (real NATS, real SQLite)."""

from __future__ import annotations

import numpy as np
from ncii_events.store import EventStore
from opentelemetry.sdk.trace import TracerProvider

from tests.integration.test_hashmatch_bank import (  # noqa: F401 (fixtures: the bank, its engine)
    Bank,
    Case,
    pdq,
    random_pdq,
    rng,
    sqlite_bank,
)
from tests.support.eventually import eventually
from tests.support.spans import Recorded, recorded  # noqa: F401 (the fixture)


async def test_the_matchers_follow_round_links_the_bank_handling_the_hashes_it_added(
    recorded: Recorded, sqlite_bank: Bank, store: EventStore, rng: np.random.Generator
) -> None:
    case = Case(store)
    with TracerProvider().get_tracer("test").start_as_current_span("HTTP POST /v1/hashes"):
        await case.submit(pdq(random_pdq(rng)))
    await sqlite_bank.caught_up()

    def handled() -> int:
        spans = [
            s
            for s in recorded.spans("ncii.handle HashesSubmitted")
            if s.attributes and s.attributes.get("ncii.case_id") == case.case_id
        ]
        assert len(spans) == 1, spans
        return spans[0].context.span_id

    handle = await eventually(handled, what="the bank's span for the submission")

    def linked() -> bool:
        rounds = recorded.spans("ncii.matcher.follow")
        assert any(handle in {link.context.span_id for link in s.links} for s in rounds), rounds
        return True

    await eventually(linked, what="a follow round linking it")
    follow = next(s for s in recorded.spans("ncii.matcher.follow") if s.links)
    assert follow.parent is None  # the matcher's own trace, pointing at the event's
