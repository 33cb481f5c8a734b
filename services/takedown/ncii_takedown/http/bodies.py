"""Request bodies: unknown fields are refused, every field says what to fix."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from ncii_contracts.takedown import (
    CaptureMethod,
    Jurisdiction,
    NoticeChannel,
    PlatformKind,
    RefusalReason,
    Regime,
)
from ncii_events.http.fields import Hex64, PastTime, RequestBody, WebAddress
from pydantic import AfterValidator, Field, StringConstraints, model_validator

Text100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address, e.g. 203.0.113.7") from None


IpAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=45), AfterValidator(_ip_address)
]


class PlatformFields(RequestBody):
    """A platform's settings (register and update take the same)."""

    name: Text100
    kind: PlatformKind
    jurisdiction: Jurisdiction = Field(description="ISO 3166-1 alpha-2, e.g. TW, US, GB; EU")
    regimes: list[Regime] = Field(min_length=1, max_length=4)
    channel: NoticeChannel
    webhook_url: WebAddress | None = None
    email: Email | None = None
    form_url: WebAddress | None = None
    api_organisation: Text100 | None = Field(
        default=None, description="the organisation of the platform's API keys (role platform)"
    )
    takes_hash_lists: bool = False
    trusted_flagger: bool = False

    @model_validator(mode="after")
    def _channel_has_its_address(self) -> PlatformFields:
        need = {"webhook": "webhook_url", "email": "email", "web_form": "form_url"}[self.channel]
        if getattr(self, need) is None:
            raise ValueError(f"a platform receiving notices by {self.channel} needs {need}")
        if self.channel == "webhook" and not str(self.webhook_url).lower().startswith("https://"):
            # plain http only to this machine (a receiver under test or a local relay)
            host = str(self.webhook_url).split("/")[2].split(":")[0]
            if host not in ("127.0.0.1", "localhost", "[::1]"):
                raise ValueError("webhook_url must use https:// (http only for 127.0.0.1)")
        if len(set(self.regimes)) != len(self.regimes):
            raise ValueError("regimes must not repeat")
        return self

    def fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class RecordEvidence(RequestBody):
    captured_at: PastTime
    capture_method: CaptureMethod
    capture_sha256: Hex64 = Field(description="SHA-256 of the preserved capture, 64 hex")
    preserved_by: Text200 = Field(description="who preserved it (kept encrypted)")
    url: WebAddress | None = Field(
        default=None, description="the address captured, when not the reported one"
    )
    offender_account: Text200 | None = None
    offender_ip: IpAddress | None = None


class OpenRequest(RecordEvidence):
    """A freeze or preserve notice: its platform and its evidence in one command."""

    purpose: Literal["freeze_account", "preserve_data"]
    platform_id: Annotated[str, StringConstraints(min_length=1, max_length=36)]

    @model_validator(mode="after")
    def _names_what_to_act_on(self) -> OpenRequest:
        if self.purpose == "freeze_account" and not self.offender_account:
            raise ValueError("a freeze notice needs offender_account (the account to freeze)")
        if self.purpose == "preserve_data" and not (self.url or self.offender_account):
            raise ValueError("a preserve notice needs url or offender_account (what to keep)")
        return self


class MarkDone(RequestBody):
    done_at: PastTime


class AssignPlatform(RequestBody):
    platform_id: Annotated[str, StringConstraints(min_length=1, max_length=36)]


class ConfirmSent(RequestBody):
    sent_at: PastTime


class Escalate(RequestBody):
    authority: Text200


class Acknowledge(RequestBody):
    platform_reference: Text100 | None = None


class MarkRemoved(RequestBody):
    removed_at: PastTime


class Refuse(RequestBody):
    reason: RefusalReason
