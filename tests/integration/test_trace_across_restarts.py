"""Work an event causes keeps the event's trace in its own SQL row (decision 55), so what a
worker appends for it later (after a restart, or in another replica) continues that trace:
real NATS, real SQL (SQLite, then PostgreSQL), each service's migrations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ncii_cli.services import all_services
from ncii_contracts.intake import CaseOpened, Consents, LocationReported
from ncii_contracts.takedown import TakedownOpened
from ncii_events import tracing
from ncii_events.db import make_engine, migrate
from ncii_events.envelope import Actor
from ncii_events.service import ServiceSpec
from ncii_events.store import NEW, AggregateRef, Cause, EventStore
from ncii_events.tracing import parse_traceparent
from ncii_takedown.outbox import OutboxPublisher
from ncii_takedown.read_models.projections import TakedownsProjection
from ncii_takedown.read_models.schema import OUTBOX
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

CAUSE = Cause(Actor(organisation="centre-t", principal="cw", role="caseworker"), "corr", "corr")

ROWS_OF_WORK = {
    "intake": ["reopen_queue"],
    "hashmatch": ["hm_outbox", "hm_sighting_windows"],
    "takedown": ["td_outbox", "td_deliveries"],
    "referral": ["rf_outbox"],
}
"""Every table whose rows are work an event caused, done later by a worker."""


def service_spec(name: str) -> ServiceSpec[Any]:
    return all_services()[name]


async def migrated(database_url: str, spec: ServiceSpec[Any]) -> AsyncEngine:
    engine = make_engine(database_url)
    assert spec.migrations is not None
    await migrate(engine, spec.migrations, f"alembic_version_{spec.name}")
    return engine


@pytest.fixture
async def takedown_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await migrated(database_url, service_spec("takedown"))
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("service", sorted(ROWS_OF_WORK))
async def test_each_services_migrations_give_its_rows_of_work_a_traceparent(
    database_url: str, service: str
) -> None:
    engine = await migrated(database_url, service_spec(service))
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {
                    table: {col["name"]: col for col in inspect(c).get_columns(table)}
                    for table in ROWS_OF_WORK[service]
                }
            )
    finally:
        await engine.dispose()
    for table, found in columns.items():
        assert "traceparent" in found, f"{service}: {table} has no traceparent"
        assert found["traceparent"]["nullable"], "rows written before it have none"


async def test_an_event_a_reactor_decided_before_a_restart_is_appended_in_its_causes_trace(
    takedown_db: AsyncEngine, store: EventStore
) -> None:
    case_id = str(uuid.uuid4())
    ref = AggregateRef(case_id, "case", case_id)
    opened = CaseOpened(
        organisation="centre-t",
        reference="TRCE-ACRS-RSTR",
        age_group="adult",
        harm_categories=["threat_sextortion"],
        spread_status="spread",
        channels=[],
        intake_channel="phone",
        learned_at="2026-11-30T05:00:00Z",
        consents=Consents(takedown=True, share_hashes=False, referral=False),
    )
    location = LocationReported(
        location_id="loc-1", url="https://x.example/1", platform="X", channel_kind="forum"
    )
    # intake's request: the events it appends carry its trace
    with TracerProvider().get_tracer("test").start_as_current_span("HTTP POST"):
        written = await store.append(ref, [opened, location], expected=NEW, cause=CAUSE)
    reported = written[1]
    request = parse_traceparent(reported.envelope.traceparent)
    assert request is not None and request.trace_flags.sampled

    # takedown's reactor decides (this process exports nothing: no span of its own to keep)
    projection = TakedownsProjection()
    async with takedown_db.begin() as conn:
        await conn.run_sync(lambda c: projection.apply_batch(c, written))
    async with takedown_db.connect() as conn:
        (row,) = (await conn.execute(select(OUTBOX).where(OUTBOX.c.case_id == case_id))).all()
    assert row.event_type == "TakedownOpened"
    assert row.traceparent == reported.envelope.traceparent

    # a restart: a new publisher, nothing in memory but the row
    tracing.set_exporting(False)
    publisher = OutboxPublisher(takedown_db, store, registry=store.registry)
    assert await publisher.publish_pending() == 1
    takedown_ref = AggregateRef(case_id, "takedown", row.aggregate_id)
    (appended,) = await store.load(takedown_ref)
    assert isinstance(appended.event, TakedownOpened)
    continued = parse_traceparent(appended.envelope.traceparent)
    assert continued is not None
    assert continued.trace_id == request.trace_id
