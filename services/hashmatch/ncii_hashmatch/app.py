"""Hashmatch's application: the state a process builds once its runtime is up (the matcher
that follows the bank, restored from it when it starts; the outbox publisher; the tokens), and
its commands: bank settings, imports, sightings, verdicts, false positives. The bank's
projections are in the spec; the runtime runs them and nudges the matcher and the outbox after
each commit.

Every event id is derived from what identifies the command (the sighting itself, the
Idempotency-Key, the import), so a retried command or a second replica writes each event once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ncii_contracts.hashmatch import (
    BankConfigured,
    FalsePositiveConfirmed,
    FalsePositiveTarget,
    ImportMode,
    MatchFeedbackReceived,
    PlatformProgrammesChanged,
    Programme,
    Verdict,
)
from ncii_events.auth import Principal
from ncii_events.crypto import CaseErasedError
from ncii_events.ids import derived_uuid, uuid7
from ncii_events.service import ServiceRuntime
from ncii_events.store import (
    CONFLICT_ATTEMPTS,
    AggregateRef,
    Cause,
    ConcurrencyError,
    EventStore,
    RecordedEvent,
    Version,
    after_conflict,
    append_decided,
    append_once,
)
from ncii_events.stream import REFERENCE_CASE
from ncii_events.worker import Worker
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_hashmatch import domain, sightings
from ncii_hashmatch.matcher import Hit, Matcher, Query
from ncii_hashmatch.outbox import OutboxPublisher
from ncii_hashmatch.read_models import queries
from ncii_hashmatch.read_models.projections import MATCHER_POLL_MS
from ncii_hashmatch.read_models.schema import split_hashes
from ncii_hashmatch.tokens import Tokens, match_uuid

IDS = uuid.UUID("9b8f6c2e-41d7-4a5b-8e3f-7d2c1b0a9e86")


class HashmatchSettings(BaseSettings):
    """``NCII_HASHMATCH_*``. Replicas sharing one PostgreSQL all run the bank's projections
    (one of them wins each batch); every replica's matcher follows the bank, nudged by its own
    projections and polling for what the others applied."""

    model_config = SettingsConfigDict(env_prefix="NCII_HASHMATCH_", extra="ignore")
    poll_interval_ms: int = Field(default=MATCHER_POLL_MS, ge=10, le=5000)
    sighting_window_seconds: int = Field(
        default=domain.SIGHTING_WINDOW_SECONDS,
        ge=60,
        le=86_400,
        description="sightings of one hash by one platform within this window make one "
        "MatchFound and, when the window closes, one SightingsCounted (decision 24)",
    )
    feed_window_s: int = Field(default=300, ge=0, le=86400)
    """The delta feed releases case hashes every this many seconds, mixed (decision 26)."""
    feed_window_cap: int = Field(default=10_000, ge=100, le=1_000_000)
    """At most this many case changes in one release window (the order is sorted per page)."""


@dataclass(frozen=True)
class FeedSettings:
    window_s: int
    window_cap: int


class NotFoundError(Exception):
    """Not there, or not visible to this principal: callers cannot tell which."""


class NoMatchError(Exception):
    """A sighting whose hash matches nothing in the bank now."""


def _cause(principal: Principal, correlation: str) -> Cause:
    return Cause(actor=principal.actor, correlation_id=correlation, causation_id=correlation)


@dataclass(frozen=True)
class RecordedMatch:
    hit: Hit
    match_id: str


@dataclass(frozen=True)
class ImportResult:
    import_id: str
    chunks: int
    written: int


@dataclass(frozen=True)
class HashmatchApp:
    """The application state of one process, and its commands (routes reach it through
    ``Depends(app_of(HashmatchApp))``)."""

    engine: AsyncEngine
    store: EventStore
    ref_store: EventStore
    """The reference stream's store: banks, imported lists, the negative bank."""
    matcher: Matcher
    tokens: Tokens
    outbox: OutboxPublisher
    counter: sightings.SightingCounter
    feed: FeedSettings
    sighting_window: int = domain.SIGHTING_WINDOW_SECONDS
    clock: Callable[[], float] = field(default=time.time)
    """The server's clock (seconds since the epoch): which sighting window a sighting is in, and
    where the feed's release windows stand."""

    def _derived(self, *parts: str) -> str:
        return str(derived_uuid(IDS, *parts))

    def _event_id(self, principal: Principal, key: str | None, *parts: str) -> str:
        if key is None:
            return str(uuid7())
        return self._derived(principal.principal_id, key, *parts)

    # -- banks ---------------------------------------------------------------------------------

    async def configure_bank(
        self,
        name: str,
        settings: domain.BankSettings,
        principal: Principal,
        idempotency_key: str | None,
        programme: Programme | None = None,
    ) -> domain.BankSettings:
        """Record the bank's settings. ``programme``: asked for a new list bank (None: adults,
        or what the bank has); an existing bank's programme never changes (BankRuleError)."""
        ref = AggregateRef(REFERENCE_CASE, "bank", name)
        # the bank's own log first (the read model may not have applied its last settings
        # yet), then the read model (a list bank created by an import has no settings event)
        configured = [
            r.event
            for r in await self.ref_store.load(ref, decrypt=False)
            if isinstance(r.event, BankConfigured)
        ]
        current = (
            configured[-1].programme
            if configured
            else await queries.bank_programme(self.engine, name)
        )
        settings = replace(settings, programme=domain.bank_programme(name, current, programme))
        event = domain.bank_configured(name, settings)
        if configured and configured[-1] == event:
            return settings  # the same settings again (a retry without a key): no news
        event_id = self._event_id(principal, idempotency_key, "bank", name)
        await append_once(self.ref_store, ref, event, event_id, _cause(principal, event_id))
        return settings

    async def set_platform_programmes(
        self,
        platform: str,
        programmes: Sequence[Programme],
        principal: Principal,
        idempotency_key: str | None,
    ) -> PlatformProgrammesChanged:
        """Record a platform's whole subscription (decision 39). The same subscription again
        records nothing: the aggregate's last event already says it."""
        aggregate = str(derived_uuid(IDS, "platform_programmes", platform))
        ref = AggregateRef(REFERENCE_CASE, "platform_programmes", aggregate)
        event = domain.platform_programmes(platform, programmes)

        def decide(history: list[RecordedEvent]) -> PlatformProgrammesChanged | None:
            last = history[-1].event if history else None
            if isinstance(last, PlatformProgrammesChanged) and last == event:
                return None
            return event

        key = idempotency_key or uuid7().hex
        event_id = self._derived(principal.principal_id, key, "programmes", platform)
        await append_decided(self.ref_store, ref, decide, event_id, _cause(principal, event_id))
        return event

    async def import_list(
        self,
        bank: str,
        parsed: domain.ParsedList,
        mode: ImportMode,
        principal: Principal,
        idempotency_key: str | None,
    ) -> ImportResult:
        """Append the list in chunks of 5,000 to one ``hash_list`` aggregate. A retry with the
        same Idempotency-Key continues where a crashed attempt stopped."""
        if idempotency_key is not None:
            import_id = self._derived(principal.principal_id, idempotency_key, "import", bank)
        else:
            import_id = str(uuid7())
        ref = AggregateRef(REFERENCE_CASE, "hash_list", import_id)
        if mode == "add" and not parsed.hashes:
            return ImportResult(import_id, 0, 0)
        cause = _cause(principal, import_id)
        written = 0
        events = domain.list_chunks(import_id, bank, mode, parsed)
        for attempt in range(CONFLICT_ATTEMPTS):
            # a twin with the same key may be appending the same chunks: continue after it
            history = await self.ref_store.load(ref, decrypt=False)
            done = {r.envelope.event_id for r in history}
            version = Version.of(history)
            try:
                for event in events:
                    event_id = self._derived(import_id, "chunk", str(event.chunk))
                    if event_id in done:
                        continue
                    recorded = await self.ref_store.append(
                        ref, [event], expected=version, cause=cause, event_ids=[event_id]
                    )
                    version = Version(recorded[-1].seq, recorded[-1].envelope.hash)
                    written += 1
                break
            except ConcurrencyError:
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                await after_conflict(attempt)
        return ImportResult(import_id, len(events), written)

    # -- the platform exchange ------------------------------------------------------------------

    async def report_sighting(
        self, principal: Principal, query: Query, url: str, seen_at: str
    ) -> tuple[str, list[RecordedMatch]]:
        """Verify the hash matches the bank now, then for each matched entry: the first
        sighting by this platform in the current window is recorded as the window's MatchFound
        on the matched case's stream (or the reference stream for imported-list entries);
        every sighting adds to the window's tally, which becomes one SightingsCounted when the
        window closes (``sightings``). ``sighting_id`` names this report; the log keeps one
        MatchFound per platform, entry and window, whatever the url and seen_at."""
        programmes, _ = await queries.platform_programmes(self.engine, principal.organisation)
        hits = (await self.matcher.lookup([query], programmes))[0]
        if not hits:
            raise NoMatchError
        org = principal.organisation
        window = domain.SightingWindow.at(self.clock(), self.sighting_window)
        sighting_id = self._derived(
            "sighting", org, query.algorithm, *query.values, *query.frames, url, seen_at
        )
        recorded: list[RecordedMatch] = []
        for hit in hits:
            match_id = self.tokens.match_id(org, hit.entry_key)
            case_id = domain.owning_case(hit.kind, hit.case_id)
            store, ref = self._match_ref(case_id, org, hit.entry_key)
            tally = await sightings.tally(self.engine, ref.aggregate_id, window)
            if domain.records_match_found(tally):
                event = domain.match_found(
                    match_id=match_id,
                    sighting_id=sighting_id,
                    bank=hit.bank,
                    entry_key=hit.entry_key,
                    algorithm=hit.algorithm,
                    distance=hit.distance,
                    rotated=hit.rotated,
                    query_match_percent=hit.query_match_percent,
                    compared_match_percent=hit.compared_match_percent,
                    platform=org,
                    seen_at=seen_at,
                    url=url,
                    from_case=case_id is not None,
                )
                event_id = sightings.match_found_id(ref.aggregate_id, window)
                try:
                    await append_once(store, ref, event, event_id, _cause(principal, sighting_id))
                except CaseErasedError:
                    continue  # erased in between: its hashes are leaving matching anyway
            await sightings.count(
                self.engine,
                match_uuid=ref.aggregate_id,
                window=window,
                stream="c" if case_id is not None else "r",
                case_id=ref.case_id,
                match_id=match_id,
                entry_key=hit.entry_key,
                platform=org,
                seen_at=seen_at,
            )
            recorded.append(RecordedMatch(hit, match_id))
        if not recorded:
            raise NoMatchError
        return sighting_id, recorded

    def _match_ref(
        self, case_id: str | None, platform: str, entry_key: str
    ) -> tuple[EventStore, AggregateRef]:
        aggregate_id = match_uuid(platform, entry_key)
        if case_id is not None:
            return self.store, AggregateRef(case_id, "match", aggregate_id)
        return self.ref_store, AggregateRef(REFERENCE_CASE, "match", aggregate_id)

    async def _entry(self, entry_key: str) -> Any:
        row = await queries.entry(self.engine, entry_key)
        if row is None:
            raise NotFoundError
        return row

    async def feedback(
        self,
        principal: Principal,
        match_id: str,
        verdict: Verdict,
        content: tuple[str, str] | None,
        idempotency_key: str | None,
    ) -> str:
        entry_key = self.tokens.entry_for(match_id, principal.organisation)
        if entry_key is None:
            raise NotFoundError
        entry = await self._entry(entry_key)
        domain.check_report(self.compare_content(entry, content))
        case_id = domain.owning_case(entry.kind, entry.case_id)
        store, ref = self._match_ref(case_id, principal.organisation, entry_key)
        event_id = self._event_id(principal, idempotency_key, "feedback", match_id)

        def decide(history: list[RecordedEvent]) -> MatchFeedbackReceived | None:
            current = domain.current_verdict(r.event for r in history)
            return domain.match_feedback(
                match_id, entry_key, verdict, principal.organisation, content, current
            )

        await append_decided(store, ref, decide, event_id, _cause(principal, event_id))
        return event_id

    def compare_content(
        self, entry: Any, content: tuple[str | None, str | None] | None
    ) -> domain.ContentComparison:
        """A reported content against a banked entry's row (``algorithm``, ``value``,
        ``aliases``, ``frames``, ``bank``), at the bank's current threshold."""
        if content is None:
            return domain.NOT_COMPARED
        if entry.algorithm == "vpdq":
            values = split_hashes(entry.frames)
        else:
            values = [entry.value, *split_hashes(entry.aliases)] if entry.value else []
        threshold = self.matcher.banks.get(entry.bank, domain.DEFAULT_SETTINGS).pdq_threshold
        return domain.compare_reported_content(
            entry.algorithm, values, content[0], content[1], threshold
        )

    async def confirm_false_positive(
        self,
        principal: Principal,
        match_id: str,
        target: FalsePositiveTarget,
        near_reviewed: bool = False,
    ) -> FalsePositiveConfirmed:
        opened = self.tokens.open(match_id)
        if opened is None:
            raise NotFoundError
        entry = await self._entry(opened[1])
        match = None if target == "banked_hash" else await queries.match(self.engine, match_id)
        negative = domain.negative_hash(
            target,
            entry_algorithm=entry.algorithm,
            entry_value=entry.value,
            match_verdict=match.verdict if match is not None else None,
            content_algorithm=match.content_algorithm if match is not None else None,
            content_value=match.content_value if match is not None else None,
        )
        if match is not None:
            comparison = self.compare_content(entry, (match.content_algorithm, match.content_value))
            domain.check_reported_content(comparison, near_reviewed)
        negative_id = self._derived("negative", match_id, target, *negative)
        event = domain.false_positive_confirmed(
            negative_id, match_id, str(entry.entry_key), str(entry.bank), target, negative
        )
        ref = AggregateRef(REFERENCE_CASE, "negative_bank", negative_id)
        event_id = self._derived(negative_id, "confirmed")
        recorded = await append_once(
            self.ref_store, ref, event, event_id, _cause(principal, negative_id)
        )
        assert isinstance(recorded.event, FalsePositiveConfirmed)
        return recorded.event


async def build(
    runtime: ServiceRuntime[HashmatchApp],
    settings: HashmatchSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> HashmatchApp:
    """Hashmatch's application state (the spec's app factory)."""
    settings = settings or HashmatchSettings()
    return HashmatchApp(
        engine=runtime.engine,
        store=runtime.store,
        ref_store=runtime.ref_store,
        matcher=Matcher(runtime.engine, poll_interval=settings.poll_interval_ms / 1000),
        tokens=Tokens.from_master(runtime.master),
        outbox=OutboxPublisher(
            runtime.engine, runtime.store, runtime.ref_store, registry=runtime.registry
        ),
        counter=sightings.SightingCounter(
            runtime.engine, runtime.store, runtime.ref_store, clock=clock
        ),
        sighting_window=settings.sighting_window_seconds,
        clock=clock,
        feed=FeedSettings(settings.feed_window_s, settings.feed_window_cap),
    )


def workers(app: HashmatchApp) -> Sequence[Worker]:
    """What runs beside the projections: the matcher follows the bank, the outbox publishes,
    the counter records closed sighting windows."""
    return (app.matcher, app.outbox, app.counter)
