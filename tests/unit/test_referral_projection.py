"""Referral's read models and reactor on real SQLite, no log: what each event does to the rows
and which events it decides on (outbox rows). The publisher and the HTTP side are in
tests/integration/test_referral_reports.py and tests/e2e/test_referral.py."""

from __future__ import annotations

import json
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import (
    CaseOpened,
    Consents,
    ConsentsChanged,
    MandatoryReportFiled,
    OffenderDetailsRecorded,
)
from ncii_contracts.referral import (
    MandatoryReportDue,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralOffered,
)
from ncii_referral import domain
from ncii_referral.outbox import minor_report_id, suspect_report_id
from ncii_referral.read_models.projections import OffendersProjection, ReferralsProjection
from ncii_referral.read_models.schema import METADATA, OFFENDERS, OUTBOX, REPORTS
from sqlalchemy import Engine, create_engine, select

from tests.support.factories import recorded_case_event

CASE = "c1"


def _opened(age_group: str = "adult", referral: bool = True) -> CaseOpened:
    return CaseOpened(
        organisation="ngo",
        reference="AAAA-AAAA-AAAA",
        age_group=age_group,  # type: ignore[arg-type]
        harm_categories=["distribution_without_consent_319_3"],
        spread_status="spread",
        channels=[],
        intake_channel="phone",
        learned_at="2026-11-24T09:00:00.000000Z",
        consents=Consents(takedown=True, share_hashes=True, referral=referral),
    )


def _offered(referral_id: str, basis: str = "victim_consent") -> ReferralOffered:
    return ReferralOffered(
        referral_id=referral_id,
        partner_id="p1",
        partner_organisation="counsel",
        service="counselling",
        needs=["emotional_support"],
        consent_basis=basis,  # type: ignore[arg-type]
        age_group="adult",
    )


def _run(events: list[DomainEvent], engine: Engine | None = None) -> Engine:
    engine = engine or create_engine("sqlite://")
    METADATA.create_all(engine)
    referrals, offenders = ReferralsProjection(), OffendersProjection()
    with engine.begin() as conn:
        for seq, event in enumerate(events, start=1):
            recorded = recorded_case_event(
                seq, event, case_id=CASE, occurred_at=f"2026-11-24T10:{seq:02d}:00.000000Z"
            )
            referrals.apply(conn, recorded)
            offenders.apply(conn, recorded)
    return engine


def _outbox(engine: Engine, event_type: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX).where(OUTBOX.c.event_type == event_type)).all()
    return [{"aggregate_id": r.aggregate_id, **json.loads(r.payload)} for r in rows]


def _report(engine: Engine, report_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(REPORTS).where(REPORTS.c.report_id == report_id)).first()


# -- consent withdrawn (decision 36) ------------------------------------------------------------


def test_withdrawing_consent_revokes_the_open_referrals_that_rest_on_it_and_no_others() -> None:
    events: list[DomainEvent] = [
        _opened(referral=False),
        _offered("override", basis="caseworker_override"),
        ConsentsChanged(referral=True),
        _offered("offered"),
        _offered("accepted"),
        ReferralAccepted(referral_id="accepted", accepted_at="t"),
        _offered("declined"),
        ReferralDeclined(referral_id="declined", declined_at="t", reason="no_capacity"),
        _offered("completed"),
        ReferralAccepted(referral_id="completed", accepted_at="t"),
        ReferralCompleted(referral_id="completed", completed_at="t"),
        ConsentsChanged(referral=False),
    ]
    engine = _run(events)
    revoked = _outbox(engine, "ReferralRevoked")
    assert sorted(r["aggregate_id"] for r in revoked) == ["accepted", "offered"]
    assert {r["reason"] for r in revoked} == {"consent_withdrawn"}
    assert {r["revoked_at"] for r in revoked} == {"2026-11-24T10:12:00.000000Z"}


