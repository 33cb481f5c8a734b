"""Takedown's application: the process's state (engine, stores, clock, the workers) and its
commands: the platform registry, evidence, a platform assigned, a notice confirmed as sent or
escalated (case side), acknowledged, removed or refused (platform side). Each loads the
takedown from the log, lets the domain decide and appends with the version read; its event id
derives from the Idempotency-Key, so a retry is written once.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import MatchFound
from ncii_contracts.intake import LocationReported
from ncii_contracts.takedown import (
    EvidencePreserved,
    NoticePurpose,
    PlatformRegistered,
    PlatformUpdated,
    TakedownEscalated,
    TakedownOpened,
    TimelineEntry,
)
from ncii_events.auth import Principal
from ncii_events.clock import Clock
from ncii_events.crypto import MasterKey
from ncii_events.ids import uuid7
from ncii_events.metrics import Sampled, overdue_deadlines
from ncii_events.service import ServiceRuntime
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, RecordedEvent, Version
from ncii_events.stream import REFERENCE_CASE
from ncii_events.worker import Worker
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_takedown import domain
from ncii_takedown.evidence_keys import SEALED_FIELDS, EvidenceKeys, seal, unseal
from ncii_takedown.mail import SmtpSettings, StartTls
from ncii_takedown.outbox import OutboxPublisher, derived_id, takedown_ref
from ncii_takedown.read_models import queries

Decision = Callable[[domain.Takedown], Sequence[DomainEvent]]


class TakedownSettings(BaseSettings):
    """``NCII_TAKEDOWN_*``."""

    model_config = SettingsConfigDict(env_prefix="NCII_TAKEDOWN_", extra="ignore")
    clock_offset_seconds: int = Field(
        default=0, description="tests only: moves this process's clock (decision 0030)"
    )
    sweep_interval_s: float = Field(
        default=30.0, gt=0, le=60, description="how often deadlines are checked (at most 60 s)"
    )
    retry_base_ms: int = Field(
        default=int(domain.BASE_DELAY_S * 1000),
        ge=1,
        description="the first retry's delay; each next one doubles (with jitter)",
    )
    max_attempts: int = Field(default=domain.MAX_ATTEMPTS, ge=1, le=30)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    delivery_batch: int = Field(default=500, ge=1, le=1000, description="rows read per round")
    delivery_concurrency: int = Field(
        default=64, ge=1, le=256, description="deliveries in flight at once"
    )
    smtp_host: str | None = Field(
        default=None, description="the mail server for e-mail notices; unset: sent by hand"
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str = Field(default="takedown@example.org", max_length=254)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: StartTls = Field(
        default="opportunistic",
        description="STARTTLS when offered (opportunistic), or refuse a server without it "
        "(required), or never (a relay on this host only)",
    )
    smtp_ca_file: str | None = Field(
        default=None, description="CA bundle that signs the mail server's certificate"
    )
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    notifier_organisation: str = "ncii centre"
    notifier_contact: str = "takedown desk"
    notifier_email: str = "takedown@example.org"
    notifier_phone: str = "+886-2-0000-0000"


class NotFoundError(Exception):
    """Not there, or not visible to this principal: callers cannot tell which."""


class UnknownPlatformError(Exception):
    """A platform id the registry does not hold (bad input: nothing is written)."""


class StaleVersionError(Exception):
    pass


def _cause(principal: Principal, correlation: str) -> Cause:
    return Cause(actor=principal.actor, correlation_id=correlation, causation_id=correlation)


def history(events: Sequence[RecordedEvent]) -> list[tuple[DomainEvent, str]]:
    return [(r.event, r.envelope.occurred_at) for r in events if r.event is not None]


@dataclass(frozen=True)
class LoadedTakedown:
    takedown: domain.Takedown
    case_id: str
    version: Version
    traceparent: str | None = None
    """The newest event's: a sweep acting on the takedown links its trace (decision 55)."""


