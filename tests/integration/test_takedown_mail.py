"""E-mail notices against a real local SMTP server (``aiosmtpd`` on a free port): STARTTLS when
offered, never a login in clear, the notice id on the message, nothing of the victim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from ncii_takedown import mail

from tests.support.mailbox import PASSWORD, USER, MailServer, start_mail_server

NOTICE = {
    "type": "ncii.takedown.notice",
    "notice_id": "0199a0de-0000-7000-8000-000000000001",
    "site": "PhotoHost",
    "urls": ["https://photohost.example/p/abc"],
    "offender": {"account": "@uploader", "ip_address": None},
    "person": "adult",
    "statement": "The person depicted did not consent.",
    "good_faith_statement": "In good faith.",
    "identical_copies": "remove identical copies too",
    "preserve_days": 180,
    "legal_basis": ["Taiwan"],
    "deadline": {"regime": "tw", "hours": 72, "legal": True, "due_at": "2026-12-03T00:00:00Z"},
    "re_upload_of": False,
    "notifier": {"organisation": "centre", "contact_name": "desk", "email": "d@x", "phone": "1"},
    "sent_at": "2026-11-30T00:00:00Z",
}


def settings(server: MailServer, **changes: object) -> mail.SmtpSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "sender": "takedown@centre.example",
        "user": None,
        "password": None,
        "starttls": "opportunistic",
        "ca_file": str(server.ca_file),
        "timeout_s": 10.0,
    }
    values.update(changes)
    return mail.SmtpSettings(**values)  # type: ignore[arg-type]


def notice_mail(delivery_id: str = NOTICE["notice_id"]) -> object:  # type: ignore[assignment]
    return mail.message(
        NOTICE,
        sender="takedown@centre.example",
        recipient="abuse@photohost.example",
        delivery_id=str(delivery_id),
        sent_at="2026-11-30T00:00:00Z",
    )


@pytest.fixture
def tls_login_server(tmp_path: Path) -> Iterator[MailServer]:
    server = start_mail_server(tmp_path, tls=True, require_login=True)
    yield server
    server.stop()


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[MailServer]:
    server = start_mail_server(tmp_path, tls=False)
    yield server
    server.stop()


def test_an_email_notice_goes_over_starttls_with_a_login_and_carries_the_notice_and_its_id(
    tls_login_server: MailServer,
) -> None:
    msg = notice_mail()
    mail.send(settings(tls_login_server, user=USER, password=PASSWORD), msg)  # type: ignore[arg-type]

    (got,) = tls_login_server.mailbox.received
    assert got.secure and got.login == USER
    assert got.recipients == ["abuse@photohost.example"]
    parsed = got.message
    assert parsed["X-NCII-Notice-Id"] == NOTICE["notice_id"]
    assert parsed["Message-ID"] == f"<{NOTICE['notice_id']}@centre.example>"
    text = parsed.get_body(("plain",))
    assert text is not None and "https://photohost.example/p/abc" in text.get_content()
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "notice.json"
    assert json.loads(attachment.get_content()) == NOTICE


def test_a_mail_server_without_starttls_is_refused_when_tls_is_required(
    plain_server: MailServer,
) -> None:
    with pytest.raises(mail.SmtpRefusedError, match="starttls_not_offered"):
        mail.send(settings(plain_server, starttls="required"), notice_mail())  # type: ignore[arg-type]
    assert plain_server.mailbox.attempts == 0


def test_credentials_are_never_sent_to_a_mail_server_in_clear(plain_server: MailServer) -> None:
    with pytest.raises(mail.SmtpRefusedError, match="auth_without_tls"):
        mail.send(settings(plain_server, user=USER, password=PASSWORD), notice_mail())  # type: ignore[arg-type]
    assert plain_server.mailbox.attempts == 0


def test_a_cancellation_mail_names_the_notice_it_withdraws() -> None:
    cancel = {"type": "ncii.takedown.cancelled", "notice_id": "n-1", "reason": "case_withdrawn"}
    msg = mail.message(
        cancel,
        sender="t@c.example",
        recipient="a@p.example",
        delivery_id="n-1:cancel",
        sent_at="2026-11-30T00:00:00Z",
    )
    assert msg["Subject"] == "Notice withdrawn: n-1"
    assert msg["Message-ID"] == "<n-1.cancel@c.example>"


def test_an_escalation_mail_says_what_the_platform_failed_and_lists_the_timeline() -> None:
    document = {
        "type": "ncii.takedown.escalation",
        "notice_id": NOTICE["notice_id"],
        "escalation_id": "e2",
        "authority": "Ministry",
        "platform": NOTICE["site"],
        "regime": "tw",
        "legal_basis": "Taiwan: art. 8",
        "deadline_at": "2026-11-30T10:00:00.000000Z",
        "escalation_due_at": "2026-11-30T10:00:00.000000Z",
        "escalated_at": "2026-11-30T11:00:00.000000Z",
        "notice": NOTICE,
        "timeline": [
            {"event_id": "e1", "type": "NoticeSent", "occurred_at": "t1", "hash": "a" * 64},
            {"event_id": "e2", "type": "TakedownEscalated", "occurred_at": "t2", "hash": "b" * 64},
        ],
        "notifier": NOTICE["notifier"],
    }
    msg = mail.message(
        document,
        sender="desk@centre.example",
        recipient="authority@gov.example",
        delivery_id=f"{NOTICE['notice_id']}:escalation",
        sent_at="2026-11-30T11:00:00.000000Z",
    )
    assert msg["Subject"].startswith("Escalation: takedown notice ")
    assert msg["Message-ID"] == f"<{NOTICE['notice_id']}.escalation@centre.example>"
    text = msg.get_body(("plain",))
    assert text is not None
    content = text.get_content()
    assert "did not act on the notice by its deadline" in content
    assert "b" * 64 in content and NOTICE["urls"][0] in content
    (attachment,) = list(msg.iter_attachments())
    assert json.loads(attachment.get_content())["timeline"][-1]["event_id"] == "e2"
