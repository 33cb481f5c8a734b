"""Intake's rules, on the case as folded from its events: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import ncii_intake.domain
import pytest
from ncii_contracts.hashes import HashItem, VideoFrame
from ncii_contracts.intake import (
    CaseOpened,
    Consents,
    HashesSubmitted,
    LocationReported,
    MandatoryReportFiled,
    NonConsentRecorded,
    SubmittedHash,
)
from ncii_contracts.referral import (
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
)
from ncii_intake.domain import (
    Art7Report,
    Case,
    CaseClosedError,
    ConsentMissingError,
    NotApplicableError,
    StatementRequiredError,
    art7_pending,
    art7_report,
    case_scope,
    case_status,
    may_see,
)

from tests.support.imports import top_level_packages_loaded

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STATED = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
MD5 = HashItem(algorithm="md5", value="0" * 32, media="image")


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
    case = Case.replay("c1", [(opened, "2026-11-24T10:00:00.000000Z")])
    assert case is not None
    return case


def _hashes(submission: str = "s1") -> HashesSubmitted:
    return HashesSubmitted(
        submission_id=submission,
        organisation="o",
        age_group="adult",
        hashes=[SubmittedHash(algorithm="md5", value="0" * 32, media="image")],
    )


def _location(location_id: str = "l1") -> LocationReported:
    return LocationReported(
        location_id=location_id, platform="X", channel_kind="forum", url="https://x.example"
    )


def test_an_adult_case_awaits_the_statement_and_refuses_hashes_until_then() -> None:
    case = _case()
    assert case.status == "awaiting_statement" and not case.may_act
    with pytest.raises(StatementRequiredError, match="non-consent"):
        case.submit_hashes("s1", [MD5])
    stated = case.apply(NonConsentRecorded(stated_at="2026-11-24T10:05:00Z", method="verbal"), "t")
    assert stated.status == "active" and stated.submit_hashes("s1", [MD5]) == [_hashes()]


def test_recording_the_statement_twice_changes_nothing() -> None:
    [event] = _case().record_non_consent(STATED, "verbal")
    stated = _case().apply(event, "t")
    assert stated.record_non_consent(STATED, "verbal") == []


def test_the_statement_time_is_recorded_in_utc() -> None:
    [event] = _case().record_non_consent(STATED.astimezone(timezone(timedelta(hours=2))), "verbal")
    assert event == NonConsentRecorded(stated_at="2026-11-24T10:05:00.000000Z", method="verbal")


def test_a_minors_case_needs_no_statement_and_refuses_one() -> None:
    case = _case("minor")
    assert case.status == "active"
    with pytest.raises(NotApplicableError, match="minor"):
        case.record_non_consent(STATED, "verbal")


def test_hashes_need_the_consent_to_share_them_even_for_a_minor() -> None:
    with pytest.raises(ConsentMissingError):
        _case("minor", share_hashes=False).submit_hashes("s1", [MD5])


def test_a_videos_frames_below_quality_50_are_not_submitted() -> None:
    good, blurry = "a" * 64, "b" * 64
    video = HashItem(
        algorithm="vpdq",
        media="video",
        frames=[
            VideoFrame(value=good, quality=90, timestamp=0),
            VideoFrame(value=blurry, quality=49, timestamp=1),
        ],
    )
    [event] = _case("minor").submit_hashes("s1", [video])
    assert isinstance(event, HashesSubmitted)
    assert [h.frames for h in event.hashes] == [[good]]
    assert (event.organisation, event.age_group) == ("o", "minor")


def test_the_minors_report_shown_by_intake_is_the_one_referral_records() -> None:
    due = MandatoryReportDue(
        report_id="r1",
        learned_at="2026-11-23T13:00:00.000000Z",
        due_at="2026-11-24T13:00:00.000000Z",
    )
    overdue = MandatoryReportOverdue(
        report_id="r1", due_at=due.due_at, detected_at="2026-11-24T13:00:01.000000Z"
    )
    filed = MandatoryReportSubmitted(
        report_id="r1", filed_at="2026-11-24T14:00:00.000000Z", late=True
    )
    assert art7_report([]) is None
    report = art7_report([due])
    assert report == Art7Report("r1", "2026-11-24T13:00:00.000000Z", "due")
    pending = art7_pending("c1", report)
    assert pending is not None and "POST /v1/cases/c1/reports/r1/filing" in pending
    assert art7_report([due, overdue]) == Art7Report("r1", due.due_at, "overdue")
    assert "OVERDUE" in (art7_pending("c1", art7_report([due, overdue])) or "")
    done = art7_report([due, overdue, filed])
    assert done == Art7Report("r1", due.due_at, "filed", "2026-11-24T14:00:00.000000Z", True)
    assert art7_pending("c1", done) is None
    # intake no longer computes a clock of its own: the case says nothing of a report
    assert not any("24 hours" in p for p in _case("minor").pending(NOW))


def test_a_report_filed_through_intake_before_the_clock_moved_still_reads_as_filed() -> None:
    old = MandatoryReportFiled(filed_at="2026-11-23T20:00:00.000000Z", authority="x")
    due = MandatoryReportDue(
        report_id="r1",
        learned_at="2026-11-23T13:00:00.000000Z",
        due_at="2026-11-24T13:00:00.000000Z",
    )
    for events in ([old, due], [due, old]):
        report = art7_report(events)
        assert report is not None and (report.state, report.filed_at) == ("filed", old.filed_at)
    case = _case("minor")
    assert case.apply(old, "t") == case  # replays, and changes nothing of the case
    assert not hasattr(case, "file_mandatory_report")


def test_withdrawal_and_erasure_are_final_and_idempotent() -> None:
    case = _case("minor")
    [withdrawn_event] = case.withdraw("victim", "victim_request")
    withdrawn = case.apply(withdrawn_event, "t")
    assert withdrawn.status == "withdrawn" and withdrawn.withdraw("partner", "other") == []
    with pytest.raises(CaseClosedError, match="withdrawn"):
        withdrawn.report_location("l1", url="https://x.example", platform="X", channel_kind="forum")
    [erased_event] = withdrawn.erase("caseworker", "victim_request")
    erased = withdrawn.apply(erased_event, "t")
    assert (
        erased.status == "erased"
        and erased.erase("caseworker", "victim_request") == []
        and erased.pending(NOW) == []
    )
    with pytest.raises(CaseClosedError, match="erased"):
        erased.submit_hashes("s2", [MD5])


def test_the_same_location_or_submission_twice_is_recorded_once() -> None:
    case = _case("minor")
    # the case was threatened: its first location also says the content spread (decision 35)
    location, _spread = case.report_location(
        "l1", url="https://x.example", platform="X", channel_kind="forum"
    )
    assert location == _location()
    case = case.apply(location, "t").apply(_hashes("s1"), "t")
    assert (
        case.report_location("l1", url="https://x.example", platform="X", channel_kind="forum")
        == []
        and case.submit_hashes("s1", [MD5]) == []
    )
    assert case.hashes_submitted == 1


def test_partners_see_their_own_organisations_cases_and_the_centre_sees_all() -> None:
    class Reader:
        def __init__(self, role: str, organisation: str) -> None:
            self.role, self.organisation = role, organisation

    assert may_see(Reader("partner", "o"), "o") and not may_see(Reader("partner", "p"), "o")
    assert may_see(Reader("caseworker", "centre"), "o") and may_see(Reader("admin", "c"), "o")
    assert not may_see(Reader("platform", "o"), "o")
    assert case_scope(Reader("partner", "o")) == "o" and case_scope(Reader("admin", "c")) is None


def test_a_case_status_follows_from_its_facts_alone() -> None:
    def status(age: str, stated: str | None, withdrawn: str | None, erased: str | None) -> str:
        return case_status(
            age_group=age,  # type: ignore[arg-type]
            statement_recorded_at=stated,
            withdrawn_at=withdrawn,
            erased_at=erased,
        )

    assert status("adult", None, None, None) == "awaiting_statement"
    assert status("adult", "t", None, None) == status("minor", None, None, None) == "active"
    assert status("minor", None, "t", None) == "withdrawn"
    assert status("adult", "t", "t", "t") == "erased"


def test_the_domain_imports_no_store_nats_sql_or_http() -> None:
    assert top_level_packages_loaded("ncii_intake.domain") == []
    source = Path(ncii_intake.domain.__file__).read_text()
    assert "ncii_events.store" not in source and "RecordedEvent" not in source


def test_a_formatted_time_reads_back_whatever_its_year() -> None:
    from ncii_intake.domain import format_time, parse_time

    for moment in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 5, tzinfo=UTC),
        datetime(2026, 11, 29, 8, 30, tzinfo=timezone(timedelta(hours=14))),
    ):
        assert parse_time(format_time(moment)) == moment
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.000006Z"
    )
