"""Takedown's rounds against real NATS and real SQL (SQLite, then PostgreSQL), the service in
this process with its workers driven by the test (decision 0053): a round of notices sent again
after a crash keeps its ids and records each once, the deadline sweep marks every due notice
while the projection lags behind, the outbox published again after a crash appends nothing
twice, and a run of NoticeSent is applied in log order with what follows it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from ncii_contracts import ALL_EVENTS
from ncii_contracts.intake import CaseOpened, Consents, LocationReported, NonConsentRecorded
from ncii_contracts.takedown import NoticeSent, TakedownOverdue
from ncii_events.auth import Principal
from ncii_events.clock import Clock
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.envelope import Actor
from ncii_events.ids import uuid7_str
from ncii_events.keys import NatsCaseKeys
from ncii_events.registry import EventRegistry
from ncii_events.service import ServiceRuntime
from ncii_events.settings import Settings
from ncii_events.store import NEW, AggregateRef, Cause, EventStore
from ncii_events.stream import ensure_streams
from ncii_events.transport import connect
from ncii_takedown import deadlines, delivery
from ncii_takedown.app import TakedownApp
from ncii_takedown.deadlines import DeadlineSweeper
from ncii_takedown.delivery import Deliverer
from ncii_takedown.main import SPEC
from ncii_takedown.outbox import OutboxPublisher, derived_id, takedown_ref
from ncii_takedown.read_models.schema import DELIVERIES, OUTBOX, TAKEDOWNS
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import signing_key
from tests.support.eventually import eventually

LEARNED = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
PARTNER = Principal("rounds-partner", "rounds-ngo", "partner")
STAFF = Principal("rounds-staff", "centre", "caseworker")


@dataclass
class Receiver:
    """A platform's endpoint: every attempt's ``webhook-id``, each signature verified."""

    url: str = ""
    secret: str = ""
    ids: list[str] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        Webhook(self.secret).verify(body, headers)
        self.ids.append(headers["webhook-id"])
        return Response(status_code=204)


@dataclass
class System:
    runtime: ServiceRuntime[TakedownApp]
    intake: EventStore
    receiver: Receiver
    platform: str

    @property
    def app(self) -> TakedownApp:
        return self.runtime.app

    def runner(self, name: str) -> Any:
        return next(r for r in self.runtime.runners if r.name == name)


@pytest.fixture
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A server of each test's own: the deliverer and the sweeper act on every notice in the
    log, and the suite's log holds other tests' notices."""
    server = EmbeddedNats(
        tmp_path_factory.mktemp("rounds-nats"),
        port=free_port(),
        monitor_port=free_port(),
        sync_always=False,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def system(
    own_nats: EmbeddedNats,
    keys_dir: Path,
    master_key_file: Path,
    tmp_path: Path,
    database_url: str,
) -> AsyncIterator[System]:
    client = await connect(own_nats.url, name="tests-rounds")
    try:
        await ensure_streams(client)
    finally:
        await client.close()
    receiver = Receiver()
    port = free_port()
    web = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the receiver listening")
    settings = Settings(
        nats_url=own_nats.url,
        database_url=database_url,  # SQLite, then PostgreSQL
        master_key_file=master_key_file,
        var_dir=tmp_path,
        signing_keys_dir=keys_dir,
    )
    # only the outbox publisher runs by itself: the test drives the deliverer and the sweeper
    spec = dataclasses.replace(SPEC, workers=lambda app: [app.outbox])
    runtime = ServiceRuntime(spec, settings)
    await runtime.start()
    keys = NatsCaseKeys(runtime.nc, runtime.master)  # type: ignore[arg-type]
    await keys.start()
    intake = EventStore(
        runtime.nc,  # type: ignore[arg-type]
        keys,
        registry=EventRegistry(*ALL_EVENTS),
        signing=signing_key(keys_dir, "intake"),
    )
    name = f"host-{uuid.uuid4().hex[:8]}"
    fields: dict[str, Any] = {
        "name": name,
        "kind": "cloud_or_image_host",
        "jurisdiction": "TW",
        "regimes": ["tw"],
        "channel": "webhook",
        "webhook_url": f"http://127.0.0.1:{port}/hook",
        "api_organisation": name,
    }
    platform = await runtime.app.register_platform(STAFF, None, fields)
    receiver.url = fields["webhook_url"]
    receiver.secret = runtime.app.webhook_secret(platform.platform_id, 1)
    await runtime.wait_caught_up()
    try:
        yield System(runtime, intake, receiver, name)
    finally:
        await runtime.stop()
        await keys.stop()
        server.should_exit = True
        await serving


async def settled(system: System) -> None:
    """Everything in the log applied, the reactor's decisions appended, and those applied."""
    await system.runtime.wait_caught_up()
    await system.runtime.wait_caught_up()


async def notices_queued(system: System, platform: str, count: int) -> list[Any]:
    """``count`` cases with a location on ``platform`` each, their evidence recorded: the
    reactor decides their notices (pending delivery rows)."""
    actor = Actor(organisation="rounds-ngo", principal="rounds", role="partner")
    cases = []
    for _ in range(count):
        case_id = uuid7_str()
        await system.intake.append(
            AggregateRef(case_id, "case", case_id),
            [
                CaseOpened(
                    organisation="rounds-ngo",
                    reference=uuid.uuid4().hex[:10],
                    age_group="adult",
                    harm_categories=["distribution_without_consent_319_3"],
                    spread_status="spread",
                    intake_channel="partner_api",
                    learned_at=LEARNED,
                    consents=Consents(takedown=True, share_hashes=True, referral=False),
                    pseudonym="Wren",
                ),
                NonConsentRecorded(stated_at=LEARNED, method="written"),
                LocationReported(
                    location_id=uuid7_str(),
                    channel_kind="image_host",
                    platform=platform,
                    url=f"https://{platform}.example/p/{uuid.uuid4().hex[:8]}",
                ),
            ],
            expected=NEW,
            cause=Cause(actor, case_id, case_id),
        )
        cases.append(case_id)
    await settled(system)
    engine = system.app.engine
    async with engine.connect() as conn:
        takedowns = (
            await conn.execute(
                select(TAKEDOWNS.c.case_id, TAKEDOWNS.c.takedown_id).where(
                    TAKEDOWNS.c.case_id.in_(cases)
                )
            )
        ).all()
    assert len(takedowns) == count
    for case_id, takedown_id in takedowns:
        await system.app.case_change(
            PARTNER,
            None,
            case_id,
            takedown_id,
            "evidence",
            lambda t: t.record_evidence(
                captured_at=LEARNED,
                capture_method="screenshot",
                capture_sha256="ab" * 32,
                url=None,
                preserved_by="desk",
                offender_account=None,
                offender_ip=None,
            ),
        )
    await settled(system)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(DELIVERIES).where(DELIVERIES.c.case_id.in_(cases)))).all()
    assert [r.status for r in rows] == ["pending"] * count
    return list(rows)


