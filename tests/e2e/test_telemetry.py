"""Traces, metrics and logs end to end (decisions 49, 55): intake, takedown and referral as their
own processes exporting over OTLP/HTTP to a local receiver on the real protocol (protobuf,
decoded with opentelemetry-proto). One trace goes from an HTTP write to intake through its
append into takedown's handling of the event, on through takedown's outbox and its deliverer's
webhook POST, with the deliverer's log records in it; the named instruments arrive; and no
personal value reaches a span, a metric, a log line or a log record sent over OTLP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from ncii_events.embedded import free_port
from ncii_events.telemetry import LOG_ATTRIBUTES
from ncii_events.tracing import ALLOWED_ATTRIBUTES
from starlette.applications import Starlette
from starlette.routing import Route

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_takedown import Receiver
from tests.support.eventually import eventually
from tests.support.otlp import Log, OtlpReceiver, Point, Span

MakeKey = Callable[[str, str], Awaitable[str]]
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # span kinds, as OTLP numbers them


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Traced:
    receiver: OtlpReceiver
    intake: RunningService
    takedown: RunningService
    referral: RunningService
    workdirs: list[Path]


@pytest.fixture(scope="module")
def traced(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[Traced]:
    receiver = OtlpReceiver().start()
    env = {
        "NCII_OTEL_EXPORTER": "otlp",
        "NCII_OTLP_ENDPOINT": receiver.url,
        "NCII_OTEL_EXPORT_INTERVAL": "0.2",
        "NCII_LOG_FORMAT": "json",
        "NCII_REFERRAL_SWEEP_INTERVAL_S": "0.2",
        "NCII_TAKEDOWN_SWEEP_INTERVAL_S": "0.2",
        "NCII_TAKEDOWN_RETRY_BASE_MS": "20",
    }
    started: list[RunningService] = []
    workdirs: list[Path] = []
    try:
        for name in ("intake", "takedown", "referral"):
            workdir = tmp_path_factory.mktemp(f"traced-{name}")
            workdirs.append(workdir)
            started.append(
                start_service(name, nats_server, workdir, master_key_file, extra_env=env)
            )
        yield Traced(receiver, *started, workdirs=workdirs)
    finally:
        for service in started:
            stop_service(service)
        receiver.stop()


@pytest.fixture(scope="module")
async def caseworker(traced: Traced, make_key: MakeKey) -> str:
    key = await make_key(f"centre-{uuid.uuid4().hex[:6]}", "caseworker")
    for service in (traced.intake, traced.takedown, traced.referral):
        await caught_up(service)
    return key


def case_body(**personal: Any) -> dict[str, Any]:
    return {
        "pseudonym": personal.get("pseudonym", "Sparrow"),
        "age_group": personal.get("age_group", "adult"),
        "harm_categories": ["distribution_without_consent_319_3"],
        "spread_status": "spread",
        "channels": [{"kind": "social_platform", "platform": personal.get("channel", "LINE")}],
        "intake_channel": "partner_api",
        "learned_at": ago(hours=1),
        "consents": {"takedown": True, "share_hashes": True, "referral": False},
        "contact": {
            "email": personal.get("email", "someone@example.org"),
            "phone": personal.get("phone", "+886 2 1234 5678"),
            "preferred": "email",
            "safe_times": personal.get("safe_times", "evenings"),
        },
        **({"region": "taipei_city"} if personal.get("age_group") == "minor" else {}),
    }


async def open_case(intake: RunningService, key: str, **personal: Any) -> dict[str, Any]:
    async with intake.client(key) as client:
        response = await client.post("/v1/cases", json=case_body(**personal))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def report_location(
    intake: RunningService, key: str, case_id: str, url: str, platform: str
) -> None:
    async with intake.client(key) as client:
        response = await client.post(
            f"/v1/cases/{case_id}/locations",
            json={"url": url, "platform": platform, "channel_kind": "image_host"},
        )
    assert response.status_code == 200, response.text


def spans_where(traced: Traced, **want: Any) -> Callable[[], list[Span]]:
    def found() -> list[Span]:
        spans, _, _, _ = traced.receiver.received.snapshot()
        return [
            s
            for s in spans
            if all(
                (s.attributes.get(k[5:]) if k.startswith("attr_") else getattr(s, k)) == v
                for k, v in want.items()
            )
        ]

    return found


async def one_span(traced: Traced, what: str, *, exactly: bool = True, **want: Any) -> Span:
    """The span with ``want`` once exported (the only one, unless not ``exactly``: a retried
    outbox row or a waiting test may see several)."""
    find = spans_where(traced, **want)

    def exactly_one() -> Span:
        spans = find()
        assert spans, f"no span yet with {want}"
        assert len(spans) == 1 or not exactly, spans
        return spans[0]

    return await eventually(exactly_one, what=what)


async def test_an_http_write_to_intake_is_traced_through_takedowns_handling_of_its_event(
    traced: Traced, caseworker: str
) -> None:
    opened = await open_case(traced.intake, caseworker)
    case_id = opened["case_id"]
    await report_location(
        traced.intake, caseworker, case_id, "https://photos.example/p/1", "PhotoHost"
    )

    # intake: the request's span, and the append under it (the event's traceparent)
    append = await one_span(
        traced,
        "intake's append of LocationReported",
        service="ncii-intake",
        name="ncii.events.append",
        **{"attr_ncii.case_id": case_id, "attr_ncii.event_types": "LocationReported"},
    )
    assert append.kind == PRODUCER
    request = await one_span(
        traced, "intake's request span", service="ncii-intake", span_id=append.parent_span_id
    )
    assert request.kind == SERVER
    assert request.name == "HTTP POST /v1/cases/{case_id}/locations"
    assert request.attributes["http.route"] == "/v1/cases/{case_id}/locations"
    assert request.attributes["http.response.status_code"] == 200

    # takedown, another process: its projection's span for that event is the append's child
    handled = await one_span(
        traced,
        "takedown handling LocationReported",
        service="ncii-takedown",
        name="ncii.handle LocationReported",
        **{"attr_ncii.case_id": case_id},
    )
    assert handled.kind == CONSUMER
    assert handled.trace_id == request.trace_id == append.trace_id
    assert handled.parent_span_id == append.span_id
    assert handled.attributes["ncii.handler"] == "takedowns"
    batch = await one_span(
        traced, "the batch the event was applied in", span_id=handled.links[0][1]
    )
    assert batch.name == "ncii.projection.apply"
    assert batch.service == "ncii-takedown"

    # what takedown decided (TakedownOpened, through its outbox) goes on in the same trace
    publish = await one_span(
        traced,
        "takedown's outbox publishing TakedownOpened",
        exactly=False,
        service="ncii-takedown",
        name="ncii.outbox.publish TakedownOpened",
        parent_span_id=handled.span_id,
        **{"attr_ncii.case_id": case_id},
    )
    assert publish.trace_id == request.trace_id
    appended = await one_span(
        traced,
        "takedown's append of TakedownOpened",
        service="ncii-takedown",
        parent_span_id=publish.span_id,
    )
    assert appended.name == "ncii.events.append"
    assert appended.trace_id == request.trace_id


@pytest.fixture
async def platform_hook() -> AsyncIterator[Receiver]:
    """A platform's webhook endpoint: refuses the first notice (503), then takes those whose
    signature verifies."""
    found = Receiver(fail_first=1)
    port = free_port()
    app = Starlette(routes=[Route("/hook", found.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the platform's endpoint listening")
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    server.should_exit = True
    await task


async def test_a_notice_is_delivered_in_the_trace_of_the_intake_request_that_allowed_it(
    traced: Traced, caseworker: str, platform_hook: Receiver
) -> None:
    # decision 55: intake's request -> its append -> takedown's reactor -> its outbox -> the
    # reactor again -> the deliverer's webhook POST, one trace across two processes
    name = f"HookHost{uuid.uuid4().hex[:6]}"
    async with traced.takedown.client(caseworker) as client:
        registered = await client.post(
            "/v1/platforms",
            json={
                "name": name,
                "kind": "cloud_or_image_host",
                "jurisdiction": "TW",
                "regimes": ["tw"],
                "channel": "webhook",
                "webhook_url": platform_hook.url,
            },
        )
        assert registered.status_code == 201, registered.text
    platform_hook.secret = registered.json()["webhook_secret"]
    await caught_up(traced.takedown)
    opened = await open_case(traced.intake, caseworker)  # an adult: no statement yet
    case_id = opened["case_id"]
    await report_location(traced.intake, caseworker, case_id, "https://hook.example/p/1", name)
    async with traced.takedown.client(caseworker) as client:

        async def takedown_opened() -> str:
            listed = await client.get(f"/v1/cases/{case_id}/takedowns")
            assert listed.status_code == 200, listed.text
            items = listed.json()["items"]
            assert items, "no takedown yet"
            return str(items[0]["takedown_id"])

        takedown_id = await eventually(takedown_opened, what="the takedown opened")
        evidence = await client.post(
            f"/v1/cases/{case_id}/takedowns/{takedown_id}/evidence",
            json={
                "capture_method": "screenshot",
                "preserved_by": "desk 3",
                "captured_at": ago(minutes=5),
                "capture_sha256": uuid.uuid4().hex * 2,
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert evidence.status_code in (200, 201), evidence.text
    await caught_up(traced.takedown)
    assert not platform_hook.accepted, "a notice left before the victim's statement"
    # the statement is what the notice waited for: its request starts the trace
    async with traced.intake.client(caseworker) as client:
        stated = await client.post(
            f"/v1/cases/{case_id}/non-consent",
            json={"stated_at": ago(minutes=30), "method": "written"},
        )
        assert stated.status_code == 200, stated.text
    await eventually(lambda: bool(platform_hook.accepted), what="the notice delivered")

    request = await one_span(
        traced,
        "intake's non-consent request",
        exactly=False,
        service="ncii-intake",
        name="HTTP POST /v1/cases/{case_id}/non-consent",
    )
    handled = await one_span(
        traced,
        "takedown handling NonConsentRecorded",
        service="ncii-takedown",
        name="ncii.handle NonConsentRecorded",
        **{"attr_ncii.case_id": case_id},
    )
    assert handled.trace_id == request.trace_id
    publish = await one_span(
        traced,
        "takedown's outbox publishing TakedownRequested",
        exactly=False,
        service="ncii-takedown",
        name="ncii.outbox.publish TakedownRequested",
        parent_span_id=handled.span_id,
    )
    requested = await one_span(
        traced,
        "takedown handling its own TakedownRequested",
        service="ncii-takedown",
        name="ncii.handle TakedownRequested",
        **{"attr_ncii.case_id": case_id},
    )
    append = await one_span(
        traced, "the append of TakedownRequested", span_id=requested.parent_span_id
    )
    assert append.parent_span_id == publish.span_id
    # the first attempt was refused (503), the second taken (204): each its own span
    post = await one_span(
        traced,
        "the accepted webhook POST",
        name="HTTP POST webhook",
        **{"attr_http.response.status_code": 204},
        exactly=False,
    )
    assert post.kind == CLIENT
    deliver = await one_span(traced, "the deliverer's notice", span_id=post.parent_span_id)
    assert deliver.name == "ncii.deliver notice"
    assert deliver.attributes["ncii.case_id"] == case_id
    assert deliver.parent_span_id == requested.span_id
    refused = await one_span(
        traced,
        "the refused webhook POST",
        name="HTTP POST webhook",
        **{"attr_http.response.status_code": 503},
        exactly=False,
    )
    first = await one_span(traced, "the first attempt", span_id=refused.parent_span_id)
    assert first.parent_span_id == requested.span_id
    sent = await one_span(
        traced,
        "the append of NoticeSent",
        name="ncii.events.append",
        parent_span_id=deliver.span_id,
        **{"attr_ncii.event_types": "NoticeSent"},
    )

    # the deliverer's log line of the refusal, exported over OTLP in the same trace
    def refusal_logged() -> Log:
        logs = [
            r
            for r in traced.receiver.received.received_logs()
            if r.service == "ncii-takedown" and r.span_id == first.span_id
        ]
        assert logs, "no log record of the refused attempt yet"
        return logs[0]

    logged = await eventually(refusal_logged, what="the refusal's log record")
    assert logged.trace_id == request.trace_id
    assert logged.severity == "WARNING"
    assert logged.scope == "ncii.takedown.delivery"
    assert "http_503" in str(logged.body)
    trace_ids = {
        s.trace_id for s in (handled, publish, requested, append, deliver, post, first, sent)
    }
    assert trace_ids == {request.trace_id}


def points(traced: Traced, metric: str, service: str) -> list[Point]:
    _, found, _, _ = traced.receiver.received.snapshot()
    return [p for p in found if p.metric == metric and p.service == service]


async def test_the_named_instruments_arrive_over_otlp(traced: Traced, caseworker: str) -> None:
    opened = await open_case(traced.intake, caseworker, age_group="minor")
    case_id = opened["case_id"]

    def arrived() -> bool:
        appended = points(traced, "ncii.events.appended", "ncii-intake")
        assert any(p.attributes == {"ncii.event_type": "CaseOpened"} for p in appended)
        http = points(traced, "http.server.request.duration", "ncii-intake")
        assert any(
            p.attributes
            == {
                "http.route": "/v1/cases",
                "http.request.method": "POST",
                "http.response.status_code": 201,
            }
            and p.value >= 1
            for p in http
        ), http
        lag = points(traced, "ncii.projection.lag", "ncii-takedown")
        assert {p.attributes["ncii.projection"] for p in lag} >= {"takedowns", "platforms"}
        takedown_overdue = points(traced, "ncii.deadlines.overdue", "ncii-takedown")
        assert {
            (p.attributes["ncii.deadline"], p.attributes["ncii.kind"]) for p in takedown_overdue
        } >= {("takedown_notice", "overdue"), ("takedown_notice", "escalated")}
        report_overdue = points(traced, "ncii.deadlines.overdue", "ncii-referral")
        assert {
            (p.attributes["ncii.deadline"], p.attributes["ncii.kind"]) for p in report_overdue
        } >= {("art7_report", "victim_minor"), ("art7_report", "known_suspect")}
        return True

    await eventually(arrived, what="every named instrument from the services")
    # referral handled the minor's CaseOpened (its art. 7 clock) in the same trace as intake
    handled = await one_span(
        traced,
        "referral handling CaseOpened",
        service="ncii-referral",
        name="ncii.handle CaseOpened",
        **{"attr_ncii.case_id": case_id, "attr_ncii.handler": "referrals"},
    )
    append = await one_span(traced, "intake's append", span_id=handled.parent_span_id)
    assert append.service == "ncii-intake"
    assert append.trace_id == handled.trace_id


async def test_no_personal_value_reaches_a_span_a_metric_or_a_log_line(
    traced: Traced, caseworker: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    personal = {
        "pseudonym": f"Quokka{tag}",
        "email": f"victim.{tag}@mail.example",
        "phone": f"+886 9{tag[:2].translate(str.maketrans('abcdef', '123456'))}7 654 321",
        "safe_times": f"after nine {tag} when her brother sleeps",
        "channel": f"Forum{tag}",
        "age_group": "minor",
    }
    url = f"https://leaks{tag}.example/album/{tag}"
    platform = f"Leaks{tag}"
    account, ip = f"@uploader{tag}", "198.51.100.77"
    description = f"ex-partner {tag} who threatened her"
    note = f"called back, she is scared {tag}"

    opened = await open_case(traced.intake, caseworker, **personal)
    case_id = opened["case_id"]
    access = opened["victim_access"]
    await report_location(traced.intake, caseworker, case_id, url, platform)
    async with traced.intake.client(caseworker) as client:
        offender = await client.post(
            f"/v1/cases/{case_id}/offender",
            json={
                "known": True,
                "account_ids": [account],
                "ip_addresses": [ip],
                "description": description,
            },
        )
        assert offender.status_code == 200, offender.text
        noted = await client.post(
            f"/v1/cases/{case_id}/notes",
            json={"text": note},
            headers={"Idempotency-Key": f"note-{tag}"},
        )
        assert noted.status_code in (200, 201), noted.text
        # refused bodies carry personal values too: the 422 and its span must not keep them
        refused = await client.post(
            f"/v1/cases/{case_id}/locations",
            json={"url": f"not a url {tag}", "platform": platform, "channel_kind": "image_host"},
        )
        assert refused.status_code == 422, refused.text
        # a query can name the victim's case reference
        found = await client.get("/v1/cases", params={"reference": access["reference"]})
        assert found.status_code == 200, found.text
    # takedown opened a takedown from the location, and recorded evidence naming the offender
    async with traced.takedown.client(caseworker) as client:

        async def opened_takedown() -> str:
            listed = await client.get(f"/v1/cases/{case_id}/takedowns")
            assert listed.status_code == 200, listed.text
            items = listed.json()["items"]
            assert items, "no takedown yet"
            return str(items[0]["takedown_id"])

        takedown_id = await eventually(opened_takedown, what="the takedown opened")
        evidence = await client.post(
            f"/v1/cases/{case_id}/takedowns/{takedown_id}/evidence",
            json={
                "capture_method": "screenshot",
                "preserved_by": f"desk {tag}",
                "offender_account": account,
                "offender_ip": ip,
                "captured_at": ago(minutes=5),
                "capture_sha256": uuid.uuid4().hex * 2,
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert evidence.status_code in (200, 201), evidence.text

    # everything went through: the spans of the last writes and of the consumers are exported
    await one_span(
        traced,
        "takedown's evidence request",
        exactly=False,
        service="ncii-takedown",
        name="HTTP POST /v1/cases/{case_id}/takedowns/{takedown_id}/evidence",
    )
    for service, event in (
        ("ncii-takedown", "LocationReported"),
        ("ncii-referral", "CaseOpened"),
        ("ncii-intake", "OffenderDetailsRecorded"),
    ):
        await one_span(
            traced,
            f"{service} handling {event}",
            exactly=False,
            service=service,
            name=f"ncii.handle {event}",
            **{"attr_ncii.case_id": case_id},
        )

    def metrics_after_the_writes() -> bool:
        http = points(traced, "http.server.request.duration", "ncii-takedown")
        assert any(
            p.attributes.get("http.route") == "/v1/cases/{case_id}/takedowns/{takedown_id}/evidence"
            for p in http
        )
        return True

    await eventually(metrics_after_the_writes, what="the evidence request's latency")

    values = [
        *(v for k, v in personal.items() if k != "age_group"),
        url,
        f"leaks{tag}.example",
        platform,
        account,
        ip,
        description,
        note,
        f"not a url {tag}",
        f"desk {tag}",
        access["reference"],
        access["pin"],
        caseworker,
    ]
    spans, _, bodies, texts = traced.receiver.received.snapshot()
    exported = b"\n".join(bodies)
    text = "\n".join(texts)
    logs = "\n".join(
        p.read_text(errors="replace") for d in traced.workdirs for p in d.glob("*.log")
    )
    assert logs, "the services logged nothing: nothing was checked"
    records = traced.receiver.received.received_logs()
    assert {r.service for r in records} >= {"ncii-intake", "ncii-takedown", "ncii-referral"}, (
        "no log records over OTLP: nothing was checked"
    )
    for value in values:
        assert value.encode() not in exported, f"{value!r} was exported"
        assert value not in text, f"{value!r} was exported"
        assert value not in logs, f"{value!r} was logged"
    # and what a span may say at all is a closed list
    keys = {k for s in spans for k in s.attributes} | {
        k for s in spans for _, attrs in s.events for k in attrs
    }
    assert keys <= ALLOWED_ATTRIBUTES, keys - ALLOWED_ATTRIBUTES
    # and what a log record may say besides its message
    log_keys = {k for r in records for k in r.attributes}
    assert log_keys <= set(LOG_ATTRIBUTES.values()), log_keys
    assert not [s for s in spans if s.events or s.status_message]
