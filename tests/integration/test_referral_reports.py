"""The art. 7 report sweep on an injected clock, against real NATS and real SQL (SQLite, then
PostgreSQL): nothing at the exact due instant, the overdue event one microsecond later, once
across a restart, never for a report filed in the log that the read model has not applied yet."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ncii_referral
import pytest
from ncii_contracts.referral import MandatoryReportOverdue, MandatoryReportSubmitted
from ncii_events.db import make_engine, migrate
from ncii_events.envelope import Actor
from ncii_events.store import NEW, Cause, EventStore
from ncii_referral import domain
from ncii_referral.app import ReferralApp, ReferralSettings
from ncii_referral.deadlines import ReportSweeper
from ncii_referral.outbox import OutboxPublisher, minor_report_id, report_ref
from ncii_referral.read_models import queries
from ncii_referral.read_models.schema import REPORTS
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(ncii_referral.__file__).parent / "migrations"
DUE = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class FixedClock:
    """The injected clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = make_engine(database_url)
    await migrate(made, MIGRATIONS, "alembic_version_referral")
    yield made
    await made.dispose()


def app_on(engine: AsyncEngine, store: EventStore, clock: FixedClock) -> ReferralApp:
    return ReferralApp(
        engine=engine,
        store=store,
        ref_store=store,
        clock=clock,  # type: ignore[arg-type]
        settings=ReferralSettings(),
        outbox=OutboxPublisher(engine, store, registry=store.registry),
        workers=[],
    )


async def due_report(engine: AsyncEngine, store: EventStore) -> tuple[str, str]:
    case_id = str(uuid.uuid4())
    report_id = minor_report_id(case_id)
    async with engine.begin() as conn:
        await conn.execute(
            insert(REPORTS).values(
                report_id=report_id,
                case_id=case_id,
                kind="victim_minor",
                status="due",
                learned_at=domain.format_time(DUE - timedelta(hours=24)),
                due_at=domain.format_time(DUE),
            )
        )
    return case_id, report_id


async def overdue_events(store: EventStore, case_id: str, report_id: str) -> list[object]:
    events = await store.load(report_ref(case_id, report_id))
    return [e.event for e in events if isinstance(e.event, MandatoryReportOverdue)]


async def test_a_report_is_overdue_one_microsecond_after_its_24_hours_not_at_the_instant(
    engine: AsyncEngine, store: EventStore
) -> None:
    case_id, report_id = await due_report(engine, store)
    clock = FixedClock(DUE)
    sweeper = ReportSweeper(app_on(engine, store, clock))
    assert await sweeper.pending() == 0
    assert await sweeper.step() == 0
    assert await overdue_events(store, case_id, report_id) == []

    clock.at = DUE + timedelta(microseconds=1)
    assert await sweeper.pending() == 1
    assert await sweeper.step() == 1
    (event,) = await overdue_events(store, case_id, report_id)
    assert isinstance(event, MandatoryReportOverdue)
    assert event.due_at == domain.format_time(DUE)
    assert event.detected_at == domain.format_time(clock.at)

    # a restart before the projection applied it: a fresh sweeper writes no second event
    clock.at = DUE + timedelta(hours=2)
    restarted = ReportSweeper(app_on(engine, store, clock))
    await restarted.step()
    assert len(await overdue_events(store, case_id, report_id)) == 1


async def test_a_report_filed_in_the_log_before_the_read_model_knows_is_never_marked_overdue(
    engine: AsyncEngine, store: EventStore
) -> None:
    case_id, report_id = await due_report(engine, store)
    filed = MandatoryReportSubmitted(
        report_id=report_id, filed_at=domain.format_time(DUE), late=False
    )
    actor = Actor(organisation="centre", principal="cw", role="caseworker")
    await store.append(
        report_ref(case_id, report_id), [filed], expected=NEW, cause=Cause(actor, "c", "c")
    )
    clock = FixedClock(DUE + timedelta(hours=1))
    sweeper = ReportSweeper(app_on(engine, store, clock))
    await sweeper.step()
    assert await overdue_events(store, case_id, report_id) == []
    row = await queries.report(engine, report_id)
    assert row.status == "due"  # the projection, not the sweeper, moves the row


async def test_a_revocation_for_a_withdrawn_consent_is_appended_only_while_the_referral_is_open(
    engine: AsyncEngine, store: EventStore
) -> None:
    from ncii_contracts.referral import ReferralCompleted, ReferralOffered, ReferralRevoked
    from ncii_referral.outbox import referral_ref, write_outbox

    case_id = str(uuid.uuid4())
    actor = Actor(organisation="centre", principal="cw", role="caseworker")
    refs = {}
    for name in ("open", "completed"):
        referral_id = str(uuid.uuid4())
        offered = ReferralOffered(
            referral_id=referral_id,
            partner_id="p1",
            partner_organisation="counsel",
            service="counselling",
            needs=["emotional_support"],
            consent_basis="victim_consent",
            age_group="adult",
        )
        events: list[object] = [offered]
        if name == "completed":  # a counsellor completed it after the withdrawal was projected
            events.append(ReferralCompleted(referral_id=referral_id, completed_at="t"))
        written = await store.append(
            referral_ref(case_id, referral_id),
            events,  # type: ignore[arg-type]
            expected=NEW,
            cause=Cause(actor, "c", "c"),
        )
        refs[name] = (referral_id, written[0])
    async with engine.begin() as conn:
        for referral_id, source in refs.values():
            revoked = ReferralRevoked(
                referral_id=referral_id, revoked_at="t", reason="consent_withdrawn"
            )
            await conn.run_sync(
                lambda c, r=revoked, s=source, i=referral_id: write_outbox(
                    c,
                    s,
                    aggregate="referral",
                    aggregate_id=i,
                    event=r,
                    event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, i)),
                )
            )
    publisher = OutboxPublisher(engine, store, registry=store.registry)
    assert await publisher.publish_pending() == 2
    assert await publisher.publish_pending() == 0  # each row once

    async def kinds(name: str) -> list[str]:
        referral_id = refs[name][0]
        return [e.type for e in await store.load(referral_ref(case_id, referral_id))]

    assert await kinds("open") == ["ReferralOffered", "ReferralRevoked"]
    assert await kinds("completed") == ["ReferralOffered", "ReferralCompleted"]


async def test_the_staff_view_pages_due_and_overdue_reports_together_in_due_order(
    engine: AsyncEngine,
) -> None:
    rows = [
        {
            "report_id": f"{i:04d}-{uuid.uuid4()}"[:36],
            "case_id": str(uuid.uuid4()),
            "kind": "victim_minor",
            "status": ("due", "overdue", "filed")[i % 3],
            "learned_at": domain.format_time(DUE),
            "due_at": domain.format_time(DUE + timedelta(minutes=(i * 7) % 11)),
        }
        for i in range(30)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(REPORTS), rows)
    expected = sorted(
        ((r["due_at"], r["report_id"]) for r in rows if r["status"] != "filed"),
    )
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = await queries.open_reports(engine, None, after, 3)
        seen += [(r.due_at, r.report_id) for r in page]
        if len(page) < 3:
            break
        after = seen[-1]
    assert seen == expected and len(seen) == 20
    overdue = await queries.open_reports(engine, "overdue", None, 100)
    assert [r.status for r in overdue] == ["overdue"] * 10
