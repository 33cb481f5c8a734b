"""How the log becomes the dashboard's tables (decision 0047).

Two projections, each with its own SQL checkpoint:

* ``dashboard_platforms`` follows the reference stream: the platform registry, and the
  sightings of imported lists' entries (they belong to no case).
* ``dashboard_cases`` follows the cases' stream: intake's case facts, takedown's, referral's and
  hashmatch's events of each case.

Neither decrypts (``decrypt = False``): a personal field reads as None here, and only clear,
closed fields are stored. A case's rows exist only while its ``dash_cases`` row does: an event of
a case the dashboard does not hold (erased, so deleted) writes nothing, and ``CaseErased``
deletes every row of the case and counts the erasure in its month. The fold reads event times
only (no clock), so a rebuild writes exactly what the live projection wrote. It also keeps the
counts the views show (``counts``, decision 0054), moved in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from ncii_contracts import ALL_EVENTS
from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import MatchFeedbackReceived, MatchFound, SightingsCounted
from ncii_contracts.intake import (
    CaseClosed,
    CaseErased,
    CaseOpened,
    CaseReopened,
    CaseWithdrawn,
    LegalAssessmentRecorded,
    LocationReported,
    SpreadStatusChanged,
)
from ncii_contracts.referral import (
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralOffered,
    ReferralRevoked,
    SuspectReportDue,
    SuspectReportFiled,
    SuspectReportOverdue,
)
from ncii_contracts.takedown import (
    ContentRemoved,
    NoticeSent,
    PlatformRegistered,
    PlatformUpdated,
    RequestFulfilled,
    TakedownAcknowledged,
    TakedownCancelled,
    TakedownEscalated,
    TakedownOpened,
    TakedownOverdue,
    TakedownPlatformAssigned,
    TakedownRefused,
    TakedownRequested,
)
from ncii_events.db import upsert
from ncii_events.projection import Projection
from ncii_events.store import RecordedEvent
from ncii_events.stream import CASES, REFERENCE, StreamSpec
from sqlalchemy import Connection, MetaData, Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ncii_dashboard.read_models import counts
from ncii_dashboard.read_models.schema import CASE_CATEGORIES as CATEGORIES
from ncii_dashboard.read_models.schema import (
    CASE_TABLES,
    ERASURES,
    LOCATIONS,
    MATCHES,
    METADATA,
    PLATFORMS,
    REFERRALS,
    REPORTS,
    SIGHTING_WINDOWS,
    TAKEDOWNS,
)
from ncii_dashboard.read_models.schema import CASES as CASE_ROWS

ENDED = ("removed", "fulfilled", "refused", "cancelled")
"""A takedown's final states: nothing later changes its status."""
REFERRAL_STATUS: dict[type, str] = {
    ReferralAccepted: "accepted",
    ReferralDeclined: "declined",
    ReferralCompleted: "completed",
    ReferralRevoked: "revoked",
}
CASE_EVENTS = (
    CaseOpened,
    CaseClosed,
    CaseReopened,
    CaseWithdrawn,
    CaseErased,
    LegalAssessmentRecorded,
    LocationReported,
    SpreadStatusChanged,
)
TAKEDOWN_EVENTS = (
    TakedownOpened,
    TakedownPlatformAssigned,
    TakedownRequested,
    NoticeSent,
    TakedownAcknowledged,
    ContentRemoved,
    RequestFulfilled,
    TakedownRefused,
    TakedownOverdue,
    TakedownEscalated,
    TakedownCancelled,
)
REPORT_EVENTS = (
    MandatoryReportDue,
    MandatoryReportSubmitted,
    MandatoryReportOverdue,
    SuspectReportDue,
    SuspectReportFiled,
    SuspectReportOverdue,
)
REFERRAL_EVENTS = (
    ReferralOffered,
    ReferralAccepted,
    ReferralDeclined,
    ReferralCompleted,
    ReferralRevoked,
)
MATCH_EVENTS = (MatchFound, SightingsCounted, MatchFeedbackReceived)
WHOLE_AGGREGATES = ("takedown", "match", "referral", "mandatory_report")
"""Aggregates of the cases stream read whole (one subject each, the most frequent first: the
runner tries a stream's subjects in order for every event); their other events are decoded,
never decrypted, and ignored (evidence records, follow-ups, counsellors' notes, overrides)."""
CASE_STREAM = (*CASE_EVENTS, *TAKEDOWN_EVENTS, *REPORT_EVENTS, *REFERRAL_EVENTS, *MATCH_EVENTS)
IGNORED = tuple(
    e
    for e in ALL_EVENTS
    if e.aggregate in WHOLE_AGGREGATES and CASES in e.streams and e not in CASE_STREAM
)
"""The whole aggregates' other events, from the published contracts (a service adding one to
such an aggregate must not make it a dead letter here)."""
REFERENCE_STREAM = (PlatformRegistered, PlatformUpdated, *MATCH_EVENTS)
CONSUMES: tuple[type[DomainEvent], ...] = tuple(
    dict.fromkeys((*CASE_STREAM, *IGNORED, *REFERENCE_STREAM))
)
"""Every event type the dashboard's subjects take in (its registry must decode each)."""


