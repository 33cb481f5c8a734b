"""Case work (issue 12, decision 35): closing is not withdrawing, consents change, the spread
status moves on. The case's rules, folded from its events: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ncii_contracts.hashes import HashItem
from ncii_contracts.intake import (
    CaseClosed,
    CaseErased,
    CaseOpened,
    CaseReopened,
    CaseWithdrawn,
    Consents,
    ConsentsChanged,
    NonConsentRecorded,
    SpreadStatusChanged,
)
from ncii_intake.domain import Case, CaseClosedError, ConsentMissingError, case_status

OPENED_AT = "2026-11-24T10:00:00.000000Z"
CLOSED_AT = "2026-11-25T10:00:00.000000Z"
MD5 = HashItem(algorithm="md5", value="0" * 32, media="image")


def _active(share_hashes: bool = True, spread: str = "threatened") -> Case:
    opened = CaseOpened(
        organisation="o",
        reference="AAAA-BBBB-CCCC",
        age_group="adult",
        harm_categories=["threat_sextortion"],
        spread_status=spread,  # type: ignore[arg-type]
        channels=[],
        intake_channel="phone",
        learned_at=OPENED_AT,
        consents=Consents(takedown=True, share_hashes=share_hashes, referral=True),
    )
    case = Case.replay("c1", [(opened, OPENED_AT)])
    assert case is not None
    return case.apply(NonConsentRecorded(stated_at=OPENED_AT, method="verbal"), OPENED_AT)


def _closed() -> Case:
    case = _active()
    [closed] = case.close("resolved")
    return case.apply(closed, CLOSED_AT)


def test_a_closed_case_is_not_final_it_takes_new_facts_and_hashes() -> None:
    case = _closed()
    assert case.status == "closed" and case.pending(datetime.now(UTC)) == []
    assert case.close("resolved") == []  # closing twice changes nothing
    assert case.submit_hashes("s1", [MD5])[0].__class__.__name__ == "HashesSubmitted"
    assert case.report_location("l1", url="https://x.example", platform="X", channel_kind="forum")


def test_a_closed_case_is_reopened_by_hand_and_reopening_an_open_case_changes_nothing() -> None:
    case = _closed()
    assert case.reopen() == [CaseReopened(cause="by_hand")]
    reopened = case.apply(CaseReopened(cause="by_hand"), "2026-11-26T00:00:00Z")
    assert reopened.status == "active" and reopened.reopen() == []


def test_a_re_upload_seen_after_the_closing_reopens_the_case_and_says_which_match() -> None:
    case = _closed()
    after = datetime(2026, 11, 26, tzinfo=UTC)
    assert case.reopen_on_match("m1", after) == [CaseReopened(cause="re_upload", match_id="m1")]


def test_a_match_recorded_before_the_closing_does_not_reopen_it() -> None:
    # a rebuild of the reactor's queue replays old matches: they must not reopen anything
    before = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert _closed().reopen_on_match("m1", before) == []
    assert _active().reopen_on_match("m1", before) == []


def test_a_withdrawn_case_cannot_be_reopened_nor_by_a_re_upload() -> None:
    case = _closed().apply(CaseWithdrawn(withdrawn_by="partner"), "2026-11-26T00:00:00Z")
    with pytest.raises(CaseClosedError, match=r"withdrawn.*final.*open a new case"):
        case.reopen()
    assert case.reopen_on_match("m1", datetime(2026, 12, 1, tzinfo=UTC)) == []
    assert case_status(
        age_group="adult",
        statement_recorded_at="t",
        withdrawn_at="t",
        erased_at=None,
        closed_at="t",
    ) == ("withdrawn")


def test_consents_change_one_event_with_only_what_changes() -> None:
    case = _active()
    assert case.change_consents({"takedown": True, "share_hashes": False, "contact": True}) == [
        ConsentsChanged(share_hashes=False, contact=True)
    ]
    assert case.change_consents({"takedown": True}) == []  # already given: nothing changes


def test_withdrawing_share_hashes_blocks_submissions_and_giving_it_again_unblocks_them() -> None:
    case = _active().apply(ConsentsChanged(share_hashes=False), "t")
    with pytest.raises(ConsentMissingError, match="POST /v1/cases/c1/consents"):
        case.submit_hashes("s1", [MD5])
    again = case.apply(ConsentsChanged(share_hashes=True), "t")
    assert again.submit_hashes("s1", [MD5])[0].__class__.__name__ == "HashesSubmitted"


def test_withdrawing_takedown_and_referral_is_kept_and_pending_no_longer_asks_for_locations() -> (
    None
):
    case = _active().apply(ConsentsChanged(takedown=False, referral=False), "t")
    assert (case.consents.takedown, case.consents.referral) == (False, False)
    assert not any("report where" in p for p in case.pending(datetime.now(UTC)))


def test_the_refusal_for_a_missing_consent_names_the_command_that_gives_it() -> None:
    with pytest.raises(ConsentMissingError) as refused:
        _active(share_hashes=False).submit_hashes("s1", [MD5])
    assert 'POST /v1/cases/c1/consents {"share_hashes": true}' in refused.value.detail


def test_a_consent_change_on_an_erased_case_is_refused() -> None:
    case = _active().apply(CaseErased(erased_by="caseworker"), "t")
    with pytest.raises(CaseClosedError, match="erased"):
        case.change_consents({"referral": True})


def test_the_first_location_of_a_threatened_case_says_it_spread() -> None:
    case = _active(spread="threatened")
    location, spread = case.report_location(
        "l1", url="https://x.example", platform="X", channel_kind="forum"
    )
    assert spread == SpreadStatusChanged(spread_status="spread", cause="location_reported")
    moved = case.apply(location, "t").apply(spread, "t")
    assert moved.spread_status == "spread"
    assert (
        len(
            moved.report_location("l2", url="https://y.example", platform="Y", channel_kind="forum")
        )
        == 1
    )


def test_the_spread_status_is_set_by_hand_once() -> None:
    case = _active(spread="threatened")
    assert case.mark_spread() == [SpreadStatusChanged(spread_status="spread", cause="by_hand")]
    assert _active(spread="spread").mark_spread() == []


def test_closing_a_withdrawn_case_is_refused() -> None:
    case = _active().apply(CaseWithdrawn(withdrawn_by="partner"), "t")
    with pytest.raises(CaseClosedError, match="withdrawn"):
        case.close("resolved")
    assert isinstance(_active().close("resolved")[0], CaseClosed)
