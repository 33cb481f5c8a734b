"""Intake's rules, on the case as folded from its events: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import (
    CaseOpened,
    Consents,
    HashesSubmitted,
    LocationReported,
    NonConsentRecorded,
    SubmittedHash,
)
from ncii_events.store import RecordedEvent
from ncii_intake.domain import (
    Case,
    CaseClosedError,
    ConsentMissingError,
    NotApplicableError,
    StatementRequiredError,
)

from tests.support.factories import recorded_case_event

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _recorded(seq: int, event: DomainEvent) -> RecordedEvent:
    return recorded_case_event(seq, event)


def _case(
    age_group: str = "adult",
    share_hashes: bool = True,
    learned: str = "2026-11-24T10:00:00.000000Z",
) -> Case:
    opened = CaseOpened(
        organisation="o",
        reference="AAAA-BBBB-CCCC",
        age_group=age_group,  # type: ignore[arg-type]
        harm_categories=["threat_sextortion"],
        spread_status="threatened",
        channels=[],
        intake_channel="phone",
        learned_at=learned,
        consents=Consents(takedown=True, share_hashes=share_hashes, referral=True),
    )
    case = Case.replay([_recorded(1, opened)])
    assert case is not None
    return case


def _hashes(submission: str = "s1") -> HashesSubmitted:
    return HashesSubmitted(
        submission_id=submission,
        organisation="o",
        age_group="adult",
        hashes=[SubmittedHash(algorithm="md5", value="0" * 32, media="image")],
    )


def test_an_adult_case_awaits_the_statement_and_refuses_hashes_until_then() -> None:
    case = _case()
    assert case.status == "awaiting_statement" and not case.may_act
    with pytest.raises(StatementRequiredError, match="non-consent"):
        case.submit_hashes(_hashes())
    stated = case.apply(NonConsentRecorded(stated_at="2026-11-24T10:05:00Z", method="verbal"), "t")
    assert stated.status == "active" and stated.submit_hashes(_hashes()) == [_hashes()]


def test_recording_the_statement_twice_changes_nothing() -> None:
    event = NonConsentRecorded(stated_at="2026-11-24T10:05:00Z", method="verbal")
    stated = _case().apply(event, "t")
    assert stated.record_non_consent(event) == []


def test_a_minors_case_needs_no_statement_and_refuses_one() -> None:
    case = _case("minor")
    assert case.status == "active"
    with pytest.raises(NotApplicableError, match="minor"):
        case.record_non_consent(
            NonConsentRecorded(stated_at="2026-11-24T10:05:00Z", method="verbal")
        )


def test_hashes_need_the_consent_to_share_them_even_for_a_minor() -> None:
    with pytest.raises(ConsentMissingError):
        _case("minor", share_hashes=False).submit_hashes(_hashes())


def test_the_minors_report_is_due_24_hours_after_staff_learned_of_it_then_late() -> None:
    case = _case("minor", learned="2026-11-23T13:00:00.000000Z")
    assert case.mandatory_report_due_at == "2026-11-24T13:00:00.000000Z"
    assert case.mandatory_report_state(NOW) == "due"
    assert case.mandatory_report_state(NOW + timedelta(hours=2)) == "late"
    assert any("24 hours" in p for p in case.pending(NOW))
    assert _case("adult").mandatory_report_state(NOW) is None


def test_withdrawal_and_erasure_are_final_and_idempotent() -> None:
    case = _case("minor")
    [withdrawn_event] = case.withdraw("victim", "victim_request")
    withdrawn = case.apply(withdrawn_event, "t")
    assert withdrawn.status == "withdrawn" and withdrawn.withdraw("partner", "other") == []
    with pytest.raises(CaseClosedError, match="withdrawn"):
        withdrawn.report_location(
            LocationReported(location_id="l1", platform="X", channel_kind="forum", url="https://x")
        )
    [erased_event] = withdrawn.erase("partner")
    erased = withdrawn.apply(erased_event, "t")
    assert erased.status == "erased" and erased.erase("partner") == [] and erased.pending(NOW) == []
    with pytest.raises(CaseClosedError, match="erased"):
        erased.submit_hashes(_hashes())


def test_the_same_location_or_submission_twice_is_recorded_once() -> None:
    case = _case("minor")
    location = LocationReported(location_id="l1", platform="X", channel_kind="forum")
    case = case.apply(location, "t").apply(_hashes("s1"), "t")
    assert case.report_location(location) == [] and case.submit_hashes(_hashes("s1")) == []
    assert case.hashes_submitted == 1
