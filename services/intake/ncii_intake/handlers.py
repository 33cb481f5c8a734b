"""Intake's command handlers: load the case from the log, let the domain decide, append the
events with the version that was read. A stale version is a 409 for the caller, never a lost
update. With an Idempotency-Key the event ids are derived from it, so a retried request, even
one racing its twin, is written once."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from hashlib import sha256

from ncii_events.auth import Principal
from ncii_events.crypto import CaseKeys, MasterKey
from ncii_events.ids import derived_uuid, new_case_reference, uuid7
from ncii_events.registry import DomainEvent
from ncii_events.service import ServiceRuntime
from ncii_events.store import NEW, AggregateRef, Cause, EventStore, RecordedEvent, Version

from ncii_intake.commands import OpenCase, utc_text
from ncii_intake.domain import Case
from ncii_intake.events import CaseOpened, Consents, Contact, WithdrawnBy

IDS = uuid.UUID("6c7a0f0e-1d7b-4f59-9a53-2a8e3b1c0d11")
CASE_READERS = ("partner", "caseworker", "admin")
CASE_WRITERS = ("partner", "caseworker")


class CaseNotFoundError(Exception):
    """Not there, or not visible to this principal: callers cannot tell which."""


class StaleVersionError(Exception):
    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


def case_ref(case_id: str) -> AggregateRef:
    return AggregateRef(case_id, "case", case_id)


def etag(case: Case) -> str:
    return f'"{case.version.seq}"'


def may_see(principal: Principal, case: Case) -> bool:
    """Partners see their own organisation's cases; the centre's case workers see all."""
    if principal.role == "partner":
        return case.organisation == principal.organisation
    return principal.role in ("caseworker", "admin")


def _require_case_id(case_id: str) -> None:
    try:
        uuid.UUID(case_id)
    except ValueError:
        raise CaseNotFoundError(case_id) from None


def _visible(case: Case | None, case_id: str, principal: Principal | None) -> Case:
    if case is None or (principal is not None and not may_see(principal, case)):
        raise CaseNotFoundError(case_id)
    return case


class IntakeHandlers:
    def __init__(self, store: EventStore, keys: CaseKeys, master: MasterKey) -> None:
        self.store = store
        self.keys = keys
        self._pin_secret = master.derive("ncii/victim-pin/v1")

    # -- the victim's PIN ----------------------------------------------------------------------

    def pin_for(self, case_id: str) -> str:
        """Eight digits derived from the case id with a secret: never stored anywhere, so an
        idempotent retry of the opening can show it again and nothing can leak it from SQL."""
        digest = hmac.new(self._pin_secret, case_id.encode(), sha256).digest()
        return f"{int.from_bytes(digest[:8], 'big') % 100_000_000:08d}"

    def pin_matches(self, case_id: str, pin: str) -> bool:
        return hmac.compare_digest(self.pin_for(case_id), pin)

    # -- loading -------------------------------------------------------------------------------

    async def load(self, case_id: str, principal: Principal | None = None) -> Case:
        """The case aggregate alone: what commands decide on."""
        _require_case_id(case_id)
        case = Case.replay(await self.store.load(case_ref(case_id), decrypt=False))
        return _visible(case, case_id, principal)

    async def load_with_history(
        self, case_id: str, principal: Principal | None, *, decrypt: bool
    ) -> tuple[Case, list[RecordedEvent]]:
        """The case and every event of it (all services' aggregates, log order), in one read."""
        _require_case_id(case_id)
        history = await self.store.read_case(case_id, decrypt=decrypt)
        case = Case.replay([e for e in history if e.envelope.aggregate == "case"])
        return _visible(case, case_id, principal), history

    # -- commands ------------------------------------------------------------------------------

    def _event_ids(self, principal: Principal, key: str | None, count: int) -> list[str] | None:
        if key is None:
            return None
        return [str(derived_uuid(IDS, principal.principal_id, key, str(i))) for i in range(count)]

    def _cause(self, principal: Principal, correlation_id: str) -> Cause:
        return Cause(
            actor=principal.actor, correlation_id=correlation_id, causation_id=correlation_id
        )

    def case_id_for_key(self, principal: Principal, idempotency_key: str) -> str:
        return str(derived_uuid(IDS, principal.principal_id, idempotency_key, "case"))

    async def open_case(
        self, command: OpenCase, principal: Principal, idempotency_key: str | None
    ) -> Case:
        if idempotency_key is not None:
            case_id = self.case_id_for_key(principal, idempotency_key)
        else:
            case_id = str(uuid7())
        event = CaseOpened(
            organisation=principal.organisation,
            reference=new_case_reference(),
            age_group=command.age_group,
            harm_categories=command.harm_categories,
            spread_status=command.spread_status,
            channels=command.channels,
            intake_channel=command.intake_channel,
            learned_at=utc_text(command.learned_at),
            consents=Consents(**command.consents.model_dump()),
            pseudonym=command.pseudonym,
            contact=Contact(**command.contact.model_dump()) if command.contact else None,
        )
        written = await self.store.append(
            case_ref(case_id),
            [event],
            expected=NEW,
            cause=self._cause(principal, case_id),
            event_ids=self._event_ids(principal, idempotency_key, 1),
        )
        case = Case.replay(written)
        assert case is not None
        return case

    async def change(
        self,
        case_id: str,
        principal: Principal | None,
        decide: Callable[[Case], Sequence[DomainEvent]],
        *,
        actor_principal: Principal,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> Case:
        """Load, decide, append with the version read. Raises ConcurrencyError when another
        change landed in between (the API answers 409) and StaleVersionError on If-Match."""
        case = await self.load(case_id, principal)
        if if_match is not None and if_match.strip() not in (etag(case), "*"):
            raise StaleVersionError(etag(case))
        events = list(decide(case))
        if not events:
            return case
        written = await self.store.append(
            case_ref(case_id),
            events,
            expected=case.version,
            cause=self._cause(actor_principal, case_id),
            event_ids=self._event_ids(actor_principal, idempotency_key, len(events)),
        )
        updated = case
        for recorded in written:
            assert recorded.event is not None
            updated = updated.apply(recorded.event, recorded.envelope.occurred_at)
        return replace(updated, version=Version(written[-1].seq, written[-1].envelope.hash))

    async def erase(self, case_id: str, principal: Principal, idempotency_key: str | None) -> Case:
        """The event first (so the log says who asked, and when), then the key is destroyed.
        Both steps are idempotent: a retry after a crash in between finishes the job."""
        by: WithdrawnBy = "caseworker" if principal.role == "caseworker" else "partner"
        case = await self.change(
            case_id,
            principal,
            lambda c: c.erase(by),
            actor_principal=principal,
            idempotency_key=idempotency_key,
        )
        await self.keys.erase(case_id)
        return case


async def build_handlers(runtime: ServiceRuntime[IntakeHandlers]) -> IntakeHandlers:
    """Intake's application state (the spec's app factory)."""
    return IntakeHandlers(runtime.store, runtime.keys, runtime.master)