def hours_between(start: str | None, end: str | None) -> float | None:
    """Hours from ``start`` to ``end`` (RFC 3339 times), or None when either is missing."""
    if not start or not end:
        return None
    return (_parse(end) - _parse(start)).total_seconds() / 3600


def not_after(at: str, deadline: str | None) -> bool | None:
    """Whether ``at`` is no later than ``deadline`` (None: no deadline ran)."""
    if not deadline:
        return None
    return _parse(at) <= _parse(deadline)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Fold:
    """One batch folded in memory, then written in a few statements (a statement per event
    costs far more than the fold): the rows the batch touches are read first, one query per
    table; inserts and updates go out as ``executemany``; an erased case's rows are deleted.

    ``apply`` of one event is a batch of one, so a batch and one event at a time write the same.
    The counts move by each touched row's contributions after the batch minus before it.
    """

    def __init__(self, conn: Connection, events: Sequence[RecordedEvent], cases: bool) -> None:
        self.conn = conn
        wanted: dict[str, set[str]] = {name: set() for name in KEYS}
        for recorded in events:
            ev = recorded.event
            if cases:
                wanted["dash_cases"].add(recorded.case_id)
            for name, attribute in _keys_of(type(ev)):
                value = getattr(ev, attribute)
                if isinstance(value, str):
                    wanted[name].add(value)
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.before: dict[str, dict[str, dict[str, Any]]] = {}
        """Each row as the batch found it: the counts move by after minus before."""
        for name, keys in wanted.items():
            table, pk = TABLES[name], TABLES[name].c[KEYS[name]]
            found: dict[str, dict[str, Any]] = {}
            for chunk in _chunks(sorted(keys)):
                for row in conn.execute(select(table).where(pk.in_(chunk))).mappings():
                    found[row[pk.name]] = dict(row)
            self.rows[name] = found
            self.before[name] = {k: dict(row) for k, row in found.items()}
        self.new: dict[str, set[str]] = {name: set() for name in KEYS}
        self.dirty: dict[str, set[str]] = {name: set() for name in KEYS}
        self.windows: dict[tuple[str, str], dict[str, Any]] = {}
        self.window_sums: dict[str, dict[str, int]] = {}
        matches = sorted(wanted["dash_matches"])
        for chunk in _chunks(matches):
            query = select(SIGHTING_WINDOWS).where(SIGHTING_WINDOWS.c.match_id.in_(chunk))
            for row in conn.execute(query).mappings():
                self.window_sums.setdefault(row["match_id"], {})[row["window_start"]] = row[
                    "sightings"
                ]
        self.categories: dict[str, list[str]] = {}
        self.erased: set[str] = set()
        self.erasures: dict[str, int] = {}

    # -- rows ---------------------------------------------------------------------------------

    def get(self, name: str, key: str) -> dict[str, Any] | None:
        return self.rows[name].get(key)

    def add(self, name: str, row: dict[str, Any]) -> None:
        key = row[KEYS[name]]
        if key in self.rows[name]:
            return  # written once (a replayed id)
        self.rows[name][key] = row
        self.new[name].add(key)

    def change(self, name: str, key: str, **values: Any) -> None:
        row = self.rows[name].get(key)
        if row is None:
            return
        row.update(values)
        self.dirty[name].add(key)

    def held(self, case_id: str) -> bool:
        return case_id in self.rows["dash_cases"] and case_id not in self.erased

    def erase(self, case_id: str, at: str) -> None:
        self.erased.add(case_id)
        self.rows["dash_cases"].pop(case_id, None)
        self.categories.pop(case_id, None)
        self.erasures[at[:7]] = self.erasures.get(at[:7], 0) + 1

    # -- sightings ----------------------------------------------------------------------------

    def match(self, ev: object, case_id: str | None) -> None:
        """A sighting event of a case (``case_id``) or of an imported list (None)."""
        if isinstance(ev, MatchFound):
            self.add(
                "dash_matches",
                {
                    "match_id": ev.match_id,
                    "case_id": case_id,
                    "platform": ev.platform,
                    "seen_at": ev.seen_at,
                    "sightings": max(1, sum(self.window_sums.get(ev.match_id, {}).values())),
                    "verdict": None,
                },
            )
        elif isinstance(ev, SightingsCounted):
            self.windows[(ev.match_id, ev.window_start)] = {
                "match_id": ev.match_id,
                "window_start": ev.window_start,
                "case_id": case_id,
                "sightings": ev.sightings,
            }
            sums = self.window_sums.setdefault(ev.match_id, {})
            sums[ev.window_start] = ev.sightings
            # a match's sightings: its windows' counts (each includes the window's first
            # sighting, the one MatchFound records), or 1 while no window has closed
            self.change("dash_matches", ev.match_id, sightings=max(1, sum(sums.values())))
        elif isinstance(ev, MatchFeedbackReceived):
            self.change("dash_matches", ev.match_id, verdict=ev.verdict)

    # -- the writes ---------------------------------------------------------------------------

    def count(self) -> counts.Tally:
        """How the batch moves the counts (decision 0054): a row's contributions after the
        batch minus before it. An erased case's rows are read back as stored (what they
        contributed) before they are deleted; rows of a case erased in the batch count for
        nothing after it."""
        conn, tally, gone = self.conn, counts.Tally(), self.erased
        held_before = sorted(c for c in gone if c in self.before["dash_cases"])
        if held_before:
            stored = counts.categories_of(conn, held_before)
            for case_id in held_before:
                tally.add(counts.case(self.before["dash_cases"][case_id], stored[case_id]), -1)
            for chunk in _chunks(held_before):
                for table in counts.CASE_ROW_TABLES:
                    contribute = counts.CONTRIBUTIONS[table.name]
                    query = select(table).where(table.c.case_id.in_(chunk))
                    for stored_row in conn.execute(query).mappings():
                        tally.add(contribute(stored_row), -1)
        for name, contribute in counts.CONTRIBUTIONS.items():
            rows, before = self.rows[name], self.before[name]
            for key in self.new[name] | self.dirty[name]:
                row = rows.get(key)
                if row is None or row.get("case_id") in gone:
                    continue
                tally.add(contribute(row))
                if key in before:
                    tally.add(contribute(before[key]), -1)
        cases = self.rows["dash_cases"]
        touched = sorted(
            c
            for c in self.new["dash_cases"] | self.dirty["dash_cases"] | set(self.categories)
            if c in cases
        )
        found = [c for c in touched if c in self.before["dash_cases"]]
        stored = counts.categories_of(conn, found) if found else {}
        for case_id in touched:
            if case_id in self.before["dash_cases"]:
                old = stored.get(case_id, [])
                tally.add(counts.case(self.before["dash_cases"][case_id], old), -1)
            else:
                old = []
            tally.add(counts.case(cases[case_id], self.categories.get(case_id, old)))
        return tally

    def write(self) -> None:
        self.count().write(self.conn)  # reads the stored rows first: before anything moves
        conn, erased = self.conn, sorted(self.erased)
        for chunk in _chunks(erased):
            for table in (*CASE_TABLES, CASE_ROWS):
                conn.execute(delete(table).where(table.c.case_id.in_(chunk)))
        gone = self.erased
        for name, table in TABLES.items():
            pk = KEYS[name]
            rows = self.rows[name]
            fresh = [rows[k] for k in sorted(self.new[name]) if k in rows]
            fresh = [r for r in fresh if r.get("case_id") not in gone]
            if fresh:
                conn.execute(insert(table), fresh)
            changed = [
                rows[k]
                for k in sorted(self.dirty[name] - self.new[name])
                if k in rows and rows[k].get("case_id") not in gone
            ]
            if changed:
                columns = [c.name for c in table.columns if c.name != pk]
                statement = (
                    update(table)
                    .where(table.c[pk] == bindparam("_key"))
                    .values({c: bindparam(c) for c in columns})
                )
                conn.execute(
                    statement, [{"_key": r[pk], **{c: r[c] for c in columns}} for r in changed]
                )
        replaced = sorted(set(self.categories) - gone)
        for chunk in _chunks(replaced):
            conn.execute(delete(CATEGORIES).where(CATEGORIES.c.case_id.in_(chunk)))
        categories = [
            {"case_id": case, "category": c} for case in replaced for c in self.categories[case]
        ]
        if categories:
            conn.execute(insert(CATEGORIES), categories)
        windows = [w for w in self.windows.values() if w["case_id"] not in gone]
        if windows:
            base = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(
                SIGHTING_WINDOWS
            )
            conn.execute(
                base.on_conflict_do_update(
                    index_elements=["match_id", "window_start"],
                    set_={"sightings": base.excluded.sightings},
                ),
                windows,
            )
        for month, n in sorted(self.erasures.items()):
            counted = conn.execute(
                update(ERASURES)
                .where(ERASURES.c.month == month)
                .values(erased=ERASURES.c.erased + n)
            )
            if counted.rowcount == 0:
                conn.execute(insert(ERASURES).values(month=month, erased=n))


