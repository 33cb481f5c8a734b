"""Takedown's events: the platforms that receive notices (reference stream), and each takedown of
a case from its opening to its end (cases stream), so that the timeline is the proof a platform
was told, when, and what it answered (Child and Youth Sexual Exploitation Prevention Act art. 8
and 47).

Streams and aggregates:

* ``nciiref.platform.<platform_id>.<Type>``: PlatformRegistered, PlatformUpdated (all settings,
  a later event replaces an earlier one).
* ``ncii.<case_id>.takedown.<takedown_id>.<Type>``: one takedown per reported location and per
  sighting (``MatchFound``) of a case's hashes. A takedown sends at most one notice; its id
  (``notice_id``) is what the platform sees, de-duplicates on and answers to.

Personal fields (URLs, the offender's account and address, who preserved the evidence) are
encrypted with the case's key and read as erased once the case is erased. Every other free text
is an enumeration or a bounded reference, so nothing personal can slip into clear text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ncii_contracts.base import PERSONAL, DomainEvent
from ncii_contracts.streams import REFERENCE

PlatformKind = Literal[
    "social",
    "video",
    "forum",
    "dating",
    "cloud_or_image_host",
    "messaging",
    "content_farm",
    "authority",
]
"""``authority``: not a platform but the authority an overdue notice is escalated to under the
regimes it lists (registered like a platform: its channel, its webhook secret; decision 0044)."""
NoticeChannel = Literal["webhook", "email", "web_form"]
"""How a platform receives notices: a signed webhook (Standard Webhooks), an e-mail, or a web
form that a case worker fills in and confirms as sent."""
Regime = Literal["tw", "us_take_it_down", "uk", "eu_dsa"]
"""A legal regime a platform answers to: Taiwan (24 h for a minor's images, 72 h for an
adult's), the US TAKE IT DOWN Act (48 h), the UK (48 h), the EU Digital Services Act (without
undue delay; trusted flaggers first). Their hours are data in ``ncii_takedown.domain``."""
TakedownSource = Literal["location", "match", "staff"]
"""What opened a takedown: a reported location, a sighting, or staff asking for something else
than a removal (``NoticePurpose``)."""
NoticePurpose = Literal["removal", "freeze_account", "preserve_data"]
"""What a notice asks (art. 8): remove the content; freeze (suspend, not delete) an account
used to threaten the victim; keep the page's and the suspect's data for 180 days."""
CaptureMethod = Literal[
    "screenshot", "screen_recording", "page_archive", "platform_export", "other"
]
RefusalReason = Literal[
    "not_sexual_content",
    "person_not_identifiable",
    "consent_claimed",
    "insufficient_information",
    "not_on_our_service",
    "legal_basis_disputed",
    "other",
]
CancelReason = Literal["case_withdrawn", "case_erased", "consent_withdrawn"]
"""Why a takedown stopped: its case was withdrawn or erased, or the victim withdrew her consent
to takedowns (removals only: freeze and preserve notices stay, decision 0044)."""
Jurisdiction = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 (``EU`` for the Union as a whole)."""
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class PlatformRegistered(DomainEvent, aggregate="platform", streams=(REFERENCE,)):
    """A platform that receives notices. ``api_organisation`` is the organisation of its API
    principals (role ``platform``): the notices it may read and answer, and the platform a
    sighting it reported (``MatchFound.platform``) belongs to."""

    platform_id: str
    name: str = Field(max_length=100)
    kind: PlatformKind
    jurisdiction: Jurisdiction
    regimes: list[Regime] = Field(min_length=1)
    channel: NoticeChannel
    webhook_url: str | None = Field(default=None, max_length=2048)
    email: str | None = Field(default=None, max_length=254)
    form_url: str | None = Field(default=None, max_length=2048)
    api_organisation: str | None = Field(default=None, max_length=100)
    takes_hash_lists: bool = False
    trusted_flagger: bool = False
    """The centre is a trusted flagger with this platform (DSA art. 22): its notices come first."""
    secret_version: int = 1
    """Which webhook signing secret is current (derived from the master key, never stored)."""


