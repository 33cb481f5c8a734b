"""Referral's application: the process's state (engine, stores, clock, workers) and its
commands: the partner registry, referrals (offered by the case's side, answered by the partner's
counsellors), art. 7 reports filed, a known suspect's report opened, guidance ticked. Each loads
its aggregate from the log, lets the domain decide and appends with the version read; its event
ids derive from the Idempotency-Key, so a retry is written once.

Visibility is decided from the read model before anything is decrypted (decision 26): a
counsellor's referral is looked up by id *and* organisation, a case by its organisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import CaseOpened
from ncii_contracts.referral import (
    ContactKind,
    GuidanceItem,
    GuidanceItemTicked,
    MandatoryReportDue,
    MandatoryReportSubmitted,
    PartnerRegistered,
    PartnerUpdated,
    ReferralOffered,
    Region,
    SuspectReportDue,
    SuspectReportFiled,
)
from ncii_events.auth import Principal
from ncii_events.clock import Clock
from ncii_events.ids import uuid7
from ncii_events.metrics import Sampled, overdue_deadlines
from ncii_events.service import ServiceRuntime
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, RecordedEvent, Version
from ncii_events.stream import REFERENCE_CASE
from ncii_events.worker import Worker
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_referral import domain
from ncii_referral.outbox import (
    OutboxPublisher,
    case_opened,
    derived_id,
    referral_ref,
    report_ref,
    suspect_report_id,
)
from ncii_referral.read_models import queries

Decision = Callable[[domain.Referral], Sequence[DomainEvent]]


class ReferralSettings(BaseSettings):
    """``NCII_REFERRAL_*``."""

    model_config = SettingsConfigDict(env_prefix="NCII_REFERRAL_", extra="ignore")
    clock_offset_seconds: int = Field(
        default=0, description="tests only: moves this process's clock (decision 0033)"
    )
    sweep_interval_s: float = Field(
        default=30.0, gt=0, le=60, description="how often report deadlines are checked"
    )


class NotFoundError(Exception):
    """Not there, or not visible to this principal: callers cannot tell which."""


class UnknownPartnerError(Exception):
    """A partner id the registry does not hold (bad input: nothing is written)."""


def _cause(principal: Principal, correlation: str) -> Cause:
    return Cause(actor=principal.actor, correlation_id=correlation, causation_id=correlation)


def history(events: Sequence[RecordedEvent]) -> list[tuple[DomainEvent, str]]:
    return [(r.event, r.envelope.occurred_at) for r in events if r.event is not None]


def _ids(event_id: str, count: int) -> list[str]:
    return [event_id] if count == 1 else [f"{event_id}-{i}" for i in range(count)]


def contact_route(opened: CaseOpened) -> tuple[ContactKind, str] | None:
    """The one route the victim asked to be reached by (none when she chose none)."""
    contact = opened.contact
    if contact is None or contact.preferred == "none":
        return None
    value = contact.email if contact.preferred == "email" else contact.phone
    return (contact.preferred, value) if value else None


@dataclass
class ReferralApp:
    engine: AsyncEngine
    store: EventStore
    ref_store: EventStore
    clock: Clock
    settings: ReferralSettings
    outbox: OutboxPublisher
    workers: list[Worker]

    def now(self) -> datetime:
        return self.clock.now()

    def _event_id(self, principal: Principal, key: str | None, *parts: str) -> str:
        if key is None:
            return str(uuid7())
        return derived_id(principal.principal_id, key, *parts)

    async def _append_new(
        self,
        ref: AggregateRef,
        events: Sequence[DomainEvent],
        principal: Principal,
        event_id: str,
        *,
        expected: Version | Any = NEW,
        existing: Sequence[RecordedEvent] = (),
    ) -> None:
        ids = _ids(event_id, len(events))
        if any(e.envelope.event_id in ids for e in existing):
            return  # a retry of a command already written
        await self.store.append(
            ref, list(events), expected=expected, cause=_cause(principal, event_id), event_ids=ids
        )

    # -- the partner registry ------------------------------------------------------------------

    async def register_partner(
        self, principal: Principal, key: str | None, fields: dict[str, Any]
    ) -> PartnerRegistered:
        partner_id = self._event_id(principal, key, "partner")
        event = PartnerRegistered(partner_id=partner_id, **fields)
        ref = AggregateRef(REFERENCE_CASE, "partner", partner_id)
        found = await self.ref_store.load(ref)
        if found:  # a retry of the same registration
            first = found[0].event
            assert isinstance(first, PartnerRegistered)
            return first
        await self.ref_store.append(
            ref, [event], expected=NEW, cause=_cause(principal, partner_id), event_ids=[partner_id]
        )
        return event

    async def update_partner(
        self, principal: Principal, key: str | None, partner_id: str, fields: dict[str, Any]
    ) -> PartnerUpdated:
        ref = AggregateRef(REFERENCE_CASE, "partner", partner_id)
        found = await self.ref_store.load(ref)
        if not found:
            raise NotFoundError(partner_id)
        event = PartnerUpdated(partner_id=partner_id, **fields)
        event_id = self._event_id(principal, key, "partner-update", partner_id)
        # a replacement: the same settings again (a retry without a key) are no news
        last = found[-1].event
        if last is not None and last.model_dump() == event.model_dump():
            return event
        if not any(e.envelope.event_id == event_id for e in found):
            await self.ref_store.append(
                ref,
                [event],
                expected=Version.of(found),
                cause=_cause(principal, event_id),
                event_ids=[event_id],
            )
        return event

    # -- cases ---------------------------------------------------------------------------------

    async def visible_case(self, principal: Principal, case_id: str) -> Any:
        row = await queries.case(self.engine, case_id)
        if row is None or not domain.may_see_case(
            principal.role, principal.organisation, row.organisation
        ):
            raise NotFoundError(case_id)
        return row

    @staticmethod
    def facts(row: Any) -> domain.CaseFacts:
        return domain.CaseFacts(
            organisation=row.organisation,
            age_group=row.age_group,
            consents_referral=row.consents_referral,
            closed=row.closed is not None,
        )

    # -- referrals -----------------------------------------------------------------------------

    async def offer(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        *,
        partner_id: str,
        service: Any,
        needs: Sequence[Any],
        override: domain.Override | None,
    ) -> domain.Referral:
        row = await self.visible_case(principal, case_id)
        partner = await queries.partner(self.engine, partner_id)
        if partner is None:
            raise UnknownPartnerError(partner_id)
        referral_id = self._event_id(principal, key, "referral", case_id)
        ref = referral_ref(case_id, referral_id)
        existing = await self.store.load(ref, decrypt=False)
        if existing:  # a retry: the referral it wrote
            found = domain.Referral.replay(history(existing))
            assert found is not None
            return found
        # the consent is read from the case's current facts (decision 0033: CaseOpened's,
        # until intake publishes consent changes)
        facts = self.facts(row)
        domain.check_programme(service, facts.age_group)  # before anything is decrypted
        opened = await case_opened(self.store, case_id)
        if opened is None:
            raise NotFoundError(case_id)
        events = domain.offer(
            referral_id=referral_id,
            case=facts,
            role=principal.role,
            partner_id=partner_id,
            partner_organisation=partner.organisation,
            partner_services=partner.services.split(","),
            partner_taking=partner.taking_referrals,
            service=service,
            needs=needs,
            pseudonym=opened.pseudonym,
            contact=contact_route(opened),
            override=override,
        )
        await self._append_new(ref, events, principal, referral_id)
        written = await self.store.load(ref, decrypt=False)
        referral = domain.Referral.replay(history(written))
        assert referral is not None
        return referral

    async def _load(self, case_id: str, referral_id: str) -> tuple[domain.Referral, Version]:
        events = await self.store.load(referral_ref(case_id, referral_id), decrypt=False)
        referral = domain.Referral.replay(history(events))
        if referral is None:
            raise NotFoundError(referral_id)
        return referral, Version.of(events)

    async def _change(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        referral_id: str,
        what: str,
        decide: Decision,
        identity: Sequence[str] = (),
    ) -> domain.Referral:
        ref = referral_ref(case_id, referral_id)
        events = await self.store.load(ref, decrypt=False)
        referral = domain.Referral.replay(history(events))
        if referral is None:
            raise NotFoundError(referral_id)
        if key is None and identity:
            # a fact recognised by what it says in clear: the same again is a retry (0057)
            event_id = derived_id(what, referral_id, *identity)
        else:
            event_id = self._event_id(principal, key, what, referral_id)
        if any(e.envelope.event_id == event_id for e in events):
            return referral  # a retry of this very command
        decided = list(decide(referral))
        if not decided:
            return referral  # no news (a step asked again)
        await self._append_new(
            ref, decided, principal, event_id, expected=Version.of(events), existing=events
        )
        for event in decided:
            referral = referral.apply(event)
        return referral

    async def case_change(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        referral_id: str,
        what: str,
        decide: Decision,
        identity: Sequence[str] = (),
    ) -> domain.Referral:
        """A change by the case's side (its partner, a case worker). ``identity``: what the
        fact says in clear that makes it one (a follow-up's time and outcome), naming it when
        no Idempotency-Key was sent."""
        await self.visible_case(principal, case_id)
        row = await queries.referral(self.engine, referral_id)
        if row is None or row.case_id != case_id:
            raise NotFoundError(referral_id)
        return await self._change(principal, key, case_id, referral_id, what, decide, identity)

    async def own_referral(self, principal: Principal, referral_id: str) -> Any:
        """A referral addressed to the counsellor's organisation, else not found: decided from
        the read model, before anything is decrypted."""
        row = await queries.referral(self.engine, referral_id)
        if row is None or row.partner_organisation != principal.organisation:
            raise NotFoundError(referral_id)
        return row

    async def partner_change(
        self,
        principal: Principal,
        key: str | None,
        referral_id: str,
        what: str,
        decide: Decision,
        identity: Sequence[str] = (),
    ) -> domain.Referral:
        row = await self.own_referral(principal, referral_id)
        return await self._change(principal, key, row.case_id, referral_id, what, decide, identity)

    async def referral_for_partner(
        self, principal: Principal, referral_id: str
    ) -> tuple[Any, ReferralOffered | None, list[RecordedEvent]]:
        """What the receiving partner sees: the offer (pseudonym, needs, the contact route only
        when she consented) and the referral's own timeline with its notes."""
        row = await self.own_referral(principal, referral_id)
        events = await self.store.load(referral_ref(row.case_id, referral_id))
        offered = next((e.event for e in events if isinstance(e.event, ReferralOffered)), None)
        return row, offered, events

    # -- reports -------------------------------------------------------------------------------

    async def file_report(
        self,
        principal: Principal,
        key: str | None,
        case_id: str,
        report_id: str,
        *,
        filed_at: datetime,
        region: Region,
        reference: str,
    ) -> Any:
        await self.visible_case(principal, case_id)
        row = await queries.report(self.engine, report_id)
        if row is None or row.case_id != case_id:
            raise NotFoundError(report_id)
        ref = report_ref(case_id, report_id)
        events = await self.store.load(ref, decrypt=False)
        event_id = self._event_id(principal, key, "filed", report_id)
        if any(e.envelope.event_id == event_id for e in events):
            return row
        if row.status == "filed" or any(e.type.endswith(("Submitted", "Filed")) for e in events):
            raise domain.ReferralRuleError("already-filed", "this report was filed already")
        if not events:
            raise NotFoundError(report_id)
        first = events[0].event
        kind = (
            MandatoryReportSubmitted
            if isinstance(first, MandatoryReportDue)
            else SuspectReportFiled
        )
        filed = domain.format_time(filed_at)
        event = kind(
            report_id=report_id,
            filed_at=filed,
            late=domain.is_overdue(row.due_at, filed_at),
            authority_region=region,
            authority_reference=reference,
        )
        await self._append_new(
            ref, [event], principal, event_id, expected=Version.of(events), existing=events
        )
        return row

    async def open_suspect_report(
        self, principal: Principal, key: str | None, case_id: str, learned_at: datetime
    ) -> str:
        """Staff learned who the suspect is: reporting them is due in 24 hours (art. 7 para 2,
        minors' cases)."""
        row = await self.visible_case(principal, case_id)
        if row.closed is not None:
            raise domain.ReferralRuleError("case-closed", "the case is withdrawn or erased")
        if row.age_group != "minor":
            raise domain.ReferralRuleError(
                "not-a-minor",
                "the suspect report (art. 7 para 2) is for a minor's case",
                status=422,
            )
        report_id = suspect_report_id(case_id)
        ref = report_ref(case_id, report_id)
        events = await self.store.load(ref, decrypt=False)
        if events:
            return report_id  # a suspect is reported once per case
        opened = await case_opened(self.store, case_id)
        learned = domain.format_time(learned_at)
        event = SuspectReportDue(
            report_id=report_id,
            learned_at=learned,
            due_at=domain.report_due_at(learned),
            region=opened.region if opened is not None else None,
        )
        await self._append_new(ref, [event], principal, derived_id(report_id, "due"))
        return report_id

    async def case_reports(
        self, principal: Principal, case_id: str
    ) -> list[tuple[Any, list[RecordedEvent]]]:
        await self.visible_case(principal, case_id)
        out = []
        for row in await queries.case_reports(self.engine, case_id):
            out.append((row, await self.store.load(report_ref(case_id, row.report_id))))
        return out

    # -- guidance ------------------------------------------------------------------------------

    async def guidance(
        self, principal: Principal, case_id: str
    ) -> tuple[list[str], dict[str, str]]:
        row = await self.visible_case(principal, case_id)
        items = domain.guidance(
            domain.GuidanceFacts(
                age_group=row.age_group,
                harm_categories=frozenset(row.harm_categories.split(",")),
                spread_status=row.spread_status,
                on_social_platform=row.on_social_platform,
                # a suspect report opened, or intake's offender details say known (decision 36)
                offender_known=row.offender_known
                or await queries.offender_known(self.engine, case_id),
            )
        )
        return list(items), await queries.ticked(self.engine, case_id)

    async def tick(
        self, principal: Principal, key: str | None, case_id: str, item: GuidanceItem
    ) -> None:
        items, ticked = await self.guidance(principal, case_id)
        if item not in items:
            raise domain.ReferralRuleError(
                "not-in-this-case",
                f"{item} is not on this case's checklist: tick one of {', '.join(items)}",
                status=422,
            )
        if item in ticked:
            return
        ref = AggregateRef(case_id, "guidance", case_id)
        events = await self.store.load(ref, decrypt=False)
        if any(isinstance(e.event, GuidanceItemTicked) and e.event.item == item for e in events):
            return  # ticked in the log, not yet in the read model
        event = GuidanceItemTicked(item=item, ticked_at=domain.format_time(self.now()))
        event_id = self._event_id(principal, key, "tick", case_id, item)
        await self._append_new(
            ref, [event], principal, event_id, expected=Version.of(events), existing=events
        )


async def build(
    runtime: ServiceRuntime[ReferralApp], settings: ReferralSettings | None = None
) -> ReferralApp:
    """Referral's application state (the spec's app factory)."""
    from ncii_referral.deadlines import ReportSweeper

    settings = settings or ReferralSettings()
    app = ReferralApp(
        engine=runtime.engine,
        store=runtime.store,
        ref_store=runtime.ref_store,
        clock=Clock(settings.clock_offset_seconds),
        settings=settings,
        outbox=OutboxPublisher(runtime.engine, runtime.store, registry=runtime.registry),
        workers=[],
    )
    app.workers.extend([app.outbox, ReportSweeper(app)])
    return app


def gauges(app: ReferralApp) -> Sequence[Sampled]:
    """``ncii.deadlines.overdue`` for art. 7 reports (decision 49), by kind, 0 when none."""
    return (
        overdue_deadlines(
            "art7_report",
            ("victim_minor", "known_suspect"),
            lambda: queries.overdue_counts(app.engine),
        ),
    )


def workers(app: ReferralApp) -> Sequence[Worker]:
    """The outbox publisher and the report sweeper."""
    return tuple(app.workers)
