"""Takedown end to end: intake and takedown as their own processes, real NATS and SQLite, a real
webhook receiver on a free port, driven over HTTP as a case worker, a partner and platforms
would. Sightings (hashmatch's ``MatchFound``) are appended to the log as hashmatch would."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from nats.aio.client import Client as NATS
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from ncii_contracts.hashmatch import MatchFound
from ncii_contracts.takedown import EvidencePreserved
from ncii_events.embedded import free_port
from ncii_events.envelope import Actor
from ncii_events.store import NEW, AggregateRef, Cause, EventStore
from ncii_events.stream import KEYS_BUCKET
from ncii_takedown import evidence_keys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.support.eventually import eventually
from tests.support.mailbox import PASSWORD as MAIL_PASSWORD
from tests.support.mailbox import USER as MAIL_USER
from tests.support.mailbox import MailServer, start_mail_server

MakeKey = Callable[[str, str], Awaitable[str]]
FAST = {"NCII_TAKEDOWN_RETRY_BASE_MS": "20", "NCII_TAKEDOWN_SWEEP_INTERVAL_S": "0.2"}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    """Platforms' abuse mailboxes: STARTTLS required, a login required."""
    server = start_mail_server(tmp_path_factory.mktemp("smtp"), tls=True, require_login=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def takedown(
    nats_server: SuiteNats,
    tmp_path_factory: pytest.TempPathFactory,
    master_key_file: Path,
    mail_server: MailServer,
) -> Iterator[RunningService]:
    smtp = {
        "NCII_TAKEDOWN_SMTP_HOST": "127.0.0.1",
        "NCII_TAKEDOWN_SMTP_PORT": str(mail_server.port),
        "NCII_TAKEDOWN_SMTP_FROM": "takedown@centre.example",
        "NCII_TAKEDOWN_SMTP_USER": MAIL_USER,
        "NCII_TAKEDOWN_SMTP_PASSWORD": MAIL_PASSWORD,
        "NCII_TAKEDOWN_SMTP_STARTTLS": "required",
        "NCII_TAKEDOWN_SMTP_CA_FILE": str(mail_server.ca_file),
    }
    service = start_service(
        "takedown",
        nats_server,
        tmp_path_factory.mktemp("takedown"),
        master_key_file,
        extra_env={**FAST, **smtp},
    )
    yield service
    stop_service(service)


@dataclass
class Keys:
    caseworker: str
    partner: str
    platform: str
    other_platform: str
    platform_org: str
    other_org: str


@pytest.fixture(scope="module")
async def keys(intake: RunningService, takedown: RunningService, make_key: MakeKey) -> Keys:
    platform_org, other_org = unique("photohost"), unique("clipsite")
    made = Keys(
        caseworker=await make_key("centre", "caseworker"),
        partner=await make_key(unique("ngo"), "partner"),
        platform=await make_key(platform_org, "platform"),
        other_platform=await make_key(other_org, "platform"),
        platform_org=platform_org,
        other_org=other_org,
    )
    await caught_up(intake)
    await caught_up(takedown)
    return made


@dataclass
class Receiver:
    """A platform's webhook endpoint: refuses the first ``fail_first`` deliveries (503), then
    accepts those whose Standard Webhooks signature verifies with ``secret``."""

    url: str = ""
    secret: str = ""
    fail_first: int = 2
    attempts: list[dict[str, str]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        self.attempts.append(headers)
        if len(self.attempts) <= self.fail_first:
            return Response(status_code=503)
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.bad_signatures += 1
            return Response(status_code=400)
        self.accepted.append({"id": headers["webhook-id"], "payload": payload})
        return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    port = free_port()
    app = Starlette(routes=[Route("/hook", found.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="the receiver listening")
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    server.should_exit = True
    await task


def platform_body(name: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "kind": "cloud_or_image_host",
        "jurisdiction": "TW",
        "regimes": ["tw"],
        "channel": "web_form",
        "form_url": "https://photohost.example/report",
    }
    body.update(overrides)
    return body


async def register(service: RunningService, key: str, body: dict[str, Any]) -> dict[str, Any]:
    async with service.client(key) as client:
        response = await client.post("/v1/platforms", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def webhook_platform(
    takedown: RunningService, keys: Keys, receiver: Receiver, name: str, **overrides: Any
) -> dict[str, Any]:
    """A platform taking notices by signed webhook at the test's receiver, which checks the
    signatures with the secret the registration returned."""
    platform = await register(
        takedown,
        keys.caseworker,
        platform_body(name, channel="webhook", webhook_url=receiver.url, **overrides),
    )
    receiver.secret = platform["webhook_secret"]
    return platform


VICTIM_ACCESS: dict[str, dict[str, str]] = {}
"""The reference and PIN each opened case gave its victim."""


async def open_case(intake: RunningService, key: str, age_group: str) -> str:
    body = {
        "pseudonym": "Sparrow",
        "age_group": age_group,
        "harm_categories": ["distribution_without_consent_319_3"],
        "spread_status": "spread",
        "channels": [{"kind": "social_platform", "platform": "PhotoHost"}],
        "intake_channel": "partner_api",
        "learned_at": ago(hours=1),
        "consents": {"takedown": True, "share_hashes": True, "referral": False},
        "contact": {"email": "sparrow@example.org", "preferred": "email"},
    }
    async with intake.client(key) as client:
        response = await client.post("/v1/cases", json=body)
        assert response.status_code == 201, response.text
        case_id = str(response.json()["case_id"])
        VICTIM_ACCESS[case_id] = response.json()["victim_access"]
        if age_group == "adult":
            stated = await client.post(
                f"/v1/cases/{case_id}/non-consent",
                json={"stated_at": ago(minutes=30), "method": "written"},
            )
            assert stated.status_code == 200, stated.text
    return case_id


async def report_location(intake: RunningService, key: str, case_id: str, platform: str) -> str:
    host = platform.lower().replace(" ", "-")
    async with intake.client(key) as client:
        response = await client.post(
            f"/v1/cases/{case_id}/locations",
            json={
                "url": f"https://{host}.example/p/{uuid.uuid4().hex[:6]}",
                "platform": platform,
                "channel_kind": "image_host",
            },
        )
    assert response.status_code == 200, response.text
    return str(response.json()["case_id"])


async def takedowns(service: RunningService, key: str, case_id: str) -> list[dict[str, Any]]:
    async with service.client(key) as client:
        response = await client.get(f"/v1/cases/{case_id}/takedowns")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def one_takedown(
    service: RunningService, key: str, case_id: str, status: str, count: int = 1
) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]]:
        items = await takedowns(service, key, case_id)
        assert len(items) == count, items
        assert items[-1]["status"] == status, items[-1]
        return items

    return await eventually(found, what=f"a takedown {status}")


EVIDENCE = {
    "capture_method": "screenshot",
    "preserved_by": "desk 3",
    "offender_account": "@uploader",
    "offender_ip": "203.0.113.7",
}


async def record_evidence(
    service: RunningService, key: str, case_id: str, takedown_id: str, **extra: Any
) -> httpx.Response:
    body = {
        **EVIDENCE,
        "captured_at": ago(minutes=5),
        "capture_sha256": uuid.uuid4().hex * 2,
        **extra,
    }
    async with service.client(key) as client:
        return await client.post(
            f"/v1/cases/{case_id}/takedowns/{takedown_id}/evidence",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )


def types(item: dict[str, Any]) -> list[str]:
    return [e["type"] for e in item["timeline"]]


async def retention_scheduled(
    service: RunningService, key: str, case_id: str, count: int = 1
) -> list[dict[str, Any]]:
    """The case's takedowns once every one has ended and scheduled its evidence's erasure."""

    async def found() -> list[dict[str, Any]]:
        items = await takedowns(service, key, case_id)
        assert len(items) == count, items
        assert all(i["evidence_erase_at"] for i in items), items
        return items

    return await eventually(found, what="the evidence's retention scheduled")


# -- a webhook notice, from the location to the removal -------------------------------------------


async def test_a_location_becomes_a_signed_webhook_notice_delivered_after_retries_and_answered(
    intake: RunningService, takedown: RunningService, keys: Keys, receiver: Receiver
) -> None:
    name = unique("PhotoHost")
    platform = await webhook_platform(
        takedown, keys, receiver, name, api_organisation=keys.platform_org
    )
    case_id = await open_case(intake, keys.partner, "adult")
    await report_location(intake, keys.partner, case_id, name.upper())  # names match loosely
    (item,) = await one_takedown(takedown, keys.partner, case_id, "opened")
    assert item["platform_id"] == platform["platform_id"]
    assert receiver.attempts == []  # evidence first: nothing left yet

    answer = await record_evidence(takedown, keys.partner, case_id, item["takedown_id"])
    assert answer.status_code == 200, answer.text
    (item,) = await one_takedown(takedown, keys.partner, case_id, "sent")

    # two refusals, then a delivery whose signature verifies; one id throughout (de-duplication)
    assert len(receiver.attempts) == 3 and receiver.bad_signatures == 0
    assert {a["webhook-id"] for a in receiver.attempts} == {item["notice_id"]}
    (delivered,) = receiver.accepted
    notice = delivered["payload"]
    assert notice["notice_id"] == item["notice_id"] and notice["site"] == name
    assert notice["urls"][0].startswith(f"https://{name.lower()}.example/p/")
    assert notice["offender"] == {"account": "@uploader", "ip_address": "203.0.113.7"}
    assert notice["deadline"]["hours"] == 72 and notice["person"] == "adult"
    assert "Sparrow" not in str(notice) and "sparrow@" not in str(notice)
    sent = item["timeline"][-1]
    assert sent["type"] == "NoticeSent" and sent["attempts"] == 3

    # the platform's side: its own notices only; another platform gets 404 for this one
    async with takedown.client(keys.other_platform) as other:
        assert (await other.get("/v1/notices")).json()["items"] == []
        refused = await other.post(f"/v1/notices/{item['notice_id']}/acknowledge")
        assert refused.status_code == 404
    async with takedown.client(keys.platform) as own:
        listed = (await own.get("/v1/notices")).json()["items"]
        assert [n["notice_id"] for n in listed] == [item["notice_id"]]
        ack = await own.post(
            f"/v1/notices/{item['notice_id']}/acknowledge",
            json={"platform_reference": "PH-1"},
            headers={"Idempotency-Key": "ack-1"},
        )
        assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
        when = {"removed_at": ago(minutes=1)}
        removed = await own.post(
            f"/v1/notices/{item['notice_id']}/removed",
            json=when,
            headers={"Idempotency-Key": "rm-1"},
        )
        assert removed.status_code == 200 and removed.json()["status"] == "removed"
        again = await own.post(
            f"/v1/notices/{item['notice_id']}/removed",
            json=when,
            headers={"Idempotency-Key": "rm-1"},
        )
        assert again.headers.get("Idempotent-Replayed") == "true"

        async def settled() -> bool:
            return bool((await own.get("/v1/notices")).json()["items"] == [])

        await eventually(settled, what="the removed notice leaving the open list")
    (item,) = await retention_scheduled(takedown, keys.partner, case_id)
    assert item["status"] == "removed"
    assert types(item) == [
        "TakedownOpened",
        "EvidencePreserved",
        "TakedownRequested",
        "NoticeSent",
        "TakedownAcknowledged",
        "ContentRemoved",
        "EvidenceRetentionScheduled",  # the evidence is kept 180 days from the end
    ]


async def test_a_location_opens_a_takedown_only_while_the_victim_consents_to_takedowns(
    intake: RunningService, takedown: RunningService, keys: Keys
) -> None:
    case_id = await open_case(intake, keys.partner, "minor")

    async def consent(given: bool) -> None:
        async with intake.client(keys.partner) as client:
            changed = await client.post(f"/v1/cases/{case_id}/consents", json={"takedown": given})
        assert changed.status_code == 200, changed.text

    await consent(False)
    await report_location(intake, keys.partner, case_id, "a forum nobody registered")
    await caught_up(takedown)
    assert await takedowns(takedown, keys.partner, case_id) == []
    await consent(True)
    await report_location(intake, keys.partner, case_id, "another forum")
    await one_takedown(takedown, keys.partner, case_id, "opened")


async def test_withdrawing_a_case_cancels_its_takedowns_and_tells_the_platform(
    intake: RunningService, takedown: RunningService, keys: Keys, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    name = unique("ClipSite")
    platform = await webhook_platform(takedown, keys, receiver, name)
    case_id = await open_case(intake, keys.partner, "minor")
    await report_location(intake, keys.partner, case_id, name)
    await report_location(intake, keys.partner, case_id, "a forum nobody registered")
    items = await one_takedown(takedown, keys.partner, case_id, "opened", count=2)
    told = next(i for i in items if i["platform_id"] == platform["platform_id"])
    assert (await record_evidence(takedown, keys.partner, case_id, told["takedown_id"])).is_success
    await eventually(lambda: len(receiver.accepted) == 1, what="the notice delivered")

    async with intake.client(keys.partner) as client:
        withdrawn = await client.post(f"/v1/cases/{case_id}/withdraw", json={"reason": "resolved"})
        assert withdrawn.status_code == 200, withdrawn.text

    async def cancelled() -> list[dict[str, Any]]:
        found = await takedowns(takedown, keys.partner, case_id)
        assert [i["status"] for i in found] == ["cancelled", "cancelled"], found
        return found

    await eventually(cancelled, what="every takedown cancelled")
    await eventually(lambda: len(receiver.accepted) == 2, what="the cancellation delivered")
    notice, cancellation = receiver.accepted
    assert cancellation["id"] == f"{notice['id']}:cancel"
    assert cancellation["payload"] == {
        "type": "ncii.takedown.cancelled",
        "notice_id": notice["id"],
        "reason": "case_withdrawn",
    }


async def test_an_email_notice_goes_over_smtp_with_starttls_after_refusals_and_its_withdrawal_too(
    intake: RunningService, takedown: RunningService, keys: Keys, mail_server: MailServer
) -> None:
    mailbox = mail_server.mailbox
    mailbox.fail_first, mailbox.attempts = mailbox.attempts + 2, mailbox.attempts
    name = unique("MailHost")
    await register(
        takedown,
        keys.caseworker,
        platform_body(name, channel="email", email="abuse@mailhost.example"),
    )
    case_id = await open_case(intake, keys.partner, "adult")
    await report_location(intake, keys.partner, case_id, name)
    (item,) = await one_takedown(takedown, keys.partner, case_id, "opened")
    assert (await record_evidence(takedown, keys.partner, case_id, item["takedown_id"])).is_success
    (item,) = await one_takedown(takedown, keys.partner, case_id, "sent")

    # two temporary refusals (451), then accepted over STARTTLS with the desk's login
    assert mailbox.attempts == mailbox.fail_first + 1
    (got,) = [m for m in mailbox.received if m.recipients == ["abuse@mailhost.example"]]
    assert got.secure and got.login == MAIL_USER and got.sender == "takedown@centre.example"
    message = got.message
    notice_id = item["notice_id"]
    assert message["X-NCII-Notice-Id"] == notice_id
    assert message["Message-ID"] == f"<{notice_id}@centre.example>"
    (attachment,) = list(message.iter_attachments())
    notice = json.loads(attachment.get_content())
    assert notice["notice_id"] == notice_id and notice["site"] == name
    assert notice["urls"][0].startswith(f"https://{name.lower()}.example/p/")
    text = message.get_body(("plain",))
    assert text is not None and notice["urls"][0] in text.get_content()
    assert b"Sparrow" not in got.raw and b"sparrow@" not in got.raw
    sent = item["timeline"][-1]
    assert sent["type"] == "NoticeSent" and sent["attempts"] == 3

    async with intake.client(keys.partner) as client:
        withdrawn = await client.post(f"/v1/cases/{case_id}/withdraw", json={"reason": "resolved"})
        assert withdrawn.status_code == 200, withdrawn.text

    def withdrawal() -> Any:
        mails = [m for m in mailbox.received if m.recipients == ["abuse@mailhost.example"]]
        assert len(mails) == 2
        return mails[1].message

    cancel = await eventually(withdrawal, what="the withdrawal mailed")
    assert cancel["Subject"] == f"Notice withdrawn: {notice_id}"
    assert cancel["X-NCII-Notice-Id"] == notice_id


async def test_staff_ask_a_messaging_provider_to_freeze_an_account_and_it_answers_done(
    intake: RunningService, takedown: RunningService, keys: Keys, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    name = unique("ChatApp")
    platform = await webhook_platform(
        takedown, keys, receiver, name, kind="messaging", api_organisation=keys.platform_org
    )
    case_id = await open_case(intake, keys.partner, "adult")
    await caught_up(takedown)
    body = {
        **EVIDENCE,
        "offender_account": "@threatener",
        "captured_at": ago(minutes=5),
        "capture_sha256": uuid.uuid4().hex * 2,
        "purpose": "freeze_account",
        "platform_id": platform["platform_id"],
    }
    path = f"/v1/cases/{case_id}/requests"
    async with takedown.client(keys.partner) as client:
        no_account = await client.post(path, json={**body, "offender_account": None})
        unknown = await client.post(path, json={**body, "platform_id": str(uuid.uuid4())})
        created = await client.post(path, json=body, headers={"Idempotency-Key": "freeze-1"})
        again = await client.post(path, json=body, headers={"Idempotency-Key": "freeze-1"})
    assert no_account.status_code == 422 and "offender_account" in no_account.text
    assert unknown.status_code == 422
    assert created.status_code == 201, created.text
    assert created.json()["purpose"] == "freeze_account"
    assert again.json()["takedown_id"] == created.json()["takedown_id"]

    (item,) = await one_takedown(takedown, keys.partner, case_id, "sent")  # one, not three
    (delivered,) = receiver.accepted
    notice = delivered["payload"]
    assert notice["purpose"] == "freeze_account" and "Freeze the account" in notice["asks"]
    assert notice["offender"]["account"] == "@threatener" and notice["urls"] == []
    async with takedown.client(keys.platform) as own:
        removed = await own.post(
            f"/v1/notices/{item['notice_id']}/removed", json={"removed_at": ago(minutes=1)}
        )
        assert removed.status_code == 409  # not a removal: its own outcome
        done = await own.post(
            f"/v1/notices/{item['notice_id']}/done", json={"done_at": ago(minutes=1)}
        )
        assert done.status_code == 200 and done.json()["status"] == "fulfilled"
    (item,) = await retention_scheduled(takedown, keys.partner, case_id)
    assert item["status"] == "fulfilled" and item["purpose"] == "freeze_account"
    assert types(item)[-2:] == ["RequestFulfilled", "EvidenceRetentionScheduled"]


async def test_withdrawing_takedown_consent_cancels_open_removals_but_keeps_a_freeze(
    intake: RunningService, takedown: RunningService, keys: Keys, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    name = unique("TalkSite")
    platform = await webhook_platform(
        takedown, keys, receiver, name, kind="messaging", api_organisation=keys.platform_org
    )
    case_id = await open_case(intake, keys.partner, "minor")
    await report_location(intake, keys.partner, case_id, name)
    (removal,) = await one_takedown(takedown, keys.partner, case_id, "opened")
    answer = await record_evidence(takedown, keys.partner, case_id, removal["takedown_id"])
    assert answer.is_success, answer.text
    freeze = {
        **EVIDENCE,
        "offender_account": "@threatener",
        "captured_at": ago(minutes=5),
        "capture_sha256": uuid.uuid4().hex * 2,
        "purpose": "freeze_account",
        "platform_id": platform["platform_id"],
    }
    async with takedown.client(keys.partner) as client:
        created = await client.post(f"/v1/cases/{case_id}/requests", json=freeze)
        assert created.status_code == 201, created.text
    removal, frozen = await one_takedown(takedown, keys.partner, case_id, "sent", count=2)
    assert (removal["purpose"], frozen["purpose"]) == ("removal", "freeze_account")
    notices = {removal["notice_id"]: "removal", frozen["notice_id"]: "freeze_account"}

    # the platform's list says what each notice asks, and lists one kind when asked
    async with takedown.client(keys.platform) as own:
        listed = (await own.get("/v1/notices?limit=100")).json()["items"]
        mine = {n["notice_id"]: n["purpose"] for n in listed if n["notice_id"] in notices}
        assert mine == notices
        only = (await own.get("/v1/notices?purpose=freeze_account&limit=100")).json()["items"]
        assert frozen["notice_id"] in {n["notice_id"] for n in only}
        assert {n["purpose"] for n in only} == {"freeze_account"}
        bad = await own.get("/v1/notices?purpose=delete_everything")
        assert bad.status_code == 422 and "purpose" in bad.text

    async with intake.client(keys.partner) as client:
        changed = await client.post(f"/v1/cases/{case_id}/consents", json={"takedown": False})
        assert changed.status_code == 200, changed.text

    async def settled() -> list[dict[str, Any]]:
        items = await takedowns(takedown, keys.partner, case_id)
        assert [(i["purpose"], i["status"]) for i in items] == [
            ("removal", "cancelled"),
            ("freeze_account", "sent"),  # protects her and keeps evidence: it stays
        ], items
        return items

    removal, frozen = await eventually(settled, what="the removal cancelled")
    (cancelled,) = [e for e in removal["timeline"] if e["type"] == "TakedownCancelled"]
    assert cancelled["reason"] == "consent_withdrawn"

    def told() -> dict[str, Any]:
        found = [a for a in receiver.accepted if a["id"] == f"{removal['notice_id']}:cancel"]
        assert len(found) == 1, receiver.accepted
        return found[0]

    cancellation = await eventually(told, what="the platform told of the cancellation")
    assert cancellation["payload"] == {
        "type": "ncii.takedown.cancelled",
        "notice_id": removal["notice_id"],
        "reason": "consent_withdrawn",
    }
    assert not any(a["id"] == f"{frozen['notice_id']}:cancel" for a in receiver.accepted)
    async with takedown.client(keys.platform) as own:
        listed = (await own.get("/v1/notices?limit=100")).json()["items"]
        open_ids = {n["notice_id"] for n in listed}
        assert frozen["notice_id"] in open_ids and removal["notice_id"] not in open_ids


async def test_the_victim_sees_in_plain_words_how_many_places_were_reported_removed_pending(
    intake: RunningService, takedown: RunningService, keys: Keys, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    name = unique("PicHost")
    await webhook_platform(takedown, keys, receiver, name, api_organisation=keys.platform_org)
    case_id = await open_case(intake, keys.partner, "adult")
    access = VICTIM_ACCESS[case_id]

    async def status() -> dict[str, Any]:
        async with intake.client() as anonymous:
            body = {"reference": access["reference"], "pin": access["pin"]}
            answer = await anonymous.post("/v1/victim/status", json=body)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    await caught_up(intake)
    assert (await status())["takedowns"]["reported"] == 0
    for _ in range(2):
        await report_location(intake, keys.partner, case_id, name)
    items = await one_takedown(takedown, keys.partner, case_id, "opened", count=2)
    for item in items:
        assert (
            await record_evidence(takedown, keys.partner, case_id, item["takedown_id"])
        ).is_success
    await eventually(lambda: len(receiver.accepted) == 2, what="both notices delivered")
    async with takedown.client(keys.platform) as own:
        removed = await own.post(
            f"/v1/notices/{receiver.accepted[0]['id']}/removed",
            json={"removed_at": ago(minutes=1)},
        )
        assert removed.status_code == 200, removed.text

    async def counted() -> dict[str, Any]:
        seen = await status()
        assert seen["takedowns"]["removed"] == 1, seen
        return seen

    seen = await eventually(counted, what="the removal counted for the victim")
    counts = seen["takedowns"]
    assert (counts["reported"], counts["removed"], counts["pending"]) == (2, 1, 1)
    assert counts["summary"] == (
        "2 places were reported to platforms: 1 removed, 1 still waiting for the platform."
    )
    text = json.dumps(seen)
    assert name.lower() not in text.lower() and "http" not in text  # no platform, no URL


async def test_a_notice_nobody_accepts_is_a_dead_letter_staff_see_and_retry(
    intake: RunningService, takedown: RunningService, keys: Keys, receiver: Receiver
) -> None:
    receiver.fail_first = 10_000  # the platform's receiver is down
    name = unique("DownHost")
    await webhook_platform(takedown, keys, receiver, name)
    case_id = await open_case(intake, keys.partner, "minor")
    await report_location(intake, keys.partner, case_id, name)
    (item,) = await one_takedown(takedown, keys.partner, case_id, "opened")
    assert (await record_evidence(takedown, keys.partner, case_id, item["takedown_id"])).is_success
    (item,) = await one_takedown(takedown, keys.partner, case_id, "requested")

    async with takedown.client(keys.caseworker) as staff:

        async def dead() -> dict[str, Any]:
            items = (await staff.get("/v1/deliveries", params={"status": "dead"})).json()["items"]
            found = [d for d in items if d["notice_id"] == item["notice_id"]]
            assert found, "not a dead letter yet"
            return dict(found[0])

        letter = await eventually(dead, what="the delivery given up")
        assert letter["attempts"] == 8 and letter["last_error"] == "http_503"
        assert len(receiver.attempts) == 8
        async with takedown.client(keys.partner) as partner:
            assert (await partner.get("/v1/deliveries")).status_code == 403
        receiver.fail_first = 0  # the receiver is back
        retried = await staff.post(f"/v1/deliveries/{letter['delivery_id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] in ("pending", "delivered")
    (item,) = await one_takedown(takedown, keys.partner, case_id, "sent")
    assert [a["id"] for a in receiver.accepted] == [item["notice_id"]]


# -- sightings and re-uploads ---------------------------------------------------------------------


async def _sighting(store: EventStore, case_id: str, platform_org: str, entry_key: str) -> None:
    event = MatchFound(
        match_id=unique("m"),
        sighting_id=unique("s"),
        bank=unique("bank"),
        entry_key=entry_key,
        algorithm="pdq",
        distance=3,
        platform=platform_org,
        seen_at=ago(minutes=2),
        url=f"https://{platform_org}.example/v/{uuid.uuid4().hex[:6]}",
    )
    actor = Actor(organisation=platform_org, principal="p", role="platform")
    cause = Cause(actor, "c", "c")
    await store.append(
        AggregateRef(case_id, "match", str(uuid.uuid4())), [event], expected=NEW, cause=cause
    )


async def test_a_re_upload_sighting_opens_a_takedown_linked_to_the_one_that_removed_it(
    intake: RunningService, takedown: RunningService, keys: Keys, store: EventStore
) -> None:
    await register(
        takedown,
        keys.caseworker,
        platform_body(unique("VideoSite"), api_organisation=keys.other_org, regimes=["uk"]),
    )
    case_id = await open_case(intake, keys.partner, "minor")
    await caught_up(takedown)
    entry = str(uuid.uuid4())
    await _sighting(store, case_id, keys.other_org, entry)
    (first,) = await one_takedown(takedown, keys.caseworker, case_id, "opened")
    assert first["source"] == "match" and first["previous_takedown_id"] is None
    assert (
        await record_evidence(takedown, keys.caseworker, case_id, first["takedown_id"])
    ).is_success
    (first,) = await one_takedown(takedown, keys.caseworker, case_id, "requested")
    async with takedown.client(keys.caseworker) as client:
        sent = await client.post(
            f"/v1/cases/{case_id}/takedowns/{first['takedown_id']}/notice-sent",
            json={"sent_at": ago(minutes=1)},
        )
        assert sent.status_code == 200 and sent.json()["status"] == "sent", sent.text
    assert first["deadline"]["regime"] == "uk" and first["deadline"]["hours"] == 48
    async with takedown.client(keys.other_platform) as platform:
        removed = await platform.post(
            f"/v1/notices/{first['notice_id']}/removed", json={"removed_at": ago(seconds=30)}
        )
        assert removed.status_code == 200, removed.text
    await one_takedown(takedown, keys.caseworker, case_id, "removed")

    await _sighting(store, case_id, keys.other_org, entry)  # the same content, uploaded again
    items = await one_takedown(takedown, keys.caseworker, case_id, "opened", count=2)
    assert items[1]["previous_takedown_id"] == first["takedown_id"]


# -- bad input: 4xx, nothing written --------------------------------------------------------------


async def test_bad_input_is_a_problem_and_writes_nothing(
    intake: RunningService, takedown: RunningService, keys: Keys
) -> None:
    async with takedown.client(keys.caseworker) as client:
        name = unique("Nowhere")
        for bad in (
            platform_body(name, regimes=["tw", "narnia"]),
            platform_body(name, channel="webhook"),
            platform_body(name, form_url="ftp://nowhere.example/form"),
            platform_body(name, kind="newspaper"),
        ):
            response = await client.post("/v1/platforms", json=bad)
            assert response.status_code == 422, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
        listed = (await client.get("/v1/platforms")).json()["items"]
        assert name not in {p["name"] for p in listed}

    case_id = await open_case(intake, keys.partner, "adult")
    await report_location(intake, keys.partner, case_id, "an unregistered site")
    (item,) = await one_takedown(takedown, keys.partner, case_id, "opened")
    path = f"/v1/cases/{case_id}/takedowns/{item['takedown_id']}"
    async with takedown.client(keys.partner) as client:
        unknown = await client.post(f"{path}/platform", json={"platform_id": str(uuid.uuid4())})
        assert unknown.status_code == 422 and unknown.json()["type"].endswith("unknown-platform")
        not_web = await record_evidence(takedown, keys.partner, case_id, item["takedown_id"],
                                        url="ftp://x.example/a")  # fmt: skip
        assert not_web.status_code == 422
        assert not_web.json()["errors"][0]["field"] == "url"
        bad_ip = await record_evidence(
            takedown, keys.partner, case_id, item["takedown_id"], offender_ip="999.1.1.1"
        )
        assert bad_ip.status_code == 422
        escalate = await client.post(f"{path}/escalate", json={"authority": "iWIN"})
        assert escalate.status_code == 409  # only an overdue notice is escalated
        other_case = await client.get(f"/v1/cases/{uuid.uuid4()}/takedowns")
        assert other_case.status_code == 404
    assert types((await takedowns(takedown, keys.partner, case_id))[0]) == ["TakedownOpened"]
    async with takedown.client(keys.platform) as platform:
        assert (await platform.get(f"/v1/cases/{case_id}/takedowns")).status_code == 403


# -- clocks that survive restarts -----------------------------------------------------------------


async def test_a_deadline_that_passes_while_the_service_is_down_is_marked_overdue_at_start(
    nats_server: SuiteNats,
    tmp_path: Path,
    master_key_file: Path,
    intake: RunningService,
    takedown: RunningService,
    keys: Keys,
    receiver: Receiver,
) -> None:
    receiver.fail_first = 1
    own = start_service("takedown", nats_server, tmp_path, master_key_file, extra_env=FAST)
    try:
        authority = await register(
            own,
            keys.caseworker,
            platform_body(
                unique("Competent Authority"),
                kind="authority",
                jurisdiction="TW",
                channel="webhook",
                webhook_url=receiver.url,
            ),
        )
        receiver.secret = authority["webhook_secret"]
        name = unique("Forum")
        platform = await register(own, keys.caseworker, platform_body(name))
        assert platform["channel"] == "web_form"
        case_id = await open_case(intake, keys.partner, "minor")
        await report_location(intake, keys.partner, case_id, name)
        (item,) = await one_takedown(own, keys.partner, case_id, "opened")
        assert (await record_evidence(own, keys.partner, case_id, item["takedown_id"])).is_success
        (item,) = await one_takedown(own, keys.partner, case_id, "requested")
        async with own.client(keys.partner) as client:
            sent = await client.post(
                f"/v1/cases/{case_id}/takedowns/{item['takedown_id']}/notice-sent",
                json={"sent_at": ago(minutes=1)},
            )
            assert sent.status_code == 200, sent.text
        (item,) = await one_takedown(own, keys.partner, case_id, "sent")
        assert item["deadline"]["hours"] == 24  # a minor's images, Taiwan
    finally:
        stop_service(own)
    # the other replica is not a witness here: stop it sweeping this case by time alone
    later = {**FAST, "NCII_TAKEDOWN_CLOCK_OFFSET_SECONDS": str(25 * 3600)}
    restarted = start_service("takedown", nats_server, tmp_path, master_key_file, extra_env=later)
    try:
        (item,) = await one_takedown(restarted, keys.partner, case_id, "overdue")
        overdue = item["timeline"][-1]
        assert overdue["type"] == "TakedownOverdue" and overdue["legal"] is True
        path = f"/v1/cases/{case_id}/takedowns/{item['takedown_id']}"
        async with restarted.client(keys.caseworker) as client:
            assert (await client.get(f"{path}/escalation")).status_code == 404  # not yet
            # Taiwan's deadline is the law's: escalation is due the moment it passed
            due = (await client.get("/v1/escalations/due")).json()["items"]
            (listed,) = [d for d in due if d["takedown_id"] == item["takedown_id"]]
            assert (
                listed["escalation_due_at"] == listed["deadline_at"] == item["deadline"]["due_at"]
            )
            assert "art. 47" in listed["authority"]
            escalated = await client.post(f"{path}/escalate", json={"authority": "local authority"})
            assert escalated.status_code == 200 and escalated.json()["status"] == "escalated"
            record = (await client.get(f"{path}/escalation")).json()
        # the record carries the timeline as proof: each event, its time and its hash in the log
        timeline = [(e["type"], e["event_id"], e["hash"]) for e in record["timeline"]]
        assert timeline == [(e["type"], e["event_id"], e["hash"]) for e in item["timeline"]]
        assert [t for t, _, _ in timeline][-2:] == ["NoticeSent", "TakedownOverdue"]
        assert record["verified"] is True and record["authority"] == "local authority"
        assert record["due_at"] == item["deadline"]["due_at"]

        # the escalation reaches the authority registered for Taiwan's regime, signed, after a
        # refusal, with the notice as sent and the timeline as the log holds it
        def arrived() -> dict[str, Any]:
            assert receiver.accepted, receiver.attempts
            return receiver.accepted[0]

        sent = await eventually(arrived, what="the escalation delivered to the authority")
        # accepted = its signature verified; the replica whose clock this test moved 25 h ahead
        # signs timestamps the receiver refuses (Standard Webhooks allows 5 minutes), so the
        # copy taken is the other replica's, under the same id
        assert len(receiver.attempts) >= 2
        assert {a["webhook-id"] for a in receiver.attempts} == {f"{item['notice_id']}:escalation"}
        document = sent["payload"]
        assert document["type"] == "ncii.takedown.escalation" and document["regime"] == "tw"
        assert document["notice"]["notice_id"] == item["notice_id"]
        assert document["notice"]["urls"] and document["platform"] == name
        assert document["deadline_at"] == item["deadline"]["due_at"]
        escalation = record["escalation_event"]
        assert [(e["type"], e["event_id"], e["hash"]) for e in document["timeline"]] == [
            *timeline,
            ("TakedownEscalated", escalation["event_id"], escalation["hash"]),
        ]
        assert "Sparrow" not in str(document)

        async def recorded() -> dict[str, Any]:
            (found,) = await takedowns(restarted, keys.partner, case_id)
            assert types(found)[-1] == "EscalationSent", types(found)
            return found

        found = await eventually(recorded, what="the escalation recorded as sent")
        assert found["timeline"][-1]["type"] == "EscalationSent"
    finally:
        stop_service(restarted)


async def test_evidence_is_kept_180_days_after_its_takedown_ends_then_erased_across_a_restart(
    nats_server: SuiteNats,
    tmp_path: Path,
    master_key_file: Path,
    intake: RunningService,
    keys: Keys,
    receiver: Receiver,
    store: EventStore,
    nc: NATS,
) -> None:
    receiver.fail_first = 0
    own = start_service("takedown", nats_server, tmp_path, master_key_file, extra_env=FAST)
    try:
        name = unique("KeepHost")
        await webhook_platform(own, keys, receiver, name, api_organisation=keys.platform_org)
        case_id = await open_case(intake, keys.partner, "minor")
        await report_location(intake, keys.partner, case_id, name)
        await report_location(intake, keys.partner, case_id, name)
        ended, running = await one_takedown(own, keys.partner, case_id, "opened", count=2)
        for item in (ended, running):
            url = f"https://{name.lower()}.example/p/{item['takedown_id']}"
            answer = await record_evidence(own, keys.partner, case_id, item["takedown_id"], url=url)
            assert answer.is_success, answer.text
        await one_takedown(own, keys.partner, case_id, "sent", count=2)
        ended, running = await takedowns(own, keys.partner, case_id)
        async with own.client(keys.platform) as platform_client:
            removed = await platform_client.post(
                f"/v1/notices/{ended['notice_id']}/removed", json={"removed_at": ago(minutes=1)}
            )
            assert removed.status_code == 200, removed.text

        async def scheduled() -> dict[str, Any]:
            (item,) = [
                i
                for i in await takedowns(own, keys.partner, case_id)
                if i["takedown_id"] == ended["takedown_id"]
            ]
            assert item["evidence_erase_at"] is not None, item
            return item

        ended = await eventually(scheduled, what="the evidence's retention scheduled")
        removal = next(e for e in ended["timeline"] if e["type"] == "ContentRemoved")
        schedule = ended["timeline"][-1]
        assert schedule["type"] == "EvidenceRetentionScheduled" and schedule["days"] == 180
        assert schedule["ended_at"] == removal["at"]
        erase_at = datetime.fromisoformat(schedule["erase_at"].replace("Z", "+00:00"))
        assert erase_at - datetime.fromisoformat(removal["at"].replace("Z", "+00:00")) == (
            timedelta(days=180)
        )
        async with own.client(keys.caseworker) as staff:
            now_due = (await staff.get("/v1/retention/due")).json()["items"]
            soon = (await staff.get("/v1/retention/due?within_days=181")).json()["items"]
        assert ended["takedown_id"] not in {i["takedown_id"] for i in now_due}  # kept
        (listed,) = [i for i in soon if i["takedown_id"] == ended["takedown_id"]]
        assert listed["erase_at"] == schedule["erase_at"] and listed["status"] == "removed"
        # and staff see it from the command line
        from ncii_cli.main import app as cli
        from typer.testing import CliRunner

        env = {"NCII_API_KEY": keys.caseworker, "NCII_TAKEDOWN_URL": own.url}
        args = ["takedown", "retention-due", "--within-days", "181", "--json"]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert ended["takedown_id"] in {i["takedown_id"] for i in json.loads(result.output)}
        evidence = next(e for e in ended["timeline"] if e["type"] == "EvidencePreserved")
        assert evidence["url"].startswith(f"https://{name.lower()}.example/p/")
        assert evidence["offender_account"] == "@uploader"
    finally:
        stop_service(own)

    # 181 days later, the service started again: it erases what fell due while it was down (and
    # so does it for every takedown of this log that ended: no other test reads them afterwards)
    later = {**FAST, "NCII_TAKEDOWN_CLOCK_OFFSET_SECONDS": str(181 * 86400)}
    restarted = start_service("takedown", nats_server, tmp_path, master_key_file, extra_env=later)
    try:

        async def erased() -> list[dict[str, Any]]:
            items = await takedowns(restarted, keys.partner, case_id)
            done = next(i for i in items if i["takedown_id"] == ended["takedown_id"])
            assert done["evidence_erased_at"] is not None, done
            return items

        items = await eventually(erased, what="the evidence erased when due")
        done = next(i for i in items if i["takedown_id"] == ended["takedown_id"])
        still = next(i for i in items if i["takedown_id"] == running["takedown_id"])
        (record,) = [e for e in done["timeline"] if e["type"] == "EvidencePreserved"]
        assert record["url"] is None and record["offender_account"] is None
        assert record["offender_ip"] is None and record["preserved_by"] is None
        assert record["capture_sha256"] == evidence["capture_sha256"]  # the proof stays
        erasure = done["timeline"][-1]
        assert erasure["type"] == "EvidenceErased" and erasure["erased"] == [record["event_id"]]
        # the takedown still running keeps its evidence: the case's own key was not touched
        (kept,) = [e for e in still["timeline"] if e["type"] == "EvidencePreserved"]
        assert kept["url"].startswith(f"https://{name.lower()}.example/p/")
        async with restarted.client(keys.caseworker) as staff:
            due = (await staff.get("/v1/retention/due")).json()["items"]
        assert ended["takedown_id"] not in {i["takedown_id"] for i in due}
    finally:
        stop_service(restarted)
    # the log's copy: opened with the case's key, it is only the sealed token, and the record's
    # own key is gone from the bucket
    (stored,) = [
        e
        for e in await store.read_case(case_id, decrypt=True)
        if e.envelope.event_id == record["event_id"]
    ]
    assert isinstance(stored.event, EvidencePreserved) and stored.event.sealed
    assert stored.event.url is not None and name.lower() not in stored.event.url
    bucket = await nc.jetstream().key_value(KEYS_BUCKET)
    with pytest.raises((KeyNotFoundError, KeyDeletedError)):
        await bucket.get(evidence_keys.key_name(case_id, record["event_id"]))
    assert (await bucket.get(evidence_keys.key_name(case_id, kept["event_id"]))).value


# -- the command line -------------------------------------------------------------------------


async def test_ncii_platforms_registers_through_the_staff_api_and_lists_them(
    takedown: RunningService, keys: Keys
) -> None:
    from ncii_cli.main import app
    from typer.testing import CliRunner

    name = unique("CliHost")
    env = {"NCII_API_KEY": keys.caseworker, "NCII_TAKEDOWN_URL": takedown.url}
    args = ["platforms", "register", name, "--kind", "forum", "--jurisdiction", "GB"]
    args += ["--regime", "uk", "--channel", "webhook", "--webhook-url", "http://127.0.0.1:9/h"]
    created = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert created.exit_code == 0, created.output
    platform_id, secret_line = created.output.strip().splitlines()
    assert "whsec_" in secret_line
    bad = [*args[:2], unique("Bad"), *args[3:7], "--regime", "narnia", *args[9:]]
    refused = await asyncio.to_thread(CliRunner().invoke, app, bad, env=env)
    assert refused.exit_code == 2 and "regimes" in refused.output

    async def listed() -> bool:
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["platforms", "list", "--json"], env=env
        )
        return any(p["platform_id"] == platform_id for p in json.loads(result.output))

    await eventually(listed, what="the platform in the registry")


# -- the victim's evidence checklist --------------------------------------------------------------


async def test_the_evidence_checklist_is_served_with_the_case_in_both_languages_to_its_own_org(
    intake: RunningService, takedown: RunningService, keys: Keys, make_key: MakeKey
) -> None:
    case_id = await open_case(intake, keys.partner, "adult")
    await caught_up(takedown)
    path = f"/v1/cases/{case_id}/evidence-checklist"
    async with takedown.client(keys.partner) as client:
        en = (await client.get(path)).json()
        zh = (await client.get(path, params={"lang": "zh-TW"})).json()
        unknown = await client.get(path, params={"lang": "fr"})
    assert en["version"] == zh["version"] == 1 and en["case_id"] == case_id
    assert [i["id"] for i in en["items"]] == [i["id"] for i in zh["items"]]
    assert en["items"][0]["id"] == "delete_nothing" and "Delete nothing" in en["items"][0]["text"]
    assert "不要刪除" in zh["items"][0]["text"]
    assert unknown.status_code == 422
    stranger = await make_key(unique("ngo"), "partner")
    await caught_up(takedown)  # the key is usable once takedown projected it
    async with takedown.client(stranger) as client:
        assert (await client.get(path)).status_code == 404  # another organisation's case