TABLES: dict[str, Table] = {
    "dash_cases": CASE_ROWS,
    "dash_locations": LOCATIONS,
    "dash_takedowns": TAKEDOWNS,
    "dash_reports": REPORTS,
    "dash_referrals": REFERRALS,
    "dash_matches": MATCHES,
}
KEYS: dict[str, str] = {
    "dash_cases": "case_id",
    "dash_locations": "location_id",
    "dash_takedowns": "takedown_id",
    "dash_reports": "report_id",
    "dash_referrals": "referral_id",
    "dash_matches": "match_id",
}
"""Each table the fold keeps in memory, by the event attribute that names its row."""


_KEYS_OF: dict[type, tuple[tuple[str, str], ...]] = {}


def _keys_of(event_type: type) -> tuple[tuple[str, str], ...]:
    """The tables an event type names rows of, and by which of its fields. Asked once per
    type: a missing attribute costs pydantic an exception, a quarter of a rebuild's fold."""
    found = _KEYS_OF.get(event_type)
    if found is None:
        fields = getattr(event_type, "model_fields", {})
        found = _KEYS_OF[event_type] = tuple(
            (name, attribute)
            for name, attribute in KEYS.items()
            if name != "dash_cases" and attribute in fields
        )
    return found


def _chunks(keys: list[str], size: int = 500) -> list[list[str]]:
    return [keys[i : i + size] for i in range(0, len(keys), size)]