def test_consent_given_or_other_consents_changed_revoke_nothing() -> None:
    engine = _run(
        [_opened(), _offered("r1"), ConsentsChanged(takedown=False), ConsentsChanged(referral=True)]
    )
    assert _outbox(engine, "ReferralRevoked") == []


def test_a_replay_of_the_withdrawal_decides_each_revocation_once() -> None:
    events: list[DomainEvent] = [_opened(), _offered("r1"), ConsentsChanged(referral=False)]
    engine = _run(events)
    with engine.begin() as conn:
        recorded = recorded_case_event(
            3, events[2], case_id=CASE, occurred_at="2026-11-24T10:03:00.000000Z"
        )
        ReferralsProjection().apply(conn, recorded)
    assert len(_outbox(engine, "ReferralRevoked")) == 1


def test_an_offer_on_a_consent_withdrawn_before_it_reached_the_log_is_revoked() -> None:
    engine = _run([_opened(), ConsentsChanged(referral=False), _offered("late")])
    assert [r["aggregate_id"] for r in _outbox(engine, "ReferralRevoked")] == ["late"]
    override = _run(
        [_opened(), ConsentsChanged(referral=False), _offered("o", "caseworker_override")]
    )
    assert _outbox(override, "ReferralRevoked") == []


def test_revocation_on_withdrawal_is_decided_on_the_referrals_state_when_appended() -> None:
    def referral(status: str, basis: str = "victim_consent") -> domain.Referral:
        return domain.Referral("r1", "p1", "counsel", "counselling", status, "t", basis)  # type: ignore[arg-type]

    for status in ("offered", "accepted"):
        (event,) = domain.revoke_on_withdrawal(referral(status), "t")
        assert event.reason == "consent_withdrawn"  # type: ignore[attr-defined]
    for status in ("declined", "completed", "revoked"):
        assert domain.revoke_on_withdrawal(referral(status), "t") == []
    assert domain.revoke_on_withdrawal(referral("accepted", "caseworker_override"), "t") == []


# -- the offender known (decision 36) -----------------------------------------------------------


def test_the_offender_known_in_intake_is_recorded_and_opens_the_suspect_report() -> None:
    engine = _run(
        [
            _opened("minor"),
            OffenderDetailsRecorded(known=False),
            OffenderDetailsRecorded(known=True, account_ids=["x"]),
        ]
    )
    with engine.connect() as conn:
        (row,) = conn.execute(select(OFFENDERS)).all()
    assert (row.case_id, row.known) == (CASE, True)
    (due,) = _outbox(engine, "SuspectReportDue")
    assert due["report_id"] == suspect_report_id(CASE)
    assert due["learned_at"] == "2026-11-24T10:03:00.000000Z"
    assert due["due_at"] == "2026-11-25T10:03:00.000000Z"
    assert "account_ids" not in json.dumps(due) and "x" not in due.values()


def test_an_offender_not_known_opens_no_suspect_report_and_the_projection_reads_no_secret() -> None:
    engine = _run([_opened("adult"), OffenderDetailsRecorded(known=False)])
    assert _outbox(engine, "SuspectReportDue") == []
    assert OffendersProjection.decrypt is False  # only the clear ``known`` is needed


# -- intake's filing in old logs (decision 34) --------------------------------------------------


def test_a_filing_intake_recorded_before_the_clock_moved_still_counts_in_either_order() -> None:
    report_id = minor_report_id(CASE)
    due = MandatoryReportDue(
        report_id=report_id,
        learned_at="2026-11-24T09:00:00.000000Z",
        due_at="2026-11-25T09:00:00.000000Z",
    )
    filed = MandatoryReportFiled(filed_at="2026-11-25T09:00:01.000000Z", authority="x")
    for events in ([_opened("minor"), due, filed], [_opened("minor"), filed, due]):
        row = _report(_run(events), report_id)
        assert (row.status, row.filed_at, row.late) == ("filed", filed.filed_at, True)
