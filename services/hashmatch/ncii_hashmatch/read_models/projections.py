"""How the log's events become the bank (``schema``): two projections, because the facts live
in two streams. They share their tables, so they are rebuilt together, as ``ncii projections
rebuild --service hashmatch`` does. ``BankProjection`` follows the cases' stream (hashes
submitted, cases withdrawn or erased, matches of case hashes); ``BankReferenceProjection``
follows the reference stream (bank settings, imported lists, the negative bank, matches of
imported-list entries). Each stream's changes commit in stream order, which is what the
per-stream cursors rely on. What the bank decides to record (HashesBanked, HashesWithdrawn) goes
to the outbox in the same transaction (``ncii_hashmatch.outbox``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

from ncii_contracts.hashmatch import (
    BankConfigured,
    BankedEntry,
    FalsePositiveConfirmed,
    HashesBanked,
    HashesWithdrawn,
    HashListImported,
    MatchFeedbackReceived,
    MatchFound,
    PlatformProgrammesChanged,
    Programme,
    SightingsCounted,
    SkippedHash,
    WithdrawalReason,
)
from ncii_contracts.intake import CaseErased, CaseWithdrawn, ConsentsChanged, HashesSubmitted
from ncii_events.db import upsert
from ncii_events.envelope import utc_now
from ncii_events.ids import derived_uuid
from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from ncii_events.stream import CASES, REFERENCE, StreamSpec
from sqlalchemy import Connection, MetaData, case, insert, or_, select, tuple_, update

from ncii_hashmatch import domain
from ncii_hashmatch.outbox import write_outbox
from ncii_hashmatch.read_models.schema import (
    BANKS,
    CHANGES,
    CLOSED_CASES,
    ENTRIES,
    MATCHES,
    METADATA,
    NEGATIVES,
    PLATFORM_PROGRAMMES,
    in_chunks,
)
from ncii_hashmatch.tokens import match_uuid

_IDS = uuid.UUID("3f1b2a4c-6d5e-4f70-8a91-b2c3d4e5f607")
MATCHER_POLL_MS = 100
"""How often each matcher polls the bank for changes made by other processes."""


def entry_key_for(source_event_id: str, index: int) -> str:
    return str(derived_uuid(_IDS, source_event_id, "entry", str(index)))


def outbox_event_id(source_event_id: str, *parts: str) -> str:
    return str(derived_uuid(_IDS, source_event_id, "outbox", *parts))


class _Changes:
    """Collects one event's bank changes and their keys (``stream_seq << 24 | n``)."""

    def __init__(self, stream: str, event: RecordedEvent) -> None:
        self.stream = stream
        self.seq = event.seq
        self.at = utc_now()
        self.rows: list[dict[str, Any]] = []

    def add(
        self, kind: str, *, entry_key: str | None = None, negative_id: str | None = None
    ) -> None:
        key = domain.change_key(self.seq, len(self.rows))
        self.rows.append(
            {
                "stream": self.stream,
                "key": key,
                "kind": kind,
                "entry_key": entry_key,
                "negative_id": negative_id,
                "at": self.at,
                "mix": domain.feed_mix(self.stream, key, entry_key),
            }
        )

    def flush(self, conn: Connection) -> None:
        if self.rows:
            conn.execute(insert(CHANGES), self.rows)
            self.rows = []


def _ensure_bank(
    conn: Connection,
    name: str,
    kind: str,
    organisation: str | None,
    programme: Programme = "adults",
) -> None:
    if conn.execute(select(BANKS.c.name).where(BANKS.c.name == name)).first() is not None:
        return
    s = domain.DEFAULT_SETTINGS
    conn.execute(
        insert(BANKS).values(
            name=name,
            kind=kind,
            organisation=organisation,
            programme=domain.case_bank_programme(name) or programme,
            enabled=s.enabled,
            pdq_threshold=s.pdq_threshold,
            match_dihedral=s.match_dihedral,
            vpdq_query_match_percent=s.vpdq_query_match_percent,
            vpdq_compared_match_percent=s.vpdq_compared_match_percent,
            updated_at=utc_now(),
        )
    )