class PlatformsProjection(Projection):
    name: ClassVar[str] = "dashboard_platforms"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = REFERENCE
    subjects: ClassVar[tuple[str, ...]] = tuple(
        f"{REFERENCE.prefix}.{e.aggregate}.*.{e.event_type}" for e in REFERENCE_STREAM
    )

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        self.apply_batch(conn, [event])

    def apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        fold = Fold(conn, events, cases=False)
        for recorded in events:
            ev = recorded.event
            if isinstance(ev, PlatformRegistered):  # PlatformUpdated is one too
                upsert(
                    conn,
                    PLATFORMS,
                    {
                        "platform_id": ev.platform_id,
                        "name": ev.name,
                        "kind": ev.kind,
                        "jurisdiction": ev.jurisdiction,
                        "api_organisation": ev.api_organisation,
                    },
                    ["platform_id"],
                )
            elif isinstance(ev, MATCH_EVENTS):
                fold.match(ev, None)
        fold.write()


class CasesProjection(Projection):
    name: ClassVar[str] = "dashboard_cases"
    metadata: ClassVar[MetaData] = METADATA
    stream: ClassVar[StreamSpec] = CASES
    subjects: ClassVar[tuple[str, ...]] = (
        *(f"{CASES.prefix}.*.{aggregate}.>" for aggregate in WHOLE_AGGREGATES),
        *(f"{CASES.prefix}.*.case.*.{e.event_type}" for e in CASE_EVENTS),
    )

    def apply(self, conn: Connection, event: RecordedEvent) -> None:
        self.apply_batch(conn, [event])

    def apply_batch(self, conn: Connection, events: Sequence[RecordedEvent]) -> None:
        fold = Fold(conn, events, cases=True)
        for recorded in events:
            ev = recorded.event
            case_id = recorded.case_id
            at = recorded.envelope.occurred_at
            if isinstance(ev, CaseOpened):
                self._opened(fold, case_id, ev, at)
            elif not fold.held(case_id):
                continue  # erased (its rows are gone), or never opened here
            elif isinstance(ev, CASE_EVENTS):
                self._case(fold, case_id, ev, at)
            elif isinstance(ev, TAKEDOWN_EVENTS):
                self._takedown(fold, case_id, ev, at)
            elif isinstance(ev, REPORT_EVENTS):
                self._report(fold, case_id, ev)
            elif isinstance(ev, REFERRAL_EVENTS):
                self._referral(fold, case_id, ev, at)
            elif isinstance(ev, MATCH_EVENTS):
                fold.match(ev, case_id)
        fold.write()

    # -- cases ------------------------------------------------------------------------------

    def _opened(self, fold: Fold, case_id: str, ev: CaseOpened, at: str) -> None:
        if fold.get("dash_cases", case_id) is not None or case_id in fold.erased:
            return
        fold.add(
            "dash_cases",
            {
                "case_id": case_id,
                "organisation": ev.organisation,
                "age_group": ev.age_group,
                "intake_channel": ev.intake_channel,
                "spread_status": ev.spread_status,
                "status": "open",
                "opened_at": at,
                "closed_at": None,
            },
        )
        fold.categories[case_id] = list(dict.fromkeys(ev.harm_categories))

    def _case(self, fold: Fold, case_id: str, ev: Any, at: str) -> None:
        row = fold.get("dash_cases", case_id)
        assert row is not None
        if isinstance(ev, CaseErased):
            fold.erase(case_id, at)
        elif isinstance(ev, CaseWithdrawn):
            fold.change("dash_cases", case_id, status="withdrawn", closed_at=at)
        elif isinstance(ev, CaseClosed):
            if row["status"] == "open":
                fold.change("dash_cases", case_id, status="closed", closed_at=at)
        elif isinstance(ev, CaseReopened):
            if row["status"] == "closed":
                fold.change("dash_cases", case_id, status="open", closed_at=None)
        elif isinstance(ev, SpreadStatusChanged):
            fold.change("dash_cases", case_id, spread_status=ev.spread_status)
        elif isinstance(ev, LegalAssessmentRecorded):
            fold.categories[case_id] = list(dict.fromkeys(ev.categories))
        elif isinstance(ev, LocationReported):
            fold.add(
                "dash_locations",
                {
                    "location_id": ev.location_id,
                    "case_id": case_id,
                    "channel_kind": ev.channel_kind,
                    "reported_at": at,
                },
            )

    # -- takedowns --------------------------------------------------------------------------

    def _takedown(self, fold: Fold, case_id: str, ev: Any, at: str) -> None:
        takedown_id: str = ev.takedown_id
        if isinstance(ev, TakedownOpened):
            fold.add(
                "dash_takedowns",
                {
                    "takedown_id": takedown_id,
                    "case_id": case_id,
                    "source": ev.source,
                    "purpose": ev.purpose,
                    "platform_id": ev.platform_id,
                    "status": "opened",
                    "opened_at": at,
                    "sent_at": None,
                    "deadline_at": None,
                    "deadline_regime": None,
                    "legal": None,
                    "ended_at": None,
                    "in_time": None,
                    "hours_to_end": None,
                    "refusal_reason": None,
                    "overdue": False,
                    "escalated": False,
                },
            )
            return
        row = fold.get("dash_takedowns", takedown_id)
        if row is None:
            return
        open_ = row["status"] not in ENDED
        values: dict[str, Any] = {}
        if isinstance(ev, TakedownPlatformAssigned):
            values = {"platform_id": ev.platform_id}
        elif isinstance(ev, TakedownRequested):
            values = {
                "platform_id": ev.platform_id,
                "deadline_regime": ev.deadline_regime,
                "legal": ev.legal,
            }
            if open_:
                values["status"] = "requested"
        elif isinstance(ev, NoticeSent):
            values = {"sent_at": ev.sent_at, "deadline_at": ev.deadline_at}
            if open_:
                values["status"] = "sent"
        elif isinstance(ev, TakedownAcknowledged):
            if open_:
                values = {"status": "acknowledged"}
        elif isinstance(ev, (ContentRemoved, RequestFulfilled, TakedownRefused)):
            if open_:
                if isinstance(ev, ContentRemoved):
                    status, ended = "removed", ev.removed_at
                elif isinstance(ev, RequestFulfilled):
                    status, ended = "fulfilled", ev.fulfilled_at
                else:
                    status, ended = "refused", ev.refused_at
                values = {
                    "status": status,
                    "ended_at": ended,
                    "in_time": not_after(ended, row["deadline_at"]),
                    "hours_to_end": hours_between(row["sent_at"], ended),
                }
                if isinstance(ev, TakedownRefused):
                    values["refusal_reason"] = ev.reason
        elif isinstance(ev, TakedownOverdue):
            values = {"overdue": True}
        elif isinstance(ev, TakedownEscalated):
            values = {"escalated": True}
        elif isinstance(ev, TakedownCancelled) and open_:
            values = {"status": "cancelled", "ended_at": at}
        if values:
            fold.change("dash_takedowns", takedown_id, **values)

    # -- art. 7 reports ---------------------------------------------------------------------

    def _report(self, fold: Fold, case_id: str, ev: Any) -> None:
        if isinstance(ev, (MandatoryReportDue, SuspectReportDue)):
            fold.add(
                "dash_reports",
                {
                    "report_id": ev.report_id,
                    "case_id": case_id,
                    "kind": "victim_minor"
                    if isinstance(ev, MandatoryReportDue)
                    else "known_suspect",
                    "status": "due",
                    "due_at": ev.due_at,
                    "filed_at": None,
                    "late": None,
                },
            )
        elif isinstance(ev, (MandatoryReportSubmitted, SuspectReportFiled)):
            fold.change(
                "dash_reports", ev.report_id, status="filed", filed_at=ev.filed_at, late=ev.late
            )
        elif isinstance(ev, (MandatoryReportOverdue, SuspectReportOverdue)):
            row = fold.get("dash_reports", ev.report_id)
            if row is not None and row["status"] == "due":
                fold.change("dash_reports", ev.report_id, status="overdue")

    # -- referrals --------------------------------------------------------------------------

    def _referral(self, fold: Fold, case_id: str, ev: Any, at: str) -> None:
        if isinstance(ev, ReferralOffered):
            fold.add(
                "dash_referrals",
                {
                    "referral_id": ev.referral_id,
                    "case_id": case_id,
                    "partner_organisation": ev.partner_organisation,
                    "service": ev.service,
                    "status": "offered",
                    "offered_at": at,
                },
            )
        else:
            fold.change("dash_referrals", ev.referral_id, status=REFERRAL_STATUS[type(ev)])
