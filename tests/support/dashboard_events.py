"""A small history for the dashboard's tests (unit, integration, e2e, browser): two registered
platforms and four cases whose counts are known, one of them erased; each test gives its own
case ids (``scenario(prefix)``) so runs on the suite's shared log do not mix."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashmatch import MatchFound, SightingsCounted
from ncii_contracts.intake import (
    CaseClosed,
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    Channel,
    Consents,
    LocationReported,
)
from ncii_contracts.referral import (
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
    ReferralCompleted,
    ReferralOffered,
)
from ncii_contracts.takedown import (
    ContentRemoved,
    NoticeSent,
    PlatformRegistered,
    TakedownCancelled,
    TakedownOpened,
    TakedownOverdue,
    TakedownRefused,
    TakedownRequested,
)
from ncii_events.envelope import Actor
from ncii_events.ids import new_case_reference
from ncii_events.store import AggregateRef, Cause, EventStore
from ncii_events.stream import REFERENCE_CASE

CAUSE = Cause(
    actor=Actor(organisation="centre", principal="dashboard-test", role="caseworker"),
    correlation_id="dashboard-test",
    causation_id="dashboard-test",
)
SECRET = "LINE-handle-of-the-victim"
"""A personal value put in personal fields: it must never reach a dashboard table or answer."""


@dataclass(frozen=True)
class Step:
    case_id: str
    aggregate: str
    aggregate_id: str
    event: DomainEvent
    occurred_at: str


def _opened(organisation: str, age_group: str, channel: str, category: str) -> CaseOpened:
    return CaseOpened(
        organisation=organisation,
        reference=new_case_reference(),  # intake's read model holds each once
        age_group=age_group,
        harm_categories=[category],
        spread_status="spread",
        channels=[Channel(kind="messaging_app", platform=SECRET)],
        intake_channel=channel,
        learned_at="2026-11-01T00:00:00.000000Z",
        consents=Consents(takedown=True, share_hashes=True, referral=True),
        pseudonym=SECRET,
    )


def platforms(prefix: str) -> list[PlatformRegistered]:
    return [
        PlatformRegistered(
            platform_id=f"{prefix}-p1",
            name=f"FaceSpace {prefix}",
            kind="social",
            jurisdiction="TW",
            regimes=["tw"],
            channel="webhook",
            webhook_url="https://example.invalid/hook",
            api_organisation=f"plat-facespace-{prefix}",
        ),
        PlatformRegistered(
            platform_id=f"{prefix}-p2",
            name=f"VidHub {prefix}",
            kind="video",
            jurisdiction="US",
            regimes=["us_take_it_down"],
            channel="email",
            email="abuse@example.invalid",
        ),
    ]


def _request(takedown: str, platform: str, regime: str, hours: int) -> TakedownRequested:
    return TakedownRequested(
        takedown_id=takedown,
        notice_id=f"n-{takedown}",
        platform_id=platform,
        channel="webhook",
        regimes=[regime],
        deadline_regime=regime,
        deadline_hours=hours,
        legal=True,
    )


def _sent(takedown: str, sent: str, deadline: str) -> NoticeSent:
    return NoticeSent(
        takedown_id=takedown,
        notice_id=f"n-{takedown}",
        channel="webhook",
        sent_at=sent,
        deadline_at=deadline,
    )


def _opened_takedown(takedown: str, platform: str) -> TakedownOpened:
    return TakedownOpened(
        takedown_id=takedown, source="location", source_event_id="e", platform_id=platform
    )


def case_ids(prefix: str) -> dict[str, str]:
    """The scenario's four cases (``a`` open, ``b`` closed, ``c`` erased, ``d`` withdrawn)."""
    return {k: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{k}")) for k in "abcd"}


def scenario(prefix: str) -> list[Step]:
    """The history, in log order. Expected counts: ``EXPECTED`` (with the prefix's names)."""
    ids = case_ids(prefix)
    a, b, c, d = ids["a"], ids["b"], ids["c"], ids["d"]
    p1, p2 = f"{prefix}-p1", f"{prefix}-p2"
    ta1, ta2, tb1, tc1 = (f"{prefix}-{x}" for x in ("ta1", "ta2", "tb1", "tc1"))
    steps: list[tuple[str, str, str, DomainEvent, str]] = [
        (
            a,
            "case",
            a,
            _opened("ngo-a", "adult", "phone", "distribution_without_consent_319_3"),
            "2026-10-30T09:00:00.000000Z",
        ),
        (
            b,
            "case",
            b,
            _opened("ngo-b", "minor", "web_form", "child_sexual_exploitation"),
            "2026-11-01T09:00:00.000000Z",
        ),
        (
            c,
            "case",
            c,
            _opened("ngo-a", "adult", "phone", "threat_sextortion"),
            "2026-11-01T10:00:00.000000Z",
        ),
        (
            d,
            "case",
            d,
            _opened("ngo-a", "minor", "partner_api", "child_sexual_exploitation"),
            "2026-11-02T09:00:00.000000Z",
        ),
        (
            a,
            "case",
            a,
            LocationReported(
                location_id=f"{prefix}-la1",
                channel_kind="social_platform",
                platform=SECRET,
                url=f"https://x.invalid/{SECRET}",
            ),
            "2026-11-01T00:00:00.000000Z",
        ),
        (a, "takedown", ta1, _opened_takedown(ta1, p1), "2026-11-01T00:00:01.000000Z"),
        (a, "takedown", ta1, _request(ta1, p1, "tw", 72), "2026-11-01T00:00:02.000000Z"),
        (
            a,
            "takedown",
            ta1,
            _sent(ta1, "2026-11-01T00:00:00.000000Z", "2026-11-04T00:00:00.000000Z"),
            "2026-11-01T00:00:03.000000Z",
        ),
        (
            a,
            "takedown",
            ta1,
            ContentRemoved(
                takedown_id=ta1, notice_id=f"n-{ta1}", removed_at="2026-11-01T10:00:00.000000Z"
            ),
            "2026-11-01T10:00:00.000000Z",
        ),
        (a, "takedown", ta2, _opened_takedown(ta2, p2), "2026-11-02T00:00:00.000000Z"),
        (
            a,
            "takedown",
            ta2,
            _request(ta2, p2, "us_take_it_down", 48),
            "2026-11-02T00:00:01.000000Z",
        ),
        (
            a,
            "takedown",
            ta2,
            _sent(ta2, "2026-11-02T00:00:00.000000Z", "2026-11-04T00:00:00.000000Z"),
            "2026-11-02T00:00:02.000000Z",
        ),
        (
            a,
            "takedown",
            ta2,
            TakedownOverdue(
                takedown_id=ta2,
                notice_id=f"n-{ta2}",
                deadline_at="2026-11-04T00:00:00.000000Z",
                deadline_regime="us_take_it_down",
                legal=True,
                detected_at="2026-11-04T00:00:01.000000Z",
            ),
            "2026-11-04T00:00:01.000000Z",
        ),
        (
            a,
            "referral",
            f"{prefix}-ra1",
            ReferralOffered(
                referral_id=f"{prefix}-ra1",
                partner_id="partner-1",
                partner_organisation="partner-x",
                service="counselling",
                needs=["emotional_support"],
                consent_basis="victim_consent",
                age_group="adult",
                pseudonym=SECRET,
            ),
            "2026-11-02T01:00:00.000000Z",
        ),
        (
            a,
            "referral",
            f"{prefix}-ra1",
            ReferralCompleted(
                referral_id=f"{prefix}-ra1", completed_at="2026-11-09T00:00:00.000000Z"
            ),
            "2026-11-09T00:00:00.000000Z",
        ),
        (
            a,
            "match",
            f"{prefix}-ma1",
            MatchFound(
                match_id=f"{prefix}-ma1",
                sighting_id="s1",
                bank="b",
                entry_key="k",
                algorithm="pdq",
                distance=3,
                platform=f"plat-facespace-{prefix}",
                seen_at="2026-11-05T00:00:00.000000Z",
                url=f"https://x.invalid/{SECRET}",
            ),
            "2026-11-05T00:00:00.000000Z",
        ),
        (
            a,
            "match",
            f"{prefix}-ma1",
            SightingsCounted(
                match_id=f"{prefix}-ma1",
                entry_key="k",
                platform=f"plat-facespace-{prefix}",
                window_start="2026-11-05T00:00:00.000000Z",
                window_end="2026-11-05T01:00:00.000000Z",
                sightings=5,
                first_seen_at="2026-11-05T00:00:00.000000Z",
                last_seen_at="2026-11-05T00:30:00.000000Z",
            ),
            "2026-11-05T01:00:01.000000Z",
        ),
        (
            b,
            "mandatory_report",
            f"{prefix}-rb",
            MandatoryReportDue(
                report_id=f"{prefix}-rb",
                learned_at="2026-11-01T00:00:00.000000Z",
                due_at="2026-11-02T00:00:00.000000Z",
            ),
            "2026-11-01T09:00:01.000000Z",
        ),
        (
            b,
            "mandatory_report",
            f"{prefix}-rb",
            MandatoryReportOverdue(
                report_id=f"{prefix}-rb",
                due_at="2026-11-02T00:00:00.000000Z",
                detected_at="2026-11-02T00:00:01.000000Z",
            ),
            "2026-11-02T00:00:01.000000Z",
        ),
        (b, "takedown", tb1, _opened_takedown(tb1, p1), "2026-11-03T00:00:00.000000Z"),
        (b, "takedown", tb1, _request(tb1, p1, "tw", 24), "2026-11-03T00:00:01.000000Z"),
        (
            b,
            "takedown",
            tb1,
            _sent(tb1, "2026-11-03T00:00:00.000000Z", "2026-11-04T00:00:00.000000Z"),
            "2026-11-03T00:00:02.000000Z",
        ),
        (
            b,
            "takedown",
            tb1,
            TakedownRefused(
                takedown_id=tb1,
                notice_id=f"n-{tb1}",
                refused_at="2026-11-05T00:00:00.000000Z",
                reason="not_sexual_content",
            ),
            "2026-11-05T00:00:00.000000Z",
        ),
        (b, "case", b, CaseClosed(reason="resolved"), "2026-11-20T00:00:00.000000Z"),
        (c, "takedown", tc1, _opened_takedown(tc1, p1), "2026-11-01T11:00:00.000000Z"),
        (
            c,
            "referral",
            f"{prefix}-rc1",
            ReferralOffered(
                referral_id=f"{prefix}-rc1",
                partner_id="partner-1",
                partner_organisation="partner-x",
                service="legal_advice",
                needs=["legal_advice"],
                consent_basis="victim_consent",
                age_group="adult",
            ),
            "2026-11-01T12:00:00.000000Z",
        ),
        (
            c,
            "match",
            f"{prefix}-mc1",
            MatchFound(
                match_id=f"{prefix}-mc1",
                sighting_id="s2",
                bank="b",
                entry_key="k2",
                algorithm="pdq",
                distance=1,
                platform=f"plat-facespace-{prefix}",
                seen_at="2026-11-06T00:00:00.000000Z",
            ),
            "2026-11-06T00:00:00.000000Z",
        ),
        (
            c,
            "case",
            c,
            CaseErased(erased_by="caseworker", reason="victim_request"),
            "2026-11-07T00:00:00.000000Z",
        ),
        (
            c,
            "takedown",
            tc1,
            TakedownCancelled(takedown_id=tc1, reason="case_erased"),
            "2026-11-07T00:00:01.000000Z",
        ),
        (
            d,
            "mandatory_report",
            f"{prefix}-rd",
            MandatoryReportDue(
                report_id=f"{prefix}-rd",
                learned_at="2026-11-02T00:00:00.000000Z",
                due_at="2026-11-03T00:00:00.000000Z",
            ),
            "2026-11-02T09:00:01.000000Z",
        ),
        (
            d,
            "mandatory_report",
            f"{prefix}-rd",
            MandatoryReportSubmitted(
                report_id=f"{prefix}-rd", filed_at="2026-11-02T12:00:00.000000Z", late=False
            ),
            "2026-11-02T12:00:00.000000Z",
        ),
        (d, "case", d, CaseWithdrawn(withdrawn_by="victim"), "2026-11-10T00:00:00.000000Z"),
    ]
    return [Step(*s) for s in steps]


EXPECTED_CASES: dict[str, Any] = {
    "total": 3,
    "by_status": {"open": 1, "closed": 1, "withdrawn": 1},
    "erased": 1,
    "open_by_age_group": {"adult": 1},
}
"""What the dashboard shows of one scenario alone (on a fresh database)."""


async def append_scenario(store: EventStore, ref_store: EventStore, prefix: str) -> None:
    """The scenario into the log: its platforms on the reference stream, then its steps
    (each aggregate's events with the version it stands at)."""
    for platform in platforms(prefix):
        ref = AggregateRef(REFERENCE_CASE, "platform", platform.platform_id)
        await ref_store.append(
            ref, [platform], expected=await _version(ref_store, ref), cause=CAUSE
        )
    await append_steps(store, scenario(prefix))


async def append_steps(store: EventStore, steps: list[Step]) -> None:
    for step in steps:
        ref = AggregateRef(step.case_id, step.aggregate, step.aggregate_id)
        await store.append(ref, [step.event], expected=await _version(store, ref), cause=CAUSE)


async def _version(store: EventStore, ref: AggregateRef) -> Any:
    from ncii_events.model import Version

    return Version.of(await store.load(ref, decrypt=False))


async def more_removals(store: EventStore, prefix: str) -> None:
    """After the scenario: one case more (open, adult) and a third FaceSpace takedown of case
    ``a``, removed (FaceSpace: 3 takedowns, 2 removed)."""
    a = case_ids(prefix)["a"]
    e = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/e"))
    ta3, p1 = f"{prefix}-ta3", f"{prefix}-p1"
    await append_steps(
        store,
        [
            Step(e, "case", e, _opened("ngo-a", "adult", "phone", "threat_sextortion"), _T),
            Step(a, "takedown", ta3, _opened_takedown(ta3, p1), _T),
            Step(a, "takedown", ta3, _request(ta3, p1, "tw", 72), _T),
            Step(a, "takedown", ta3, _sent(ta3, _T, "2026-12-04T00:00:00.000000Z"), _T),
            Step(
                a,
                "takedown",
                ta3,
                ContentRemoved(
                    takedown_id=ta3, notice_id=f"n-{ta3}", removed_at="2026-12-01T20:00:00.000000Z"
                ),
                _T,
            ),
        ],
    )


_T = "2026-12-01T00:00:00.000000Z"
