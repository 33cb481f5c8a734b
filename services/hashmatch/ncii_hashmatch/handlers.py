"""Hashmatch's commands (bank settings, imports, sightings, verdicts, false positives) and the
outbox publisher that appends the events the bank decided on (HashesBanked, HashesWithdrawn).

Every event id is derived from what identifies the command (the sighting itself, the
Idempotency-Key, the import), so a retried command or a second replica writes each event once:
the store skips ids already in the aggregate and the log drops duplicate message ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import (
    BankConfigured,
    FalsePositiveConfirmed,
    FalsePositiveTarget,
    HashListImported,
    ImportMode,
    ListedHash,
    MatchFeedbackReceived,
    MatchFound,
    Verdict,
)
from ncii_events.auth import Principal
from ncii_events.crypto import CaseErasedError
from ncii_events.db import write_transaction
from ncii_events.envelope import Actor, utc_now
from ncii_events.ids import derived_uuid, uuid7
from ncii_events.registry import EventRegistry
from ncii_events.store import (
    AggregateRef,
    Cause,
    ConcurrencyError,
    EventStore,
    RecordedEvent,
    Version,
)
from ncii_events.stream import REFERENCE_CASE
from ncii_events.worker import LoopWorker
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ncii_hashmatch import domain, projections
from ncii_hashmatch.matcher import Hit, Matcher, Query
from ncii_hashmatch.tokens import Tokens, match_uuid

log = logging.getLogger("ncii.hashmatch")
IDS = uuid.UUID("9b8f6c2e-41d7-4a5b-8e3f-7d2c1b0a9e86")
SERVICE_ACTOR = Actor(organisation="ncii", principal="hashmatch", role="service")
APPEND_ATTEMPTS = 5


class NotFoundError(Exception):
    """Not there, or not visible to this principal: callers cannot tell which."""


class NoMatchError(Exception):
    """A sighting whose hash matches nothing in the bank now."""


async def append_once(
    store: EventStore, ref: AggregateRef, event: DomainEvent, event_id: str, cause: Cause
) -> RecordedEvent:
    """Append ``event`` under ``event_id`` unless the aggregate already holds it; reload and
    retry when another writer got in between."""
    for attempt in range(APPEND_ATTEMPTS):
        history = await store.load(ref, decrypt=False)
        for recorded in history:
            if recorded.envelope.event_id == event_id:
                return recorded
        try:
            written = await store.append(
                ref, [event], expected=Version.of(history), cause=cause, event_ids=[event_id]
            )
            return written[0]
        except ConcurrencyError:
            if attempt == APPEND_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _cause(principal: Principal, correlation: str) -> Cause:
    return Cause(actor=principal.actor, correlation_id=correlation, causation_id=correlation)


@dataclass(frozen=True)
class RecordedMatch:
    hit: Hit
    match_id: str
    event_id: str


@dataclass(frozen=True)
class ImportResult:
    import_id: str
    chunks: int
    written: int


class HashmatchHandlers:
    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        ref_store: EventStore,
        matcher: Matcher,
        tokens: Tokens,
    ) -> None:
        self.engine = engine
        self.store = store
        self.ref_store = ref_store
        self.matcher = matcher
        self.tokens = tokens

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
    ) -> None:
        event = BankConfigured(
            bank=name,
            enabled=settings.enabled,
            pdq_threshold=settings.pdq_threshold,
            match_dihedral=settings.match_dihedral,
            vpdq_query_match_percent=settings.vpdq_query_match_percent,
            vpdq_compared_match_percent=settings.vpdq_compared_match_percent,
        )
        ref = AggregateRef(REFERENCE_CASE, "bank", name)
        event_id = self._event_id(principal, idempotency_key, "bank", name)
        await append_once(self.ref_store, ref, event, event_id, _cause(principal, event_id))

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
        parts = domain.chunks(parsed.hashes)
        if mode == "add" and not parsed.hashes:
            return ImportResult(import_id, 0, 0)
        history = await self.ref_store.load(ref, decrypt=False)
        done = {r.envelope.event_id for r in history}
        version = Version.of(history)
        cause = _cause(principal, import_id)
        written = 0
        for n, part in enumerate(parts):
            event_id = self._derived(import_id, "chunk", str(n))
            if event_id in done:
                continue
            event = HashListImported(
                import_id=import_id,
                bank=bank,
                mode=mode,
                chunk=n,
                chunks=len(parts),
                hashes=[ListedHash(algorithm=h.algorithm, value=h.value) for h in part],
            )
            recorded = await self.ref_store.append(
                ref, [event], expected=version, cause=cause, event_ids=[event_id]
            )
            version = Version(recorded[-1].seq, recorded[-1].envelope.hash)
            written += 1
        return ImportResult(import_id, len(parts), written)

    # -- the platform exchange ------------------------------------------------------------------

    async def report_sighting(
        self, principal: Principal, query: Query, url: str, seen_at: str
    ) -> tuple[str, list[RecordedMatch]]:
        """Verify the hash matches the bank now; record one MatchFound per matched entry on the
        matched case's stream (or the reference stream for imported-list entries)."""
        hits = (await self.matcher.lookup([query]))[0]
        if not hits:
            raise NoMatchError
        org = principal.organisation
        sighting_id = self._derived(
            "sighting", org, query.algorithm, *query.values, *query.frames, url, seen_at
        )
        recorded: list[RecordedMatch] = []
        for hit in hits:
            match_id = self.tokens.match_id(org, hit.entry_key)
            event_id = self._derived(sighting_id, hit.entry_key)
            from_case = hit.kind == "case" and hit.case_id is not None
            event = MatchFound(
                match_id=match_id,
                sighting_id=sighting_id,
                bank=hit.bank,
                entry_key=hit.entry_key,
                algorithm=hit.algorithm,
                distance=hit.distance,
                rotated=hit.rotated,
                query_match_percent=_pct(hit.query_match_percent),
                compared_match_percent=_pct(hit.compared_match_percent),
                platform=org,
                seen_at=seen_at,
                url_withheld=not from_case,
                url=url if from_case else None,
            )
            store, ref = self._match_ref(hit.case_id if from_case else None, org, hit.entry_key)
            try:
                await append_once(store, ref, event, event_id, _cause(principal, sighting_id))
            except CaseErasedError:
                continue  # erased in between: its hashes are leaving matching anyway
            recorded.append(RecordedMatch(hit, match_id, event_id))
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
        async with self.engine.connect() as conn:
            row = await conn.run_sync(projections.entry_by_key, entry_key)
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
        event = MatchFeedbackReceived(
            match_id=match_id,
            entry_key=entry_key,
            verdict=verdict,
            platform=principal.organisation,
            content_algorithm=content[0] if content else None,
            content_value=content[1] if content else None,
        )
        case_id = entry.case_id if entry.kind == "case" else None
        store, ref = self._match_ref(case_id, principal.organisation, entry_key)
        event_id = self._event_id(principal, idempotency_key, "feedback", match_id)
        await append_once(store, ref, event, event_id, _cause(principal, event_id))
        return event_id

    async def confirm_false_positive(
        self, principal: Principal, match_id: str, target: FalsePositiveTarget
    ) -> FalsePositiveConfirmed:
        opened = self.tokens.open(match_id)
        if opened is None:
            raise NotFoundError
        entry = await self._entry(opened[1])
        if target == "banked_hash":
            if entry.algorithm not in ("pdq", "md5") or not entry.value:
                raise domain.BankRuleError(
                    "only PDQ and MD5 hashes go into the negative bank; this entry is a video's "
                    "vPDQ frames"
                )
            algorithm, value = str(entry.algorithm), str(entry.value)
        else:
            async with self.engine.connect() as conn:
                match = await conn.run_sync(projections.match_row, match_id)
            if match is None or match.verdict != "false_positive" or not match.content_value:
                raise domain.BankRuleError(
                    "the platform has not reported a false positive with the hash of its "
                    "content for this match; confirm the banked hash instead, or wait for it"
                )
            algorithm, value = str(match.content_algorithm), str(match.content_value)
        negative_id = self._derived("negative", match_id, target, algorithm, value)
        event = FalsePositiveConfirmed(
            negative_id=negative_id,
            match_id=match_id,
            entry_key=str(entry.entry_key),
            bank=str(entry.bank),
            target=target,
            algorithm=algorithm,
            value=value,
        )
        ref = AggregateRef(REFERENCE_CASE, "negative_bank", negative_id)
        event_id = self._derived(negative_id, "confirmed")
        recorded = await append_once(
            self.ref_store, ref, event, event_id, _cause(principal, negative_id)
        )
        assert isinstance(recorded.event, FalsePositiveConfirmed)
        return recorded.event


