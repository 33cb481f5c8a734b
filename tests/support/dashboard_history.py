"""Random mixed histories for the dashboard's counts (decision 0054): cases opened, assessed,
closed, reopened, withdrawn and erased; takedowns through every end (removed, fulfilled,
refused, cancelled, also after the erasure), overdue and escalated, under a legal clock or not;
art. 7 reports due, overdue, filed late or in time; referrals through every outcome; matches
with their sighting windows and verdicts, of cases and of imported lists. Each case's events
keep their order; cases are interleaved. The same ``seed`` with another ``tag`` gives the same
history under other ids (so the same counters, each several times over)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import MatchFeedbackReceived, MatchFound, SightingsCounted
from ncii_contracts.intake import (
    CaseClosed,
    CaseErased,
    CaseOpened,
    CaseReopened,
    CaseWithdrawn,
    Consents,
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
from ncii_events.store import RecordedEvent

from tests.support.factories import recorded_case_event

CATEGORIES = ["secret_recording_319_1", "threat_sextortion", "child_sexual_exploitation"]
PLATFORM_IDS = ["hp1", "hp2", "hp3", "hp-unregistered"]
REGIMES = ["tw", "us_take_it_down", "uk"]


@dataclass(frozen=True)
class History:
    platforms: list[tuple[str | None, DomainEvent, str]]
    """The reference stream's events: the registry and imported lists' sightings."""
    cases: list[tuple[str, DomainEvent, str]]
    """(case id, event, when) in log order."""


def _at(rng: random.Random) -> str:
    seconds = rng.randrange(0, 400 * 86400)  # 2026 and the start of 2027: months and years
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(1767225600 + seconds))


def _platforms() -> list[tuple[str | None, DomainEvent, str]]:
    out: list[tuple[str | None, DomainEvent, str]] = []
    for i, (pid, jurisdiction) in enumerate(zip(PLATFORM_IDS[:3], ["TW", "US", "TW"], strict=True)):
        out.append(
            (
                None,
                PlatformRegistered(
                    platform_id=pid,
                    name=f"History platform {i}",
                    kind="social",
                    jurisdiction=jurisdiction,
                    regimes=["tw"],
                    channel="email",
                    email="abuse@example.invalid",
                    api_organisation=f"hist-org-{i}",
                ),
                "2026-01-01T00:00:00.000000Z",
            )
        )
    return out


def _takedown(rng: random.Random, tid: str) -> list[DomainEvent]:
    platform = rng.choice([*PLATFORM_IDS, None])
    events: list[DomainEvent] = [
        TakedownOpened(
            takedown_id=tid,
            source="location",
            source_event_id="e",
            platform_id=platform,
            purpose=rng.choice(["removal", "removal", "freeze_account", "preserve_data"]),
        )
    ]
    if platform is None and rng.random() < 0.5:
        events.append(TakedownPlatformAssigned(takedown_id=tid, platform_id="hp2"))
    if rng.random() < 0.85:
        regime = rng.choice(REGIMES)
        events.append(
            TakedownRequested(
                takedown_id=tid,
                notice_id=tid,
                platform_id=platform or "hp2",
                channel="email",
                regimes=[regime],
                deadline_regime=regime,
                deadline_hours=24,
                legal=rng.random() < 0.7,
            )
        )
        sent = _at(rng)
        if rng.random() < 0.9:
            deadline = f"{sent[:11]}23:59:59.000000Z"
            events.append(
                NoticeSent(
                    takedown_id=tid,
                    notice_id=tid,
                    channel="email",
                    sent_at=sent,
                    deadline_at=deadline,
                )
            )
            if rng.random() < 0.3:
                events.append(
                    TakedownAcknowledged(takedown_id=tid, notice_id=tid, acknowledged_at=sent)
                )
            if rng.random() < 0.3:
                events.append(
                    TakedownOverdue(
                        takedown_id=tid,
                        notice_id=tid,
                        deadline_at=deadline,
                        deadline_regime=regime,
                        legal=True,
                        detected_at=deadline,
                    )
                )
                if rng.random() < 0.5:
                    events.append(
                        TakedownEscalated(takedown_id=tid, notice_id=tid, escalated_at=deadline)
                    )
            # an answer the same day (in time or not), or days later
            end = f"{sent[:11]}{rng.randrange(24):02d}:{rng.randrange(60):02d}:00.000000Z"
            if rng.random() < 0.3:
                end = _at(rng)
            roll = rng.random()
            if roll < 0.5:
                events.append(ContentRemoved(takedown_id=tid, notice_id=tid, removed_at=end))
            elif roll < 0.6:
                events.append(RequestFulfilled(takedown_id=tid, notice_id=tid, fulfilled_at=end))
            elif roll < 0.75:
                reason = rng.choice(["not_sexual_content", "other", "consent_claimed"])
                events.append(
                    TakedownRefused(takedown_id=tid, notice_id=tid, refused_at=end, reason=reason)
                )
    if rng.random() < 0.15:
        events.append(TakedownCancelled(takedown_id=tid, reason="case_withdrawn"))
    return events


def _case(rng: random.Random, tag: str, n: int) -> tuple[str, list[DomainEvent], bool]:
    """A case's events; whether it ends erased."""
    case = f"{tag}-case-{n}"
    events: list[DomainEvent] = [
        CaseOpened(
            organisation=rng.choice(["ngo-a", "ngo-b", "ngo-c"]),
            reference="ABCD-EFGH-JKLM",
            age_group=rng.choice(["adult", "minor"]),
            harm_categories=rng.sample(CATEGORIES, k=rng.randint(1, 2)),
            spread_status=rng.choice(["spread", "threatened"]),
            intake_channel=rng.choice(["phone", "web_form", "partner_api"]),
            learned_at="2026-01-01T00:00:00.000000Z",
            consents=Consents(takedown=True, share_hashes=True, referral=True),
        )
    ]
    parts: list[list[DomainEvent]] = []
    for k in range(rng.randint(0, 2)):
        kind = rng.choice(["social_platform", "messaging_app", "forum"])
        parts.append([LocationReported(location_id=f"{case}-l{k}", channel_kind=kind)])
    parts.append(
        [
            LegalAssessmentRecorded(
                categories=rng.sample(CATEGORIES, k=rng.randint(1, 3)),
                how_obtained="unknown",
                depicts=["other_sexual_acts"],
            )
        ]
    )
    parts.append([SpreadStatusChanged(spread_status="spread", cause="by_hand")])
    for k in range(rng.randint(0, 3)):
        parts.append(_takedown(rng, f"{case}-t{k}"))
    if rng.random() < 0.4:
        rid, when = f"{case}-rep", _at(rng)
        if rng.random() < 0.5:
            report = [
                MandatoryReportDue(report_id=rid, learned_at=when, due_at=when),
                MandatoryReportOverdue(report_id=rid, due_at=when, detected_at=when),
                MandatoryReportSubmitted(report_id=rid, filed_at=_at(rng), late=True),
            ]
        else:
            report = [
                SuspectReportDue(report_id=rid, learned_at=when, due_at=when),
                SuspectReportFiled(report_id=rid, filed_at=_at(rng), late=False),
                SuspectReportOverdue(report_id=rid, due_at=when, detected_at=when),
            ]
        parts.append(report[: rng.randint(1, 3)])
    for k in range(rng.randint(0, 2)):
        rid, when = f"{case}-ref{k}", _at(rng)
        outcome = rng.choice(
            [
                None,
                ReferralAccepted(referral_id=rid, accepted_at=when),
                ReferralDeclined(referral_id=rid, declined_at=when, reason="no_capacity"),
                ReferralCompleted(referral_id=rid, completed_at=when),
                ReferralRevoked(referral_id=rid, revoked_at=when, reason="victim_request"),
            ]
        )
        offered: list[DomainEvent] = [
            ReferralOffered(
                referral_id=rid,
                partner_id="partner-1",
                partner_organisation=rng.choice(["partner-x", "partner-y"]),
                service=rng.choice(["counselling", "legal_advice"]),
                needs=["emotional_support"],
                consent_basis="victim_consent",
                age_group="adult",
            )
        ]
        parts.append(offered + ([outcome] if outcome is not None else []))
    for k in range(rng.randint(0, 2)):
        parts.append(_match(rng, f"{case}-m{k}"))
    events.extend(_interleave(rng, parts))  # the case's aggregates, each in its order
    lifecycle = [CaseClosed(reason="resolved"), CaseReopened(cause="by_hand")]
    if rng.random() < 0.5:
        events.insert(rng.randint(1, len(events)), lifecycle[0])
        if rng.random() < 0.5:
            events.append(lifecycle[1])
    if rng.random() < 0.15:
        events.append(CaseWithdrawn(withdrawn_by="victim"))
    erased = rng.random() < 0.2
    if erased:
        events.insert(rng.randint(1, len(events)), CaseErased(erased_by="caseworker"))
        events.append(TakedownCancelled(takedown_id=f"{case}-t0", reason="case_erased"))
    return case, events, erased