async def events_of(system: System, row: Any, kind: type) -> list[Any]:
    events = await system.app.store.load(takedown_ref(row.case_id, row.takedown_id))
    return [e for e in events if isinstance(e.event, kind)]


async def test_a_round_sent_again_after_a_crash_keeps_its_ids_and_records_each_notice_once(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = await notices_queued(system, system.platform, 3)
    ids = sorted(r.notice_id for r in rows)
    runner = system.runner("takedowns")

    # 1. the receivers answered, then the process died before NoticeSent was appended
    async def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(Deliverer, "_record_sent", crash)
    with pytest.raises(RuntimeError):
        await Deliverer(system.app).step()
    monkeypatch.undo()
    assert sorted(system.receiver.ids) == ids
    assert [await events_of(system, r, NoticeSent) for r in rows] == [[], [], []]

    # 2. sent again under the same ids and recorded; the process died before the round's SQL
    # batch, and before the projection applied what it recorded
    await runner.stop()

    def died(_engine: Any) -> Any:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(delivery, "write_transaction", died)
    with pytest.raises(RuntimeError):
        await Deliverer(system.app).step()
    monkeypatch.undo()
    assert sorted(system.receiver.ids) == sorted(ids * 2)  # the same webhook-id, twice
    for row in rows:
        [sent] = await events_of(system, row, NoticeSent)
        assert sent.envelope.event_id == derived_id(row.notice_id, "sent")
    async with system.app.engine.connect() as conn:
        statuses = (await conn.execute(select(DELIVERIES.c.status))).scalars().all()
    assert set(statuses) == {"pending"}

    # 3. the next round finds each notice recorded in the log: nothing sent, nothing recorded
    await Deliverer(system.app).step()
    assert len(system.receiver.ids) == 6
    assert [len(await events_of(system, r, NoticeSent)) for r in rows] == [1, 1, 1]
    await runner.start()
    await settled(system)
    async with system.app.engine.connect() as conn:
        got = (
            await conn.execute(
                select(TAKEDOWNS.c.status, DELIVERIES.c.status).join(
                    DELIVERIES, DELIVERIES.c.takedown_id == TAKEDOWNS.c.takedown_id
                )
            )
        ).all()
    assert sorted(got) == [("sent", "delivered")] * 3


async def test_the_sweep_marks_every_due_notice_while_the_projection_lags_behind(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = await notices_queued(system, system.platform, 5)
    assert await Deliverer(system.app).step() == 5
    await settled(system)
    monkeypatch.setattr(deadlines, "ROUND", 2)
    await system.runner("takedowns").stop()  # nothing it marks is applied meanwhile
    system.app.clock = Clock(73 * 3600)  # past every adult's 72 h
    sweeper = DeadlineSweeper(system.app)
    rounds = []
    while done := await sweeper.step():
        rounds.append(done)
    assert rounds == [2, 2, 1]
    for row in rows:
        [overdue] = await events_of(system, row, TakedownOverdue)
        assert overdue.envelope.event_id == derived_id(row.notice_id, "overdue")


async def test_the_outbox_published_again_after_a_crash_appends_nothing_twice(
    system: System,
) -> None:
    rows = await notices_queued(system, system.platform, 4)
    before = [
        len(await system.app.store.load(takedown_ref(r.case_id, r.takedown_id))) for r in rows
    ]
    await system.app.outbox.stop()
    async with system.app.engine.begin() as conn:  # as if it died before marking them
        await conn.execute(update(OUTBOX).values(published_at=None))
    again = OutboxPublisher(system.app.engine, system.app.store, registry=system.runtime.registry)
    assert again.concurrency > 1  # takedowns side by side
    assert await again.publish_pending(limit=1000) > 0
    after = [len(await system.app.store.load(takedown_ref(r.case_id, r.takedown_id))) for r in rows]
    assert after == before
    async with system.app.engine.connect() as conn:
        left = (
            await conn.execute(select(OUTBOX.c.id).where(OUTBOX.c.published_at.is_(None)))
        ).all()
    assert left == []


async def test_notices_sent_and_an_answer_in_one_batch_are_applied_in_log_order(
    system: System,
) -> None:
    """The projection applies a run of ``NoticeSent`` at once, and an acknowledgement read in
    the same batch after them still finds its notice sent."""
    rows = await notices_queued(system, system.platform, 3)
    runner = system.runner("takedowns")
    await runner.stop()  # what follows is read in one batch when it starts again
    assert await Deliverer(system.app).step() == 3
    answered = rows[1]
    platform = Principal("rounds-platform", system.platform, "platform")
    await system.app.platform_change(
        platform,
        None,
        answered.notice_id,
        "acknowledged",
        lambda t: t.acknowledge(system.app.now_text(), "ticket-1"),
    )
    await runner.start()
    await settled(system)
    async with system.app.engine.connect() as conn:
        status = dict(
            (
                await conn.execute(
                    select(TAKEDOWNS.c.takedown_id, TAKEDOWNS.c.status).where(
                        TAKEDOWNS.c.takedown_id.in_([r.takedown_id for r in rows])
                    )
                )
            ).all()
        )
    assert status == {
        rows[0].takedown_id: "sent",
        answered.takedown_id: "acknowledged",
        rows[2].takedown_id: "sent",
    }