@dataclass
class TakedownApp:
    engine: AsyncEngine
    store: EventStore
    ref_store: EventStore
    clock: Clock
    settings: TakedownSettings
    outbox: OutboxPublisher
    webhook_secret_key: bytes
    workers: list[Worker]
    evidence_keys: EvidenceKeys
    jitter: Callable[[], float] = random.random

    @property
    def notifier(self) -> domain.Notifier:
        s = self.settings
        return domain.Notifier(
            s.notifier_organisation, s.notifier_contact, s.notifier_email, s.notifier_phone
        )

    def smtp_settings(self) -> SmtpSettings | None:
        """The mail server for e-mail notices, or None: then a case worker sends them."""
        s = self.settings
        if not s.smtp_host:
            return None
        return SmtpSettings(
            host=s.smtp_host,
            port=s.smtp_port,
            sender=s.smtp_from,
            user=s.smtp_user,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            starttls=s.smtp_starttls,
            ca_file=s.smtp_ca_file,
            timeout_s=s.smtp_timeout_s,
        )

    def now_text(self) -> str:
        return domain.format_time(self.clock.now())

    def _event_id(self, principal: Principal, key: str | None, *parts: str) -> str:
        if key is None:
            return str(uuid7())
        return derived_id(principal.principal_id, key, *parts)

    # -- the platform registry -----------------------------------------------------------------

    def webhook_secret(self, platform_id: str, version: int) -> str:
        """The platform's signing secret (Standard Webhooks ``whsec_``), derived from the master
        key, so it is never stored: shown to an admin, recomputed to sign."""
        digest = hmac.new(
            self.webhook_secret_key, f"{platform_id}:{version}".encode(), sha256
        ).digest()
        return "whsec_" + base64.b64encode(digest).decode()

    async def register_platform(
        self, principal: Principal, key: str | None, fields: dict[str, Any]
    ) -> PlatformRegistered:
        platform_id = self._event_id(principal, key, "platform")
        event = PlatformRegistered(platform_id=platform_id, **fields)
        ref = AggregateRef(REFERENCE_CASE, "platform", platform_id)
        history_ = await self.ref_store.load(ref)
        if history_:  # a retry of the same registration
            first = history_[0].event
            assert isinstance(first, PlatformRegistered)
            return first
        await self.ref_store.append(
            ref,
            [event],
            expected=NEW,
            cause=_cause(principal, platform_id),
            event_ids=[platform_id],
        )
        return event

    async def update_platform(
        self, principal: Principal, key: str | None, platform_id: str, fields: dict[str, Any]
    ) -> PlatformUpdated:
        ref = AggregateRef(REFERENCE_CASE, "platform", platform_id)
        events = await self.ref_store.load(ref)
        if not events:
            raise NotFoundError(platform_id)
        last = events[-1].event
        assert isinstance(last, PlatformRegistered)
        event = PlatformUpdated(
            platform_id=platform_id, secret_version=last.secret_version, **fields
        )
        if last.model_dump() == event.model_dump():
            return event  # the same settings again (a retry without a key): no news
        event_id = self._event_id(principal, key, "platform-update", platform_id)
        if any(e.envelope.event_id == event_id for e in events):
            return event
        await self.ref_store.append(
            ref,
            [event],
            expected=Version.of(events),
            cause=_cause(principal, event_id),
            event_ids=[event_id],
        )
        return event

    # -- evidence: sealed with its own key (decision 0032) --------------------------------------

    async def seal(
        self, case_id: str, events: Sequence[DomainEvent], ids: Sequence[str]
    ) -> list[DomainEvent]:
        """Each new evidence record's personal values sealed with the record's own key (the
        store then encrypts them with the case's key, as every personal field)."""
        out: list[DomainEvent] = []
        for event, event_id in zip(events, ids, strict=True):
            if isinstance(event, EvidencePreserved) and not event.sealed:
                key = await self.evidence_keys.create(case_id, event_id)
                values = {
                    name: seal(key, case_id, event_id, name, value)
                    for name in SEALED_FIELDS
                    if (value := getattr(event, name)) is not None
                }
                event = event.model_copy(update={**values, "sealed": True})
            out.append(event)
        return out

    async def unseal(self, events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """The events with each sealed evidence record opened while its key lives; once its
        retention ended (the key destroyed) its personal fields read as erased."""
        out: list[RecordedEvent] = []
        for recorded in events:
            ev = recorded.event
            if isinstance(ev, EvidencePreserved) and ev.sealed:
                event_id = recorded.envelope.event_id
                present = [n for n in SEALED_FIELDS if getattr(ev, n) is not None]
                key = await self.evidence_keys.key(recorded.case_id, event_id) if present else None
                if key is not None:
                    opened = {
                        n: unseal(key, recorded.case_id, event_id, n, getattr(ev, n))
                        for n in present
                    }
                    recorded = dataclasses.replace(recorded, event=ev.model_copy(update=opened))
                elif present:
                    erased = recorded.erased_fields | frozenset(present)
                    recorded = dataclasses.replace(
                        recorded,
                        event=ev.model_copy(update=dict.fromkeys(present)),
                        erased_fields=erased,
                    )
            out.append(recorded)
        return out

    # -- takedowns: loading --------------------------------------------------------------------

    async def visible_case(self, principal: Principal, case_id: str) -> Any:
        row = await queries.case(self.engine, case_id)
        if row is None or not domain.may_see(
            principal.role, principal.organisation, row.organisation
        ):
            raise NotFoundError(case_id)
        return row

    async def load(self, case_id: str, takedown_id: str) -> LoadedTakedown:
        events = await self.store.load(takedown_ref(case_id, takedown_id), decrypt=False)
        takedown = domain.Takedown.replay(history(events))
        if takedown is None:
            raise NotFoundError(takedown_id)
        return LoadedTakedown(
            takedown, case_id, Version.of(events), events[-1].envelope.traceparent
        )

    async def _change(
        self,
        loaded: LoadedTakedown,
        decide: Decision,
        principal: Principal,
        event_id: str,
        *,
        if_match: str | None = None,
    ) -> LoadedTakedown:
        if if_match is not None and if_match.strip() not in (f'"{loaded.version.seq}"', "*"):
            raise StaleVersionError(f'"{loaded.version.seq}"')
        events = list(decide(loaded.takedown))
        if not events:
            return loaded
        ids = [event_id] if len(events) == 1 else [f"{event_id}-{i}" for i in range(len(events))]
        events = await self.seal(loaded.case_id, events, ids)
        written = await self.store.append(
            takedown_ref(loaded.case_id, loaded.takedown.takedown_id),
            events,
            expected=loaded.version,
            cause=_cause(principal, event_id),
            event_ids=ids,
        )
        takedown = loaded.takedown
        for event, at in history(written):
            takedown = takedown.apply(event, at)
        return LoadedTakedown(takedown, loaded.case_id, Version.of(written))

    async def case_change(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        takedown_id: str,
        what: str,
        decide: Decision,
        *,
        if_match: str | None = None,
    ) -> LoadedTakedown:
        """A change by the case's partner or case worker."""
        await self.visible_case(principal, case_id)
        row = await queries.takedown(self.engine, takedown_id)
        if row is None or row.case_id != case_id:
            raise NotFoundError(takedown_id)
        loaded = await self.load(case_id, takedown_id)
        event_id = self._event_id(principal, key, what, takedown_id)
        return await self._change(loaded, decide, principal, event_id, if_match=if_match)

    async def open_request(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        purpose: NoticePurpose,
        platform_id: str,
        evidence: dict[str, Any],
    ) -> LoadedTakedown:
        """A freeze or preserve notice (art. 8) on the case: opened with its platform and its
        evidence in one append, so the reactor decides its notice as for any other takedown."""
        case = await self.visible_case(principal, case_id)
        if await queries.platform(self.engine, platform_id) is None:
            raise UnknownPlatformError(platform_id)
        if case.closed is not None:
            raise domain.TransitionError("the case is closed: it takes no new notices")
        if key is None:
            # a request is its purpose, its platform and its evidence (the capture's SHA-256,
            # in clear): the same three again is a retry, not a second notice (decision 0057)
            takedown_id = derived_id(
                "request", case_id, purpose, platform_id, evidence["capture_sha256"]
            )
        else:
            takedown_id = self._event_id(principal, key, "request", case_id)
        ref = takedown_ref(case_id, takedown_id)
        existing = await self.store.load(ref, decrypt=False)
        if not existing:
            events = [
                *domain.Takedown.open(
                    takedown_id,
                    source="staff",
                    source_event_id=takedown_id,
                    platform_id=platform_id,
                    purpose=purpose,
                ),
                *domain.Takedown(takedown_id, "staff", self.now_text()).record_evidence(**evidence),
            ]
            ids = [takedown_id, derived_id(takedown_id, "evidence")]
            existing = await self.store.append(
                ref,
                await self.seal(case_id, events, ids),
                expected=NEW,
                cause=_cause(principal, takedown_id),
                event_ids=ids,
            )
        takedown = domain.Takedown.replay(history(existing))
        assert takedown is not None
        return LoadedTakedown(takedown, case_id, Version.of(existing))

    async def escalate(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        takedown_id: str,
        authority: str,
    ) -> LoadedTakedown:
        """An overdue notice taken to the authority: the record carries the takedown's timeline
        as the log holds it (each event's id, type, time and hash), read in the same load whose
        version the append expects, so no event can slip in between unrecorded."""
        await self.visible_case(principal, case_id)
        row = await queries.takedown(self.engine, takedown_id)
        if row is None or row.case_id != case_id:
            raise NotFoundError(takedown_id)
        events = await self.store.load(takedown_ref(case_id, takedown_id), decrypt=False)
        takedown = domain.Takedown.replay(history(events))
        if takedown is None:
            raise NotFoundError(takedown_id)
        loaded = LoadedTakedown(takedown, case_id, Version.of(events))
        timeline = [
            TimelineEntry(
                event_id=e.envelope.event_id,
                type=e.envelope.type,  # a takedown's own events: validated as one
                occurred_at=e.envelope.occurred_at,
                hash=e.envelope.hash,
            )
            for e in events
        ]
        at = self.now_text()
        event_id = self._event_id(principal, key, "escalated", takedown_id)
        return await self._change(
            loaded, lambda t: t.escalate(at, authority, timeline=timeline), principal, event_id
        )

    async def escalation(
        self, principal: Principal, case_id: str, takedown_id: str
    ) -> tuple[RecordedEvent, list[bool]] | None:
        """The takedown's escalation record and, for each timeline entry, whether the log still
        holds that event with that hash (None when it was not escalated)."""
        await self.visible_case(principal, case_id)
        decrypt = domain.sees_personal_data(principal.role)
        events = await self.store.load(takedown_ref(case_id, takedown_id), decrypt=decrypt)
        if not events:
            raise NotFoundError(takedown_id)
        by_id = {e.envelope.event_id: e.envelope.hash for e in events}
        for recorded in events:
            if isinstance(recorded.event, TakedownEscalated):
                checks = [by_id.get(t.event_id) == t.hash for t in recorded.event.timeline]
                return recorded, checks
        return None

    async def assign_platform(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        takedown_id: str,
        platform_id: str,
    ) -> LoadedTakedown:
        if await queries.platform(self.engine, platform_id) is None:
            raise UnknownPlatformError(platform_id)
        return await self.case_change(
            principal,
            key,
            case_id,
            takedown_id,
            "platform",
            lambda t: t.assign_platform(platform_id),
        )

    async def platform_change(
        self, principal: Principal, key: str | None, notice_id: str, what: str, decide: Decision
    ) -> LoadedTakedown:
        """A platform's answer to a notice addressed to its own organisation (else 404)."""
        row = await queries.notice_for_platform(self.engine, notice_id, principal.organisation)
        if row is None:
            raise NotFoundError(notice_id)
        loaded = await self.load(row.case_id, row.takedown_id)
        event_id = self._event_id(principal, key, what, notice_id)
        return await self._change(loaded, decide, principal, event_id)

    # -- reading: timelines and notices --------------------------------------------------------

    async def case_takedowns(
        self, principal: Principal, case_id: str
    ) -> list[tuple[domain.Takedown, list[RecordedEvent]]]:
        """Every takedown of the case with its whole timeline, from the log (decrypted for the
        case's side, who read its URLs; an admin's read decrypts nothing: decision 56)."""
        await self.visible_case(principal, case_id)
        events = await self.store.read_case(
            case_id, decrypt=domain.sees_personal_data(principal.role)
        )
        events = await self.unseal(events)
        by_takedown: dict[str, list[RecordedEvent]] = {}
        for event in events:
            if event.envelope.aggregate == "takedown":
                by_takedown.setdefault(event.envelope.aggregate_id, []).append(event)
        out = []
        for timeline in by_takedown.values():
            takedown = domain.Takedown.replay(history(timeline))
            if takedown is not None:
                out.append((takedown, timeline))
        out.sort(key=lambda item: (item[0].opened_at, item[0].takedown_id))
        return out

    async def notice(
        self, case_id: str, takedown_id: str, sent_at: str | None = None
    ) -> tuple[domain.Takedown, dict[str, Any]] | None:
        """The notice of a takedown as the platform receives it (None when there is none or the
        case's personal data was erased: a notice without its URL is no notice)."""
        draft = await self.compose(case_id, takedown_id, sent_at=sent_at)
        return None if draft is None else (draft.takedown, draft.document)

    async def compose(
        self,
        case_id: str,
        takedown_id: str,
        *,
        sent_at: str | None = None,
        platform: Any = None,
    ) -> NoticeDraft | None:
        """The notice, with the takedown it was composed from and that takedown's version in
        the log (one read of the case: the deliverer appends ``NoticeSent`` on that version).
        ``platform``: its registry row when the caller has it already."""
        events = await self.store.read_case(case_id, decrypt=True)
        own = await self.unseal(
            [
                e
                for e in events
                if e.envelope.aggregate == "takedown" and e.envelope.aggregate_id == takedown_id
            ]
        )
        takedown = domain.Takedown.replay(history(own))
        if takedown is None or takedown.notice_id is None or takedown.platform_id is None:
            return None
        opened = own[0].event
        assert isinstance(opened, TakedownOpened)
        url: str | None = None
        account: str | None = None
        ip: str | None = None
        age_group = "adult"
        for e in events:
            ev = e.event
            if e.envelope.event_id == opened.source_event_id and isinstance(
                ev, (LocationReported, MatchFound)
            ):
                url = ev.url
            elif ev is not None and e.type == "CaseOpened":
                age_group = getattr(ev, "age_group", "adult")
        for e in own:
            if isinstance(e.event, EvidencePreserved):
                url = e.event.url or url
                account = e.event.offender_account or account
                ip = e.event.offender_ip or ip
        if url is None and (takedown.purpose == "removal" or account is None):
            return None  # erased, or nothing left to act on (a freeze names only the account)
        escalated = next((e for e in reversed(own) if isinstance(e.event, TakedownEscalated)), None)
        if platform is None or platform.platform_id != takedown.platform_id:
            platform = await queries.platform(self.engine, takedown.platform_id)
        if platform is None:
            return None
        document = domain.notice_document(
            takedown,
            platform_name=platform.name,
            age_group="minor" if age_group == "minor" else "adult",
            url=url,
            offender_account=account,
            offender_ip=ip,
            notifier=self.notifier,
            sent_at=sent_at or takedown.sent_at or self.now_text(),
        )
        return NoticeDraft(takedown, document, Version.of(own), escalated)


@dataclass(frozen=True)
class NoticeDraft:
    takedown: domain.Takedown
    document: dict[str, Any]
    version: Version
    """The takedown's version in the log when the notice was composed."""
    escalated: RecordedEvent | None = None
    """The takedown's escalation record, once escalated."""


async def build(
    runtime: ServiceRuntime[TakedownApp], settings: TakedownSettings | None = None
) -> TakedownApp:
    """Takedown's application state (the spec's app factory)."""
    from ncii_takedown.deadlines import DeadlineSweeper
    from ncii_takedown.delivery import Deliverer
    from ncii_takedown.retention import RetentionSweeper

    settings = settings or TakedownSettings()
    assert runtime.nc is not None, "the runtime is started before the application is built"
    app = TakedownApp(
        engine=runtime.engine,
        store=runtime.store,
        ref_store=runtime.ref_store,
        clock=Clock(settings.clock_offset_seconds),
        settings=settings,
        outbox=OutboxPublisher(runtime.engine, runtime.store, registry=runtime.registry),
        webhook_secret_key=_secret_key(runtime.master),
        workers=[],
        evidence_keys=EvidenceKeys(runtime.nc, runtime.master),
    )
    await app.evidence_keys.start()
    app.workers.extend([app.outbox, Deliverer(app), DeadlineSweeper(app), RetentionSweeper(app)])
    return app


def _secret_key(master: MasterKey) -> bytes:
    return master.derive("ncii/takedown/webhook-secret/v1")


def gauges(app: TakedownApp) -> Sequence[Sampled]:
    """``ncii.deadlines.overdue`` for notices (decision 49): both statuses, 0 when none."""
    return (
        overdue_deadlines(
            "takedown_notice", ("overdue", "escalated"), lambda: queries.overdue_counts(app.engine)
        ),
    )


def workers(app: TakedownApp) -> Sequence[Worker]:
    """The outbox publisher, the webhook deliverer, the deadline and retention sweepers."""
    return tuple(app.workers)