def _pct(value: float | None) -> int | None:
    return None if value is None else int(value)


# -- the outbox ------------------------------------------------------------------------------------


class OutboxPublisher(LoopWorker):
    """Appends the events the bank's projections decided on (outbox rows written in their
    checkpoint's transaction), in the order they were decided. Safe with several replicas:
    event ids are derived, so each event is written once."""

    name = "outbox"

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        ref_store: EventStore,
        *,
        registry: EventRegistry,
        interval: float = 0.2,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.registry = registry
        self.stores = {"c": store, "r": ref_store}
        self.interval = interval
        self.published = 0

    async def step(self) -> int:
        return await self.publish_pending()

    async def publish_pending(self, limit: int = 200) -> int:
        outbox = projections.OUTBOX
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(outbox)
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id)
                    .limit(limit)
                )
            ).all()
        done = 0
        for row in rows:
            if self._stopping.is_set():
                break
            event_class = self.registry.event_class(row.event_type)
            event = self.registry.decode(
                row.event_type, event_class.version, json.loads(row.payload)
            )
            ref = AggregateRef(row.case_id, row.aggregate, row.aggregate_id)
            cause = Cause(SERVICE_ACTOR, row.correlation_id, row.causation_id)
            await append_once(self.stores[row.stream], ref, event, row.event_id, cause)
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    update(outbox).where(outbox.c.id == row.id).values(published_at=utc_now())
                )
            done += 1
        self.published += done
        return done

    async def pending(self) -> int:
        outbox = projections.OUTBOX
        async with self.engine.connect() as conn:
            query = select(func.count()).where(outbox.c.published_at.is_(None))
            return int((await conn.execute(query)).scalar_one())