def _match(rng: random.Random, mid: str) -> list[DomainEvent]:
    platform = rng.choice(["hist-org-0", "hist-org-1", "hist-org-9"])
    seen = _at(rng)
    events: list[DomainEvent] = [
        MatchFound(
            match_id=mid,
            sighting_id=mid,
            bank="b",
            entry_key="k",
            algorithm="pdq",
            distance=2,
            platform=platform,
            seen_at=seen,
        )
    ]
    for w in range(rng.randint(0, 2)):
        events.append(
            SightingsCounted(
                match_id=mid,
                entry_key="k",
                platform=platform,
                window_start=f"{seen[:11]}0{w}:00:00.000000Z",
                window_end=f"{seen[:11]}0{w}:59:00.000000Z",
                sightings=rng.randint(1, 9),
                first_seen_at=seen,
                last_seen_at=seen,
            )
        )
    if rng.random() < 0.5:
        verdict = rng.choice(["blocked", "not_blocked", "false_positive"])
        events.append(
            MatchFeedbackReceived(match_id=mid, entry_key="k", verdict=verdict, platform=platform)
        )
    return events


def _interleave(rng: random.Random, parts: list[list[DomainEvent]]) -> list[DomainEvent]:
    queues = [list(p) for p in parts if p]
    out: list[DomainEvent] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


