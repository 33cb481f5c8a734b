"""Intake's application service: load the case from the log, let the domain decide, append its
events with the version that was read. A stale version is a 409 for the caller, never a lost
update. With an Idempotency-Key the event ids are derived from it, so a retried request, even
one racing its twin, is written once."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import CaseOpened, ErasureReason, RevealReason
from ncii_contracts.streams import CASES
from ncii_events.auth import Principal
from ncii_events.crypto import CaseKeys, MasterKey
from ncii_events.ids import derived_uuid, new_case_reference, uuid7
from ncii_events.service import ServiceRuntime
from ncii_events.store import (
    CONFLICT_ATTEMPTS,
    NEW,
    AggregateRef,
    Cause,
    ConcurrencyError,
    EventStore,
    RecordedEvent,
    Version,
    after_conflict,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_intake.domain import Case, History, may_see, personal_data_read

IDS = uuid.UUID("6c7a0f0e-1d7b-4f59-9a53-2a8e3b1c0d11")
SERVICE = Principal(principal_id="intake", organisation="ncii", role="service")
"""Intake itself, for what it does on its own (a re-upload's reopening, a due erasure)."""
Decision = Callable[[Case], Sequence[DomainEvent]]


def keyed_id(case_id: str, principal_id: str, idempotency_key: str, kind: str) -> str:
    """The id of a fact with nothing in clear to recognise it by (a note, a location, a hash
    submission), from the writer's Idempotency-Key: a retry is the same fact, also after the
    idempotency record expired (decisions 46, 0057)."""
    return str(derived_uuid(IDS, case_id, principal_id, idempotency_key, kind))


def note_id(case_id: str, principal_id: str, idempotency_key: str) -> str:
    """A case note's id, from the writer's Idempotency-Key (decision 46)."""
    return keyed_id(case_id, principal_id, idempotency_key, "note")


def contact_id(
    case_id: str,
    principal_id: str,
    idempotency_key: str | None,
    *,
    at: str,
    channel: str,
    direction: str,
) -> str:
    """A contact's id: from the Idempotency-Key when the writer sent one, else from what makes
    the contact itself (its time, channel and direction, all in clear; never its personal
    summary), so a retry without a key is the same contact (decision 46)."""
    if idempotency_key is not None:
        return str(derived_uuid(IDS, case_id, principal_id, idempotency_key, "contact"))
    return str(derived_uuid(IDS, case_id, "contact", at, channel, direction))


class CaseNotFoundError(Exception):
    """Not there, or not visible to this principal: callers cannot tell which."""


class StaleVersionError(Exception):
    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


@dataclass(frozen=True)
class LoadedCase:
    """A case and where it stands in the log: the version the next append expects (``version``,
    the log's global sequence: never shown) and the case's own version (``number``, the count of
    its events: what ``ETag``, ``If-Match`` and ``version`` say; decision 27)."""

    case: Case
    version: Version
    number: int

    @property
    def etag(self) -> str:
        return f'"{self.number}"'


def case_ref(case_id: str) -> AggregateRef:
    return AggregateRef(case_id, "case", case_id)


def history(events: Sequence[RecordedEvent]) -> History:
    """The domain's view of recorded events: each event with its time (unknown types skipped)."""
    return ((r.event, r.envelope.occurred_at) for r in events if r.event is not None)


def _require_case_id(case_id: str) -> None:
    """A case id only in the spelling this API gives out (lowercase, hyphenated). ``uuid.UUID``
    also takes ``{...}``, ``urn:uuid:...`` and upper case: those reached the key bucket as
    invalid keys, a 503 (security review F15). One spelling per id: anything else is 404."""
    try:
        canonical = str(uuid.UUID(case_id))
    except ValueError:
        raise CaseNotFoundError(case_id) from None
    if canonical != case_id:
        raise CaseNotFoundError(case_id)


def _loaded(
    case_id: str, events: Sequence[RecordedEvent], principal: Principal | None
) -> LoadedCase:
    case = Case.replay(case_id, history(events))
    if case is None or (principal is not None and not may_see(principal, case.organisation)):
        raise CaseNotFoundError(case_id)
    return LoadedCase(case, Version.of(events), len(events))


class IntakeApp:
    def __init__(
        self,
        store: EventStore,
        keys: CaseKeys,
        master: MasterKey,
        engine: AsyncEngine | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.keys = keys
        self.clock = clock
        """Now, for the victim's erasure delay (injected in tests)."""
        self.engine = engine
        """The read models' database (the re-upload reactor works its queue there)."""
        self._pin_secret = master.derive("ncii/victim-pin/v1")

    # -- the victim's PIN ----------------------------------------------------------------------

    def pin_for(self, case_id: str, generation: int = 0) -> str:
        """Eight digits derived from the case id with a secret: never stored anywhere, so an
        idempotent retry of the opening can show it again and nothing can leak it from SQL.
        ``generation`` n > 0 is the PIN issued by the n-th reset that asked for a new one
        (decision 25); 0 is the opening's, as it always was."""
        message = case_id if generation == 0 else f"{case_id}/pin/{generation}"
        digest = hmac.new(self._pin_secret, message.encode(), sha256).digest()
        return f"{int.from_bytes(digest[:8], 'big') % 100_000_000:08d}"

    def pin_matches(self, case_id: str, pin: str, generation: int = 0) -> bool:
        return hmac.compare_digest(self.pin_for(case_id, generation), pin)

    # -- loading -------------------------------------------------------------------------------

    async def load(self, case_id: str, principal: Principal | None = None) -> LoadedCase:
        """The case aggregate alone: what commands decide on."""
        _require_case_id(case_id)
        return _loaded(case_id, await self.store.load(case_ref(case_id), decrypt=False), principal)

    async def _require_visible(self, case_id: str, principal: Principal) -> None:
        """The case's opening, read alone and not decrypted (one direct get): a case of another
        organisation is refused before any of its history is read, a key unwrapped or a field
        decrypted, with the same work as a missing case (security review F13)."""
        opened = await self.store.read_from(
            1, limit=1, subject=CASES.subject(case_id, "case", case_id, "CaseOpened")
        )
        first = opened[0].event if opened else None
        if not isinstance(first, CaseOpened) or not may_see(principal, first.organisation):
            raise CaseNotFoundError(case_id)

    async def load_with_history(
        self, case_id: str, principal: Principal | None, *, decrypt: bool
    ) -> tuple[LoadedCase, list[RecordedEvent]]:
        """The case and every event of it (all services' aggregates, log order), in one read."""
        _require_case_id(case_id)
        if principal is not None:
            await self._require_visible(case_id, principal)
        events = await self.store.read_case(case_id, decrypt=decrypt)
        own = [e for e in events if e.envelope.aggregate == "case"]
        return _loaded(case_id, own, principal), events

    async def reveal_personal_data(
        self,
        case_id: str,
        principal: Principal,
        reason: RevealReason,
        ticket: str | None,
        endpoint: str,
    ) -> tuple[LoadedCase, list[RecordedEvent]]:
        """Record that ``principal`` reads the case's personal data, and why; then read it. The
        visibility check comes first (nothing is recorded for a case the caller may not see),
        and nothing is decrypted before the record is in the log. Each read is its own
        one-event aggregate: no version to contend for with the case's writers."""
        await self.load(case_id, principal)
        read_id = str(uuid7())
        await self.store.append(
            AggregateRef(case_id, "personal_data_read", read_id),
            [personal_data_read(reason, ticket, endpoint)],
            expected=NEW,
            cause=self._cause(principal, read_id),
        )
        return await self.load_with_history(case_id, principal, decrypt=True)

    # -- commands ------------------------------------------------------------------------------

    def _event_ids(self, principal: Principal, key: str | None, count: int) -> list[str] | None:
        if key is None:
            return None
        return [str(derived_uuid(IDS, principal.principal_id, key, str(i))) for i in range(count)]

    def _cause(self, principal: Principal, correlation_id: str) -> Cause:
        return Cause(
            actor=principal.actor, correlation_id=correlation_id, causation_id=correlation_id
        )

    def _case_id_for_key(self, principal: Principal, idempotency_key: str) -> str:
        return str(derived_uuid(IDS, principal.principal_id, idempotency_key, "case"))

    async def open_case(
        self,
        principal: Principal,
        idempotency_key: str | None,
        decide: Callable[[str], Sequence[DomainEvent]],
    ) -> LoadedCase:
        """Open a case; ``decide`` gets the new case's reference and returns its opening."""
        if idempotency_key is not None:
            case_id = self._case_id_for_key(principal, idempotency_key)
        else:
            case_id = str(uuid7())
        try:
            written = await self.store.append(
                case_ref(case_id),
                decide(new_case_reference()),
                expected=NEW,
                cause=self._cause(principal, case_id),
                event_ids=self._event_ids(principal, idempotency_key, 1),
            )
        except ConcurrencyError:
            # the same key raced its twin: the twin's case is the answer
            if idempotency_key is None:
                raise
            return await self.load(case_id, principal)
        return _loaded(case_id, written, None)

    async def change(
        self,
        case_id: str,
        principal: Principal | None,
        decide: Decision,
        *,
        actor_principal: Principal,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> LoadedCase:
        """Load, decide, append with the version read. When another change landed in between,
        load and decide again (bounded, with jitter: the decision may differ on the newer case);
        ConcurrencyError after the last attempt (the API answers 409). StaleVersionError on
        If-Match, also when the newer case no longer matches it."""
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                return await self._change_once(
                    case_id,
                    principal,
                    decide,
                    actor_principal=actor_principal,
                    if_match=if_match,
                    idempotency_key=idempotency_key,
                )
            except ConcurrencyError:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                await after_conflict(attempt)
        raise AssertionError("unreachable")

    async def _change_once(
        self,
        case_id: str,
        principal: Principal | None,
        decide: Decision,
        *,
        actor_principal: Principal,
        if_match: str | None,
        idempotency_key: str | None,
    ) -> LoadedCase:
        loaded = await self.load(case_id, principal)
        if if_match is not None and if_match.strip() not in (loaded.etag, "*"):
            raise StaleVersionError(loaded.etag)
        case = loaded.case
        events = list(decide(case))
        if not events:
            return loaded
        written = await self.store.append(
            case_ref(case_id),
            events,
            expected=loaded.version,
            cause=self._cause(actor_principal, case_id),
            event_ids=self._event_ids(actor_principal, idempotency_key, len(events)),
        )
        for event, at in history(written):
            case = case.apply(event, at)
        return LoadedCase(
            case, Version(written[-1].seq, written[-1].envelope.hash), loaded.number + len(written)
        )

    async def erase(
        self,
        case_id: str,
        principal: Principal,
        idempotency_key: str | None,
        reason: ErasureReason,
    ) -> LoadedCase:
        """The event first (so the log says who erased, why and when), then the key is
        destroyed. Both steps are idempotent: a retry after a crash in between finishes the job."""
        loaded = await self.change(
            case_id,
            principal,
            lambda c: c.erase(principal.role, reason),
            actor_principal=principal,
            idempotency_key=idempotency_key,
        )
        await self.keys.erase(case_id)
        return loaded

    async def request_erasure_for_victim(self, case_id: str) -> LoadedCase:
        """The victim's own request (she proved who she is with the reference and PIN): it
        takes effect after ``VICTIM_ERASURE_DELAY`` unless her case worker erases sooner."""
        now = self.clock()
        return await self.change(
            case_id,
            None,
            lambda c: c.request_erasure("victim", "victim_request", now),
            actor_principal=self._victim(await self.load(case_id)),
        )

    async def erase_if_due(self, case_id: str) -> bool:
        """Erase a case whose victim asked for it and whose delay has passed (the sweeper's
        step); True when it is erased now or was already."""
        now = self.clock()
        loaded = await self.change(
            case_id,
            None,
            lambda c: c.erase("victim", "victim_request") if c.erasure_due(now) else [],
            actor_principal=SERVICE,
            idempotency_key=f"victim-erasure/{case_id}",
        )
        if loaded.case.erased_at is None:
            return False
        await self.keys.erase(case_id)
        return True

    @staticmethod
    def _victim(loaded: LoadedCase) -> Principal:
        return Principal(
            principal_id="victim", organisation=loaded.case.organisation, role="victim"
        )

    async def withdraw_for_victim(self, case_id: str) -> LoadedCase:
        """The victim's own withdrawal (they proved who they are with the reference and PIN)."""
        loaded = await self.load(case_id)
        victim = Principal(
            principal_id="victim", organisation=loaded.case.organisation, role="victim"
        )
        return await self.change(
            case_id,
            None,
            lambda c: c.withdraw("victim", "victim_request"),
            actor_principal=victim,
        )


async def build_intake_app(runtime: ServiceRuntime[IntakeApp]) -> IntakeApp:
    """Intake's application state (the spec's app factory)."""
    return IntakeApp(runtime.store, runtime.keys, runtime.master, runtime.engine)