class PlatformUpdated(PlatformRegistered, aggregate="platform", streams=(REFERENCE,)):
    """A platform's settings, all of them (a PUT)."""


def _removal(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: every takedown opened before notices had a purpose asked for a removal."""
    return {**payload, "purpose": "removal"}


class TakedownOpened(DomainEvent, aggregate="takedown", version=2, upcasters={1: _removal}):
    """A location to take down: a reported location, or a platform's sighting of the case's
    hashes, or (``source="staff"``) an account to freeze or data to preserve (``purpose``).
    ``platform_id`` is None until the platform is known (a case worker assigns it).
    ``previous_takedown_id`` links a re-upload to the takedown that removed the content."""

    takedown_id: str
    source: TakedownSource
    source_event_id: str
    """The LocationReported or MatchFound it came from: the URL stays there (encrypted)."""
    location_id: str | None = None
    match_id: str | None = None
    entry_key: str | None = None
    platform_id: str | None = None
    previous_takedown_id: str | None = None
    purpose: NoticePurpose = "removal"


class TakedownPlatformAssigned(DomainEvent, aggregate="takedown"):
    """A case worker named the registered platform of a location whose platform was unknown."""

    takedown_id: str
    platform_id: str


def _unsealed(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: evidence recorded before retention was sealed under the case's key alone."""
    return {**payload, "sealed": False}


class EvidencePreserved(DomainEvent, aggregate="takedown", version=2, upcasters={1: _unsealed}):
    """The location's evidence record: no notice leaves before it. The capture itself stays
    with the organisation; only its SHA-256 is here ("delete nothing, evidence first").

    ``sealed`` (v2): each personal value is first encrypted with the record's own key (kept in
    the case-key bucket as ``<case_id>.evidence.<event id>``), then, as every personal field,
    with the case's key, so that the record's personal fields can be erased 180 days after the
    takedown ends without erasing the case (decision 0032). A reader of the log sees sealed
    tokens; the takedown service opens them while the record's key lives."""

    takedown_id: str
    captured_at: str
    capture_method: CaptureMethod
    capture_sha256: Hex64
    url: Annotated[str | None, PERSONAL] = None
    preserved_by: Annotated[str | None, PERSONAL] = None
    offender_account: Annotated[str | None, PERSONAL] = None
    offender_ip: Annotated[str | None, PERSONAL] = None
    sealed: bool = False


class TakedownRequested(DomainEvent, aggregate="takedown"):
    """The notice is decided: to whom, how, under which regimes, and how many hours the
    platform has once it is told (``deadline_hours``; ``legal`` False where the law sets no
    hours and the centre's own follow-up target applies)."""

    takedown_id: str
    notice_id: str
    platform_id: str
    channel: NoticeChannel
    regimes: list[Regime]
    deadline_regime: Regime
    deadline_hours: int
    legal: bool
    priority: bool = False


class NoticeSent(DomainEvent, aggregate="takedown"):
    """The platform was told: by webhook (its receiver answered 2xx) or by a case worker who
    confirms the web form or e-mail as sent. The deadline runs from ``sent_at``."""

    takedown_id: str
    notice_id: str
    channel: NoticeChannel
    sent_at: str
    deadline_at: str
    attempts: int = 1


class TakedownAcknowledged(DomainEvent, aggregate="takedown"):
    takedown_id: str
    notice_id: str
    acknowledged_at: str
    # the platform's ticket for the victim's content: a pointer into its record of her (F9)
    platform_reference: Annotated[str | None, PERSONAL] = Field(default=None, max_length=100)


class ContentRemoved(DomainEvent, aggregate="takedown"):
    takedown_id: str
    notice_id: str
    removed_at: str


class RequestFulfilled(DomainEvent, aggregate="takedown"):
    """The platform did what a freeze or preserve notice asked (its own outcome: nothing was
    removed)."""

    takedown_id: str
    notice_id: str
    fulfilled_at: str


class TakedownRefused(DomainEvent, aggregate="takedown"):
    takedown_id: str
    notice_id: str
    refused_at: str
    reason: RefusalReason


class TakedownOverdue(DomainEvent, aggregate="takedown"):
    """The deadline passed with the content neither removed nor refused."""

    takedown_id: str
    notice_id: str
    deadline_at: str
    deadline_regime: Regime
    legal: bool
    detected_at: str


TimelineEventType = Literal[
    "TakedownOpened",
    "TakedownPlatformAssigned",
    "EvidencePreserved",
    "TakedownRequested",
    "NoticeSent",
    "TakedownAcknowledged",
    "ContentRemoved",
    "TakedownRefused",
    "TakedownOverdue",
    "TakedownEscalated",
    "TakedownCancelled",
    "RequestFulfilled",
]


class TimelineEntry(BaseModel):
    """One event of a takedown as the authority sees it: what happened when, and the event's
    hash in the log (the proof: an auditor's replay finds the same hash at the same place)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(max_length=64)
    type: TimelineEventType
    occurred_at: str = Field(max_length=40)
    hash: str = Field(max_length=128)


def _no_timeline(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: escalations recorded before the timeline was carried hold none."""
    return {**payload, "timeline": [], "due_at": None}


class TakedownEscalated(DomainEvent, aggregate="takedown", version=2, upcasters={1: _no_timeline}):
    """An overdue notice taken to the authority, with the timeline as proof (art. 47): every
    event of the takedown before this one, its time and its hash in the log."""

    takedown_id: str
    notice_id: str
    escalated_at: str
    # which authority took it, in staff's words: may name the victim's city (F9)
    authority: Annotated[str | None, PERSONAL] = Field(default=None, max_length=200)
    due_at: str | None = None
    """When the regime's rule made escalation due (deadline + its ``escalate_after_hours``)."""
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=500)