def _negatives_among(conn: Connection, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for part in in_chunks(list(pairs)):
        rows = conn.execute(
            select(NEGATIVES.c.algorithm, NEGATIVES.c.value).where(
                tuple_(NEGATIVES.c.algorithm, NEGATIVES.c.value).in_(list(part))
            )
        )
        found.update((r[0], r[1]) for r in rows)
    return found


def _retire(
    conn: Connection,
    changes: _Changes,
    rows: Sequence[Any],
    *,
    state: str,
    keep_listed: bool = False,
) -> list[str]:
    """Take entries out of matching (and of the feed unless ``keep_listed``). Returns the keys
    of entries that were matchable until now."""
    was_live: list[str] = []
    keys: list[str] = []
    for row in rows:
        unlist = row.listed and not keep_listed
        if not row.live and not unlist:
            continue
        keys.append(row.entry_key)
        if row.live:
            was_live.append(row.entry_key)
        changes.add("remove" if unlist else "unmatch", entry_key=row.entry_key)
    for part in in_chunks(keys):
        values: dict[str, Any] = {"live": False, "removed_at": changes.at}
        if not keep_listed:
            values["listed"] = False
        conn.execute(
            update(ENTRIES)
            .where(ENTRIES.c.entry_key.in_(list(part)), ENTRIES.c.live.is_(True))
            .values(state=state, **values)
        )
        if not keep_listed:
            conn.execute(
                update(ENTRIES).where(ENTRIES.c.entry_key.in_(list(part))).values(listed=False)
            )
    return was_live


def _forget_hashes(conn: Connection, case_id: str) -> None:
    """Overwrite the hash values of an erased case's entries (all of them, withdrawn ones too):
    what stays (entry key, algorithm, state, times) links no image to the case. ``ident``
    becomes the entry key, unique and meaningless, so the row keeps its NOT NULL identity."""
    conn.execute(
        update(ENTRIES)
        .where(ENTRIES.c.case_id == case_id)
        .values(
            ident=ENTRIES.c.entry_key,
            value=None,
            aliases=None,
            frames=None,
            quality=None,
        )
    )


MatchEvent = MatchFound | SightingsCounted | MatchFeedbackReceived


def _record_match(conn: Connection, ev: MatchEvent, at: str) -> None:
    row = conn.execute(select(MATCHES).where(MATCHES.c.match_id == ev.match_id)).first()
    if row is None:
        conn.execute(
            insert(MATCHES).values(
                match_id=ev.match_id,
                match_uuid=match_uuid(ev.platform, ev.entry_key),
                platform=ev.platform,
                entry_key=ev.entry_key,
                sightings=0,
                fp_confirmed=False,
            )
        )
    if isinstance(ev, MatchFound):
        conn.execute(
            update(MATCHES)
            .where(MATCHES.c.match_id == ev.match_id)
            .values(
                sightings=MATCHES.c.sightings + domain.sightings_added(ev), last_seen_at=ev.seen_at
            )
        )
    elif isinstance(ev, SightingsCounted):
        # the window's first sighting was its MatchFound, counted above
        conn.execute(
            update(MATCHES)
            .where(MATCHES.c.match_id == ev.match_id)
            .values(
                sightings=MATCHES.c.sightings + domain.sightings_added(ev),
                last_seen_at=case(
                    (MATCHES.c.last_seen_at > ev.last_seen_at, MATCHES.c.last_seen_at),
                    else_=ev.last_seen_at,
                ),
            )
        )
    else:
        conn.execute(
            update(MATCHES)
            .where(MATCHES.c.match_id == ev.match_id)
            .values(
                verdict=ev.verdict,
                verdict_at=at,
                content_algorithm=ev.content_algorithm,
                content_value=ev.content_value,
            )
        )


class BankProjection(Projection):
    """Case hashes: banked when submitted, out of matching at once when the case is withdrawn
    or erased (and never banked afterwards, whatever order the facts arrive in)."""

    name: ClassVar[str] = "bank"
    metadata: ClassVar[MetaData] = METADATA
    decrypt: ClassVar[bool] = True
    """Submitted hashes are personal (encrypted with the case's key): banked in clear while
    the case lives, overwritten when it is erased (``_closed``)."""
    subjects: ClassVar[tuple[str, ...]] = (
        f"{CASES.prefix}.*.case.*.HashesSubmitted",
        f"{CASES.prefix}.*.case.*.CaseWithdrawn",
        f"{CASES.prefix}.*.case.*.CaseErased",
        f"{CASES.prefix}.*.case.*.ConsentsChanged",
        f"{CASES.prefix}.*.banking.*.HashesWithdrawn",
        f"{CASES.prefix}.*.match.>",
    )

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if isinstance(ev, HashesSubmitted):
            self._submitted(conn, event, ev)
        elif isinstance(ev, CaseWithdrawn | CaseErased):
            self._closed(conn, event, "withdrawn" if isinstance(ev, CaseWithdrawn) else "erased")
        elif isinstance(ev, ConsentsChanged) and ev.share_hashes is False:
            # the victim withdrew her consent to sharing hashes: what is banked leaves matching
            # and the feed; the case goes on, and hashes submitted after she gives it again
            # are banked as usual (intake refuses them until then)
            self._retire_case(conn, event, "withdrawn", "share_hashes_consent_withdrawn")
        elif isinstance(ev, HashesWithdrawn):
            changes = _Changes("c", event)
            rows: list[Any] = []
            for part in in_chunks(ev.entry_keys):
                rows += conn.execute(
                    select(ENTRIES.c.entry_key, ENTRIES.c.live, ENTRIES.c.listed).where(
                        ENTRIES.c.entry_key.in_(list(part))
                    )
                ).all()
            _retire(conn, changes, rows, state=domain.retired_state(ev.reason))
            changes.flush(conn)
        elif isinstance(ev, MatchEvent):
            _record_match(conn, ev, event.envelope.occurred_at)

    def _submitted(self, conn: Connection, event: RecordedEvent, ev: HashesSubmitted) -> None:
        case_id = event.case_id
        if ev.hashes is None:
            return  # the case was erased (a rebuild after it): its hashes cannot be read again
        closed = conn.execute(
            select(CLOSED_CASES.c.case_id).where(CLOSED_CASES.c.case_id == case_id)
        ).first()
        if closed is not None:
            return  # withdrawn or erased before this was applied: never matchable
        # a minor's hashes go to her partner's child-protection bank, an adult's to its
        # adults' bank (decision 39)
        programme = domain.programme_of_case(ev.age_group)
        bank = domain.case_bank_name(ev.organisation, programme)
        _ensure_bank(conn, bank, "case", ev.organisation, programme)
        already = {
            (r[0], r[1])
            for r in conn.execute(
                select(ENTRIES.c.algorithm, ENTRIES.c.ident).where(
                    ENTRIES.c.case_id == case_id, ENTRIES.c.live.is_(True)
                )
            )
        }
        pairs = [(h.algorithm, h.value.lower()) for h in ev.hashes if h.value]
        accepted, skipped = domain.plan_banking(
            ev.hashes, already=already, negatives=_negatives_among(conn, pairs)
        )
        changes = _Changes("c", event)
        now = changes.at
        rows: list[dict[str, Any]] = []
        banked: list[BankedEntry] = []
        for item in accepted:
            key = entry_key_for(event.envelope.event_id, item.index)
            rows.append(
                {
                    "entry_key": key,
                    "bank": bank,
                    "kind": "case",
                    "case_id": case_id,
                    "source_id": ev.submission_id,
                    "algorithm": item.algorithm,
                    "media": item.media,
                    "ident": item.identity[1],
                    "value": item.value,
                    "aliases": "".join(item.aliases) or None,
                    "frames": "".join(item.frames) or None,
                    "quality": item.quality,
                    "live": True,
                    "listed": True,
                    "state": "live",
                    "added_at": now,
                    "removed_at": None,
                }
            )
            changes.add("add", entry_key=key)
            banked.append(
                BankedEntry(
                    entry_key=key,
                    index=item.index,
                    algorithm=item.algorithm,
                    dihedral=bool(item.aliases),
                )
            )
        if rows:
            conn.execute(insert(ENTRIES), rows)
        changes.flush(conn)
        write_outbox(
            conn,
            event,
            event_id=outbox_event_id(event.envelope.event_id, "HashesBanked"),
            stream="c",
            case_id=case_id,
            aggregate_id=case_id,
            event=HashesBanked(
                submission_id=ev.submission_id,
                bank=bank,
                entries=banked,
                skipped=[SkippedHash(index=s.index, reason=s.reason) for s in skipped],
                matchable_from=now,
                poll_interval_ms=MATCHER_POLL_MS,
            ),
        )

    def _closed(self, conn: Connection, event: RecordedEvent, state: str) -> None:
        case_id = event.case_id
        upsert(
            conn,
            CLOSED_CASES,
            {"case_id": case_id, "state": state, "at": event.envelope.occurred_at},
            ["case_id"],
        )
        self._retire_case(
            conn, event, state, "case_withdrawn" if state == "withdrawn" else "case_erased"
        )

    def _retire_case(
        self, conn: Connection, event: RecordedEvent, state: str, reason: WithdrawalReason
    ) -> None:
        """Every matchable or listed entry of the case out, and HashesWithdrawn said once."""
        case_id = event.case_id
        rows = conn.execute(
            select(ENTRIES.c.entry_key, ENTRIES.c.live, ENTRIES.c.listed).where(
                ENTRIES.c.case_id == case_id,
                or_(ENTRIES.c.live.is_(True), ENTRIES.c.listed.is_(True)),
            )
        ).all()
        changes = _Changes("c", event)
        was_live = _retire(conn, changes, rows, state=state)
        changes.flush(conn)
        if state == "erased":
            _forget_hashes(conn, case_id)
        if was_live:
            write_outbox(
                conn,
                event,
                event_id=outbox_event_id(event.envelope.event_id, "HashesWithdrawn"),
                stream="c",
                case_id=case_id,
                aggregate_id=case_id,
                event=HashesWithdrawn(
                    reason=reason,
                    entry_keys=was_live,
                    unmatchable_from=changes.at,
                ),
            )


class BankReferenceProjection(Projection):
    """Bank settings, imported lists, the negative bank, matches of imported-list entries."""

    name: ClassVar[str] = "bank_reference"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = REFERENCE
    subjects: ClassVar[tuple[str, ...]] = (
        f"{REFERENCE.prefix}.bank.>",
        f"{REFERENCE.prefix}.hash_list.>",
        f"{REFERENCE.prefix}.negative_bank.>",
        f"{REFERENCE.prefix}.platform_programmes.>",
        f"{REFERENCE.prefix}.match.>",
    )

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        ev = event.event
        if isinstance(ev, BankConfigured):
            self._configured(conn, event, ev)
        elif isinstance(ev, PlatformProgrammesChanged):
            upsert(
                conn,
                PLATFORM_PROGRAMMES,
                {
                    "platform": ev.platform,
                    "programmes": ",".join(ev.programmes),
                    "updated_at": event.envelope.occurred_at,
                },
                ["platform"],
            )
        elif isinstance(ev, HashListImported):
            self._imported(conn, event, ev)
        elif isinstance(ev, FalsePositiveConfirmed):
            self._false_positive(conn, event, ev)
        elif isinstance(ev, MatchEvent):
            _record_match(conn, ev, event.envelope.occurred_at)

    def _configured(self, conn: Connection, event: RecordedEvent, ev: BankConfigured) -> None:
        kind = "case" if domain.is_case_bank(ev.bank) else "list"
        _ensure_bank(conn, ev.bank, kind, None, ev.programme)
        conn.execute(
            update(BANKS)
            .where(BANKS.c.name == ev.bank)
            .values(
                programme=domain.case_bank_programme(ev.bank) or ev.programme,
                enabled=ev.enabled,
                pdq_threshold=ev.pdq_threshold,
                match_dihedral=ev.match_dihedral,
                vpdq_query_match_percent=ev.vpdq_query_match_percent,
                vpdq_compared_match_percent=ev.vpdq_compared_match_percent,
                updated_at=event.envelope.occurred_at,
            )
        )
        changes = _Changes("r", event)
        changes.add("settings")
        changes.flush(conn)

    def _imported(self, conn: Connection, event: RecordedEvent, ev: HashListImported) -> None:
        _ensure_bank(conn, ev.bank, "list", None)
        changes = _Changes("r", event)
        values = [(h.algorithm, h.value) for h in ev.hashes]
        present: set[tuple[str, str]] = set()
        for part in in_chunks(values):
            present.update(
                (r[0], r[1])
                for r in conn.execute(
                    select(ENTRIES.c.algorithm, ENTRIES.c.ident).where(
                        ENTRIES.c.bank == ev.bank,
                        ENTRIES.c.live.is_(True),
                        tuple_(ENTRIES.c.algorithm, ENTRIES.c.ident).in_(list(part)),
                    )
                )
            )
        if ev.mode == "replace" and present:
            for part in in_chunks(sorted(present)):
                conn.execute(
                    update(ENTRIES)
                    .where(
                        ENTRIES.c.bank == ev.bank,
                        ENTRIES.c.live.is_(True),
                        tuple_(ENTRIES.c.algorithm, ENTRIES.c.ident).in_(list(part)),
                    )
                    .values(source_id=ev.import_id)
                )
        negative = _negatives_among(conn, values)
        rows: list[dict[str, Any]] = []
        for index, h in enumerate(ev.hashes):
            if (h.algorithm, h.value) in present or (h.algorithm, h.value) in negative:
                continue
            present.add((h.algorithm, h.value))
            key = entry_key_for(event.envelope.event_id, index)
            rows.append(
                {
                    "entry_key": key,
                    "bank": ev.bank,
                    "kind": "list",
                    "case_id": None,
                    "source_id": ev.import_id,
                    "algorithm": h.algorithm,
                    "media": "image" if h.algorithm == "pdq" else "video",
                    "ident": h.value,
                    "value": h.value,
                    "aliases": None,
                    "frames": None,
                    "quality": None,
                    "live": True,
                    "listed": True,
                    "state": "live",
                    "added_at": changes.at,
                    "removed_at": None,
                }
            )
            changes.add("add", entry_key=key)
        if rows:
            conn.execute(insert(ENTRIES), rows)
        if ev.mode == "replace" and ev.chunk == ev.chunks - 1:
            stale = conn.execute(
                select(ENTRIES.c.entry_key, ENTRIES.c.live, ENTRIES.c.listed).where(
                    ENTRIES.c.bank == ev.bank,
                    ENTRIES.c.live.is_(True),
                    ENTRIES.c.source_id != ev.import_id,
                )
            ).all()
            _retire(conn, changes, stale, state="replaced")
        changes.flush(conn)

    def _false_positive(
        self, conn: Connection, event: RecordedEvent, ev: FalsePositiveConfirmed
    ) -> None:
        changes = _Changes("r", event)
        exists = conn.execute(
            select(NEGATIVES.c.neg_no).where(NEGATIVES.c.negative_id == ev.negative_id)
        ).first()
        if exists is None:
            conn.execute(
                insert(NEGATIVES).values(
                    negative_id=ev.negative_id,
                    algorithm=ev.algorithm,
                    value=ev.value,
                    target=ev.target,
                    match_id=ev.match_id,
                    added_at=changes.at,
                )
            )
            changes.add("negative", negative_id=ev.negative_id)
        conn.execute(
            update(MATCHES).where(MATCHES.c.match_id == ev.match_id).values(fp_confirmed=True)
        )
        same = conn.execute(
            select(
                ENTRIES.c.entry_key,
                ENTRIES.c.live,
                ENTRIES.c.listed,
                ENTRIES.c.kind,
                ENTRIES.c.case_id,
            ).where(
                ENTRIES.c.algorithm == ev.algorithm,
                ENTRIES.c.value == ev.value,
                ENTRIES.c.live.is_(True),
            )
        ).all()
        _retire(conn, changes, [r for r in same if r.kind == "list"], state="negative")
        by_case: dict[str, list[Any]] = {}
        for r in same:
            if r.kind == "case" and r.case_id:
                by_case.setdefault(r.case_id, []).append(r)
        for case_id, case_rows in sorted(by_case.items()):
            # Out of matching now; out of the feed when HashesWithdrawn comes back on the
            # case's stream, so the feed's removal follows its addition in one stream's order.
            was_live = _retire(conn, changes, case_rows, state="negative", keep_listed=True)
            write_outbox(
                conn,
                event,
                event_id=outbox_event_id(event.envelope.event_id, case_id, "HashesWithdrawn"),
                stream="c",
                case_id=case_id,
                aggregate_id=case_id,
                event=HashesWithdrawn(
                    reason="false_positive", entry_keys=was_live, unmatchable_from=changes.at
                ),
            )
        changes.flush(conn)
