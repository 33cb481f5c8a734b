"""Referral's rules without I/O: every transition allowed and refused, the consent gate and its
override, the right programme for the person's age, the 24-hour clock at its exact boundary,
region routing, guidance per case type, and CaseOpened v2 read as v3."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from ncii_contracts.intake import CaseOpened
from ncii_contracts.referral import (
    ConsentOverridden,
    CounsellorNoteAdded,
    FollowUpRecorded,
    ReferralAccepted,
    ReferralCompleted,
    ReferralDeclined,
    ReferralOffered,
    ReferralRevoked,
    Region,
)
from ncii_events.registry import EventRegistry
from ncii_referral import domain
from ncii_referral.domain import CaseFacts, Override, Referral, ReferralRuleError

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
ADULT = CaseFacts(organisation="ngo", age_group="adult", consents_referral=True)
MINOR = CaseFacts(organisation="ngo", age_group="minor", consents_referral=True)
ALL_SERVICES = (
    "counselling",
    "legal_advice",
    "police_accompaniment",
    "stopncii_enrolment",
    "photodna_programme",
)


def offer(case: CaseFacts = ADULT, role: str = "partner", **kw: Any) -> list[Any]:
    args: dict[str, Any] = {
        "referral_id": "r1",
        "case": case,
        "role": role,
        "partner_id": "p1",
        "partner_organisation": "counsel-org",
        "partner_services": ALL_SERVICES,
        "partner_taking": True,
        "service": "counselling",
        "needs": ["emotional_support"],
        "pseudonym": "Lin",
        "contact": ("phone", "+886 2 1234 5678"),
        "override": None,
    }
    args.update(kw)
    return domain.offer(**args)


def referral_in(status: str) -> Referral:
    return Referral("r1", "p1", "counsel-org", "counselling", status, "t", "victim_consent")  # type: ignore[arg-type]


COMMANDS = {
    "accept": lambda r, role: r.accept(role, NOW),
    "decline": lambda r, role: r.decline(role, NOW, "no_capacity"),
    "complete": lambda r, role: r.complete(role, NOW),
    "revoke": lambda r, role: r.revoke(role, NOW, "victim_request"),
    "follow_up": lambda r, role: r.follow_up(role, NOW, "reached_doing_better", None),
    "note": lambda r, role: r.add_note(role, "n1", "spoke with her"),
}
EVENT_OF = {
    "accept": ReferralAccepted,
    "decline": ReferralDeclined,
    "complete": ReferralCompleted,
    "revoke": ReferralRevoked,
    "follow_up": FollowUpRecorded,
    "note": CounsellorNoteAdded,
}
STATES = ("offered", "accepted", "declined", "completed", "revoked")
ROLES = ("partner", "caseworker", "counsellor", "admin")
TABLE = [(c, s, role) for c in COMMANDS for s in STATES for role in ROLES]


@pytest.mark.parametrize(("command", "state", "role"), TABLE)
def test_every_transition_is_allowed_only_in_its_states_and_for_its_roles(
    command: str, state: str, role: str
) -> None:
    referral = referral_in(state)
    roles = domain.ALLOWED[command].get(state)  # type: ignore[call-overload]
    may = frozenset().union(*domain.ALLOWED[command].values())
    if domain.REACHES.get(command) == state and role in may:
        # the step's own state again (a retry without a key): no news, not an error (0057)
        assert COMMANDS[command](referral, role) == []
    elif roles is not None and role in roles:
        (event,) = COMMANDS[command](referral, role)
        assert isinstance(event, EVENT_OF[command])
        after = referral.apply(event)
        expected = {"accept": "accepted", "decline": "declined", "complete": "completed"}
        expected_status = expected.get(command, "revoked" if command == "revoke" else state)
        assert after.status == expected_status
    else:
        with pytest.raises(ReferralRuleError) as refused:
            COMMANDS[command](referral, role)
        assert refused.value.status == (409 if roles is None else 403)


def test_the_allowed_table_is_the_lifecycle() -> None:
    assert set(domain.ALLOWED["accept"]) == {"offered"}
    assert set(domain.ALLOWED["decline"]) == {"offered"}
    assert set(domain.ALLOWED["complete"]) == {"accepted"}
    assert set(domain.ALLOWED["revoke"]) == {"offered", "accepted"}
    assert set(domain.ALLOWED["follow_up"]) == {"accepted", "completed"}
    for final in domain.FINAL - {"completed"}:
        assert all(final not in states for states in domain.ALLOWED.values())


def test_a_referral_replays_from_its_events() -> None:
    (offered,) = offer()
    history = [(offered, "t0"), (ReferralAccepted(referral_id="r1", accepted_at="t1"), "t1")]
    referral = Referral.replay(history)
    assert referral is not None and referral.status == "accepted"
    assert referral.consent_basis == "victim_consent"


def test_with_consent_the_offer_carries_the_pseudonym_needs_and_one_contact_route() -> None:
    (event,) = offer()
    assert isinstance(event, ReferralOffered)
    assert event.consent_basis == "victim_consent"
    assert (event.pseudonym, event.needs) == ("Lin", ["emotional_support"])
    assert (event.contact_kind, event.contact_value) == ("phone", "+886 2 1234 5678")


def test_without_consent_the_offer_is_refused_without_an_override() -> None:
    case = CaseFacts(organisation="ngo", age_group="adult", consents_referral=False)
    with pytest.raises(ReferralRuleError) as refused:
        offer(case, role="caseworker")
    assert (refused.value.kind, refused.value.status) == ("consent-required", 409)


def test_a_caseworker_overrides_with_a_reason_its_own_event_and_no_contact_route() -> None:
    case = CaseFacts(organisation="ngo", age_group="adult", consents_referral=False)
    events = offer(
        case, role="caseworker", override=Override("safeguarding_risk", "she is at risk")
    )
    overridden, offered = events
    assert isinstance(overridden, ConsentOverridden) and overridden.reason == "safeguarding_risk"
    assert isinstance(offered, ReferralOffered)
    assert offered.consent_basis == "caseworker_override"
    assert offered.contact_kind is None and offered.contact_value is None


def test_only_a_caseworker_may_override() -> None:
    case = CaseFacts(organisation="ngo", age_group="adult", consents_referral=False)
    with pytest.raises(ReferralRuleError) as refused:
        offer(case, role="partner", override=Override("safeguarding_risk", "x"))
    assert refused.value.status == 403


def test_an_override_where_she_consents_is_refused() -> None:
    with pytest.raises(ReferralRuleError) as refused:
        offer(role="caseworker", override=Override("safeguarding_risk", "x"))
    assert refused.value.status == 422


@pytest.mark.parametrize(
    ("case", "service", "allowed"),
    [
        (ADULT, "stopncii_enrolment", True),
        (ADULT, "photodna_programme", False),
        (MINOR, "photodna_programme", True),
        (MINOR, "stopncii_enrolment", False),
        (MINOR, "counselling", True),
        (ADULT, "legal_advice", True),
    ],
)
def test_the_programme_matches_the_persons_age_never_the_other_way_round(
    case: CaseFacts, service: str, allowed: bool
) -> None:
    if allowed:
        assert offer(case, service=service)
    else:
        with pytest.raises(ReferralRuleError) as refused:
            offer(case, service=service)
        assert (refused.value.status, refused.value.kind) == (422, "wrong-programme")


def test_a_partner_not_offering_the_service_or_not_taking_referrals_is_refused() -> None:
    with pytest.raises(ReferralRuleError) as refused:
        offer(partner_services=("legal_advice",))
    assert refused.value.kind == "service-not-offered"
    with pytest.raises(ReferralRuleError) as refused:
        offer(partner_taking=False)
    assert refused.value.kind == "partner-not-taking"


def test_a_closed_case_takes_no_referral() -> None:
    closed = CaseFacts(organisation="ngo", age_group="adult", consents_referral=True, closed=True)
    with pytest.raises(ReferralRuleError):
        offer(closed)


def test_the_report_is_due_24_hours_after_staff_learned_and_late_only_after_that_instant() -> None:
    learned = "2026-11-29T08:00:00.000000Z"
    due = domain.report_due_at(learned)
    assert due == "2026-11-30T08:00:00.000000Z"
    due_at = domain.parse_time(due)
    assert not domain.is_overdue(due, due_at - timedelta(microseconds=1))
    assert not domain.is_overdue(due, due_at)  # filed at the instant: in time
    assert domain.is_overdue(due, due_at + timedelta(microseconds=1))


def test_every_one_of_the_22_cities_and_counties_routes_to_its_own_authority() -> None:
    regions: tuple[Region, ...] = get_args(Region)
    assert len(regions) == 22
    authorities = {domain.authority_of(r) for r in regions}
    assert len(authorities) == 22
    assert domain.authority_of("kaohsiung_city").startswith("Kaohsiung City")
    assert domain.authority_of("chiayi_county").startswith("Chiayi County")
    assert domain.authority_of("chiayi_city").startswith("Chiayi City")


def facts(**kw: Any) -> domain.GuidanceFacts:
    base: dict[str, Any] = {
        "age_group": "adult",
        "harm_categories": frozenset({"synthetic_image_319_4"}),
        "spread_status": "spread",
        "on_social_platform": False,
        "offender_known": False,
    }
    base.update(kw)
    return domain.GuidanceFacts(**base)


SELF_HELP = ["self_help_privacy_settings", "self_help_change_names_and_avatars"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (facts(), SELF_HELP),
        (
            facts(harm_categories=frozenset({"threat_sextortion"}), spread_status="threatened"),
            [
                "sextortion_do_not_pay",
                "sextortion_keep_contacts_and_conversations",
                "sextortion_report_or_block_every_channel",
                "threatened_stopncii_enrolment",
                *SELF_HELP,
            ],
        ),
        (
            facts(age_group="minor", spread_status="threatened"),
            ["threatened_photodna_programme", *SELF_HELP],
        ),
        (
            facts(on_social_platform=True),
            ["own_page_remove_post", "own_page_block_accounts", *SELF_HELP],
        ),
        (
            facts(age_group="minor", offender_known=True),
            ["offender_known_ask_police_to_seize_devices", *SELF_HELP],
        ),
        (
            facts(harm_categories=frozenset({"secret_recording_319_1"})),
            [*SELF_HELP, "police_report_decision_recorded"],
        ),
        (
            # a minor's case needs no complaint: no police-report decision to record
            facts(age_group="minor", harm_categories=frozenset({"secret_recording_319_1"})),
            SELF_HELP,
        ),
    ],
)
def test_guidance_follows_the_case_type(case: domain.GuidanceFacts, expected: list[str]) -> None:
    assert domain.guidance(case) == expected


def test_a_v2_case_opened_reads_as_v3_without_a_region() -> None:
    registry = EventRegistry(CaseOpened)
    payload = {
        "organisation": "ngo",
        "reference": "ABCD-EFGH",
        "age_group": "minor",
        "harm_categories": ["child_sexual_exploitation"],
        "spread_status": "spread",
        "intake_channel": "phone",
        "learned_at": "2026-11-29T08:00:00.000000Z",
        "consents": {"takedown": True, "share_hashes": True, "referral": True},
    }
    event = registry.decode("CaseOpened", 2, payload)
    assert isinstance(event, CaseOpened) and event.region is None
    assert CaseOpened.version == 3


def test_an_art7_report_folds_due_then_overdue_then_filed_late_and_keeps_its_kind() -> None:
    from ncii_contracts.referral import (
        MandatoryReportDue,
        MandatoryReportOverdue,
        MandatoryReportSubmitted,
        SuspectReportDue,
        SuspectReportOverdue,
    )

    due = MandatoryReportDue(
        report_id="r1",
        learned_at="2026-11-30T08:00:00.000000Z",
        due_at=domain.report_due_at("2026-11-30T08:00:00.000000Z"),
        region="taipei_city",
    )
    overdue = MandatoryReportOverdue(
        report_id="r1", due_at=due.due_at, detected_at="2026-12-01T08:00:01.000000Z"
    )
    filed = MandatoryReportSubmitted(
        report_id="r1", filed_at="2026-12-01T09:00:00.000000Z", late=True, authority_reference="A-1"
    )
    at = "2026-12-01T09:00:00.000000Z"
    assert domain.MandatoryReport.replay([(overdue, at)]) is None
    opened = domain.MandatoryReport.replay([(due, at)])
    assert opened is not None and (opened.status, opened.kind) == ("due", "victim_minor")
    assert opened.authority == domain.authority_of("taipei_city")
    late = domain.MandatoryReport.replay([(due, at), (overdue, at)])
    assert late is not None and (late.status, late.overdue_at) == ("overdue", overdue.detected_at)
    done = domain.MandatoryReport.replay([(due, at), (overdue, at), (filed, at)])
    assert done is not None and (done.status, done.late, done.authority_reference) == (
        "filed",
        True,
        "A-1",
    )
    # the clock's overdue after a filing changes nothing, as in the read model
    assert domain.MandatoryReport.replay([(due, at), (filed, at), (overdue, at)]) == replace(
        done, overdue_at=None
    )
    suspect = SuspectReportDue(report_id="r2", learned_at=at, due_at=domain.report_due_at(at))
    s_overdue = SuspectReportOverdue(report_id="r2", due_at=suspect.due_at, detected_at=at)
    folded = domain.MandatoryReport.replay([(suspect, at), (s_overdue, at)])
    assert folded is not None and (folded.kind, folded.status, folded.authority) == (
        "known_suspect",
        "overdue",
        None,
    )


def test_guidance_folds_each_item_at_its_first_tick() -> None:
    from ncii_contracts.referral import GuidanceItemTicked

    ticks = [
        (GuidanceItemTicked(item="sextortion_do_not_pay", ticked_at=t), t)
        for t in ("2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z")
    ]
    assert domain.ticked_guidance(ticks) == {"sextortion_do_not_pay": "2026-11-30T08:00:00Z"}