def _same(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


class TakedownCancelled(DomainEvent, aggregate="takedown", version=2, upcasters={1: _same}):
    """The case was withdrawn or erased, or (v2) the victim withdrew her consent to takedowns
    (a removal only): the takedown stops (the platform is told if it was)."""

    takedown_id: str
    notice_id: str | None = None
    reason: CancelReason


class EscalationSent(DomainEvent, aggregate="takedown"):
    """The escalation record (with its timeline) reached the authority registered for the
    notice's regime: its webhook receiver answered 2xx, or its mail server accepted it."""

    takedown_id: str
    notice_id: str
    authority_id: str
    """The authority's id in the registry (``PlatformRegistered`` with kind ``authority``)."""
    channel: NoticeChannel
    sent_at: str
    attempts: int = 1


RETENTION_DAYS = 180
"""How long evidence records are kept after their takedown ends (decision 0032)."""


class EvidenceRetentionScheduled(DomainEvent, aggregate="takedown"):
    """The takedown ended (removed, refused, fulfilled, cancelled): its evidence records are
    kept ``RETENTION_DAYS`` from ``ended_at``, then their personal fields are erased
    (``erase_at``)."""

    takedown_id: str
    ended_at: str
    erase_at: str
    days: int = RETENTION_DAYS


class EvidenceErased(DomainEvent, aggregate="takedown"):
    """The retention ran out: the keys of the takedown's sealed evidence records
    (``erased``: their event ids) are destroyed, so their personal fields read as erased
    everywhere, the log's copies included. ``kept``: records sealed only under the case's key
    (recorded before decision 0032), which only the case's erasure makes unreadable."""

    takedown_id: str
    erased_at: str
    erased: list[str] = Field(default_factory=list, max_length=1000)
    kept: list[str] = Field(default_factory=list, max_length=1000)


TAKEDOWN_EVENTS: tuple[type[DomainEvent], ...] = (
    PlatformRegistered,
    PlatformUpdated,
    TakedownOpened,
    TakedownPlatformAssigned,
    EvidencePreserved,
    TakedownRequested,
    NoticeSent,
    TakedownAcknowledged,
    ContentRemoved,
    TakedownRefused,
    TakedownOverdue,
    TakedownEscalated,
    TakedownCancelled,
    RequestFulfilled,
    EvidenceRetentionScheduled,
    EvidenceErased,
    EscalationSent,
)