def history(seed: int, tag: str, cases: int) -> History:
    rng = random.Random(seed)
    platforms = _platforms()
    scripts: list[list[tuple[str, DomainEvent, str]]] = []
    for n in range(cases):
        case, events, _ = _case(rng, tag, n)
        opened = _at(rng)
        scripts.append([(case, e, opened if i == 0 else _at(rng)) for i, e in enumerate(events)])
    for k in range(4):  # imported lists' sightings: no case
        for event in _match(rng, f"{tag}-list-m{k}"):
            platforms.append((None, event, _at(rng)))
    platforms.append(
        (
            None,
            PlatformUpdated(
                platform_id="hp3",
                name="History platform 2",
                kind="social",
                jurisdiction="GB",
                regimes=["uk"],
                channel="email",
                email="abuse@example.invalid",
            ),
            "2026-06-01T00:00:00.000000Z",
        )
    )
    order = [i for i, s in enumerate(scripts) for _ in s]
    rng.shuffle(order)
    out: list[tuple[str, DomainEvent, str]] = []
    for i in order:
        out.append(scripts[i].pop(0))
    return History(platforms, out)


def recorded(items: list[tuple[str, DomainEvent, str]], start: int) -> list[RecordedEvent]:
    return [
        recorded_case_event(start + i, event, case_id=case_id, occurred_at=at)
        for i, (case_id, event, at) in enumerate(items)
    ]


def recorded_platforms(items: list[tuple[str | None, DomainEvent, str]]) -> list[RecordedEvent]:
    return [
        recorded_case_event(i + 1, event, case_id="_", occurred_at=at)
        for i, (_, event, at) in enumerate(items)
    ]
