"""E-mail notices over SMTP (stdlib ``smtplib``, run in a worker thread so the event loop never
waits on a mail server). STARTTLS whenever the server offers it; ``starttls="required"`` refuses
to send in clear, ``"never"`` is for a relay on the same host only. Credentials are sent only
over TLS.

The message is the notice itself: a short plain-text rendering for the person who reads the
platform's abuse mailbox, and the same JSON document a webhook receives, attached as
``notice.json``. Its ``Message-ID`` and the ``X-NCII-Notice-Id`` header carry the notice id, so
a copy sent twice (a retry after a lost answer) is recognisable as the same notice. Nothing of
the victim is in it: the document is built from the notice's arguments only.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

from ncii_takedown import domain

StartTls = Literal["opportunistic", "required", "never"]


class SmtpRefusedError(Exception):
    """A mail server we would not (or could not) send through: the reason is a short code."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    user: str | None
    password: str | None
    starttls: StartTls
    ca_file: str | None
    timeout_s: float


def _escalation_lines(document: dict[str, Any]) -> list[str]:
    notice = document["notice"]
    return [
        f"Escalation of takedown notice {document['notice_id']} to {document['authority']}.",
        "",
        f"{document['platform']} did not act on the notice by its deadline "
        f"({document['deadline_at']}, {document['regime']}: {document['legal_basis']}).",
        f"Escalated at {document['escalated_at']}.",
        "",
        "The notice as the platform received it:",
        *[f"  {line}" for line in _lines(notice)],
        "",
        "Timeline (each event's id and SHA-256 in the notifier's tamper-evident log):",
        *[
            f"  {e['occurred_at']}  {e['type']}  {e['event_id']}  {e['hash']}"
            for e in document["timeline"]
        ],
        "",
        "The attached notice.json holds this escalation in machine-readable form.",
    ]


def _lines(document: dict[str, Any]) -> list[str]:
    if document.get("type") == "ncii.takedown.escalation":
        return _escalation_lines(document)
    if document.get("type") == "ncii.takedown.cancelled":
        return [
            f"Notice {document['notice_id']} is withdrawn ({document['reason']}).",
            "No further action is asked of you for this notice.",
        ]
    deadline = document["deadline"]
    offender = document["offender"]
    lines = [
        f"Takedown notice {document['notice_id']} for {document['site']}.",
        "",
        document.get("asks") or "Please remove, or disable access to, the following:",
        *[f"  {url}" for url in document["urls"]],
        "",
        f"Person depicted: {document['person']}.",
        document["statement"],
        document["good_faith_statement"],
        document["identical_copies"] + ".",
        f"Please preserve the page and account data for {document['preserve_days']} days.",
    ]
    if offender.get("account") or offender.get("ip_address"):
        lines.append(
            "Uploader: "
            + ", ".join(v for v in (offender.get("account"), offender.get("ip_address")) if v)
        )
    lines += [
        "",
        "Legal basis: " + "; ".join(document["legal_basis"]),
        f"Act by: {deadline['due_at']}"
        + (f" ({deadline['hours']} h)" if deadline.get("hours") else ""),
        "",
        f"From: {document['notifier']['organisation']}, {document['notifier']['contact_name']}",
        f"      {document['notifier']['email']}, {document['notifier']['phone']}",
        "",
        f"Please quote {document['notice_id']} in your answer. The attached notice.json holds",
        "this notice in machine-readable form.",
    ]
    return lines


def message(
    document: dict[str, Any], *, sender: str, recipient: str, delivery_id: str, sent_at: str
) -> EmailMessage:
    """The e-mail for a notice, a cancellation or an escalation document."""
    msg = EmailMessage()
    notice_id = str(document["notice_id"])
    kind = document.get("type")
    if kind == "ncii.takedown.cancelled":
        msg["Subject"] = f"Notice withdrawn: {notice_id}"
    elif kind == "ncii.takedown.escalation":
        msg["Subject"] = f"Escalation: takedown notice {notice_id} not acted on in time"
    else:
        msg["Subject"] = f"Takedown notice {notice_id}"
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(domain.parse_time(sent_at))
    # one Message-ID per delivery (the notice, or its cancellation), the same on every retry
    domain_part = sender.rpartition("@")[2] or "ncii.invalid"
    msg["Message-ID"] = f"<{delivery_id.replace(':', '.')}@{domain_part}>"
    msg["X-NCII-Notice-Id"] = notice_id
    msg.set_content("\n".join(_lines(document)) + "\n")
    data = json.dumps(document, ensure_ascii=False, indent=2).encode()
    msg.add_attachment(data, maintype="application", subtype="json", filename="notice.json")
    return msg


def send(settings: SmtpSettings, msg: EmailMessage) -> None:
    """Send ``msg`` (blocking: call it in a thread). Raises ``smtplib.SMTPException``,
    ``OSError`` or ``SmtpRefusedError``."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
        smtp.ehlo()
        secure = False
        if settings.starttls != "never" and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
            secure = True
        elif settings.starttls == "required":
            raise SmtpRefusedError("starttls_not_offered")
        if settings.user:
            if not secure:
                raise SmtpRefusedError("auth_without_tls")
            smtp.login(settings.user, settings.password or "")
        smtp.send_message(msg)
