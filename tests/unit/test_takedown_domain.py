"""The takedown's rules, with no I/O: every transition allowed and refused (a table), evidence
first and the statement rule, deadlines per regime, what a notice carries, retry delays."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from ncii_contracts.base import DomainEvent
from ncii_contracts.takedown import (
    EvidenceErased,
    EvidenceRetentionScheduled,
    Regime,
    TakedownCancelled,
    TakedownOpened,
    TakedownRequested,
)
from ncii_takedown import domain
from ncii_takedown.domain import CaseFacts, Takedown

from tests.support.imports import top_level_packages_loaded

T0 = "2026-11-29T10:00:00.000000Z"
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
ADULT = CaseFacts(organisation="ngo", age_group="adult", consents_takedown=True)
ADULT_STATED = replace(ADULT, statement_recorded=True)
MINOR = CaseFacts(organisation="ngo", age_group="minor", consents_takedown=True)
EVIDENCE = domain.Evidence(T0, "screenshot", "a" * 64)


def opened(**changes: object) -> Takedown:
    base = Takedown("t1", "location", T0, platform_id="p1")
    return replace(base, **changes)  # type: ignore[arg-type]


def at(status: str) -> Takedown:
    """A takedown in ``status``, as its events would have left it."""
    t = opened(evidence=(EVIDENCE,))
    if status == "opened":
        return t
    t = replace(
        t,
        status="requested",
        notice_id="n1",
        channel="webhook",
        regimes=("tw",),
        deadline_regime="tw",
        deadline_hours=72,
        legal=True,
    )
    if status == "requested":
        return t
    t = replace(t, status="sent", sent_at=T0, deadline_at=domain.deadline_at(T0, 72))
    if status == "sent":
        return t
    if status == "acknowledged":
        return replace(t, status="acknowledged", acknowledged_at=T0)
    if status == "refused":
        return replace(t, status="refused", refused_reason="consent_claimed")
    if status in ("overdue", "escalated", "removed", "cancelled", "fulfilled"):
        return replace(t, status=status)  # type: ignore[arg-type]
    raise AssertionError(status)


LATE = NOW + timedelta(hours=73)
COMMANDS: dict[str, Callable[[Takedown], list[DomainEvent]]] = {
    "request": lambda t: t.request(
        ADULT_STATED, notice_id="n1", channel="webhook", regimes=["tw"], trusted_flagger=False
    ),
    "send": lambda t: t.send(T0),
    "acknowledge": lambda t: t.acknowledge(T0, None),
    "remove": lambda t: t.remove(T0),
    "refuse": lambda t: t.refuse(T0, "consent_claimed"),
    "overdue": lambda t: t.mark_overdue(LATE),
    "escalate": lambda t: t.escalate(T0, "iWIN"),
    "cancel": lambda t: t.cancel("case_withdrawn"),
    "fulfil": lambda t: t.fulfil(T0),
}

# status -> command -> the event type decided, "" for nothing (no-op), or "refused"
TABLE: dict[str, dict[str, str]] = {
    "opened": {
        "request": "TakedownRequested",
        "send": "refused",
        "acknowledge": "refused",
        "remove": "refused",
        "refuse": "refused",
        "overdue": "",
        "escalate": "refused",
        "cancel": "TakedownCancelled",
        "fulfil": "refused",
    },
    "requested": {
        "request": "refused",
        "send": "NoticeSent",
        "acknowledge": "refused",
        "remove": "refused",
        "refuse": "refused",
        "overdue": "",
        "escalate": "refused",
        "cancel": "TakedownCancelled",
        "fulfil": "refused",
    },
    "sent": {
        "request": "refused",
        "send": "",
        "acknowledge": "TakedownAcknowledged",
        "remove": "ContentRemoved",
        "refuse": "TakedownRefused",
        "overdue": "TakedownOverdue",
        "escalate": "refused",
        "cancel": "TakedownCancelled",
        "fulfil": "refused",
    },
    "acknowledged": {
        "request": "refused",
        "send": "",
        "acknowledge": "",
        "remove": "ContentRemoved",
        "refuse": "TakedownRefused",
        "overdue": "TakedownOverdue",
        "escalate": "refused",
        "cancel": "TakedownCancelled",
        "fulfil": "refused",
    },
    "overdue": {
        "request": "refused",
        "send": "",
        "acknowledge": "TakedownAcknowledged",
        "remove": "ContentRemoved",
        "refuse": "TakedownRefused",
        "overdue": "",
        "escalate": "TakedownEscalated",
        "cancel": "TakedownCancelled",
        "fulfil": "refused",
    },
    "escalated": {
        "request": "refused",
        "send": "",
        "acknowledge": "TakedownAcknowledged",
        "remove": "ContentRemoved",
        "refuse": "TakedownRefused",
        "overdue": "",
        "escalate": "",
        "cancel": "TakedownCancelled",
        "fulfil": "refused",
    },
    "removed": {
        "request": "refused",
        "send": "",
        "acknowledge": "refused",
        "remove": "",
        "refuse": "refused",
        "overdue": "",
        "escalate": "refused",
        "cancel": "",
        "fulfil": "refused",
    },
    "refused": {
        "request": "refused",
        "send": "",
        "acknowledge": "refused",
        "remove": "refused",
        "refuse": "",
        "overdue": "",
        "escalate": "refused",
        "cancel": "",
        "fulfil": "refused",
    },
    "fulfilled": {
        "request": "refused",
        "send": "",
        "acknowledge": "refused",
        "remove": "refused",
        "refuse": "refused",
        "overdue": "",
        "escalate": "refused",
        "cancel": "",
        "fulfil": "",
    },
    "cancelled": {
        "request": "refused",
        "send": "refused",
        "acknowledge": "refused",
        "remove": "refused",
        "refuse": "refused",
        "overdue": "",
        "escalate": "refused",
        "cancel": "",
        "fulfil": "refused",
    },
}


@pytest.mark.parametrize(
    ("status", "command"), [(s, c) for s in TABLE for c in TABLE[s]], ids=lambda v: str(v)
)
def test_every_transition_is_allowed_or_refused_as_the_table_says(
    status: str, command: str
) -> None:
    expected = TABLE[status][command]
    takedown = at(status)
    if expected == "refused":
        with pytest.raises(domain.TakedownRuleError):
            COMMANDS[command](takedown)
        return
    events = COMMANDS[command](takedown)
    assert [e.event_type for e in events] == ([expected] if expected else [])
    if events:  # the decided event folds into the state it names
        after = takedown.apply(events[0], T0)
        assert after.status != takedown.status or command == "acknowledge"


def test_the_table_covers_every_status_and_command() -> None:
    assert set(TABLE) == set(domain.Status.__args__)  # type: ignore[attr-defined]
    assert all(set(row) == set(COMMANDS) for row in TABLE.values())


def test_no_notice_is_requested_before_the_locations_evidence() -> None:
    with pytest.raises(domain.EvidenceRequiredError):
        COMMANDS["request"](opened())


def test_an_adults_notice_needs_the_non_consent_statement() -> None:
    t = opened(evidence=(EVIDENCE,))
    with pytest.raises(domain.StatementRequiredError):
        t.request(ADULT, notice_id="n1", channel="web_form", regimes=["tw"], trusted_flagger=False)
    assert t.request(
        ADULT_STATED, notice_id="n1", channel="web_form", regimes=["tw"], trusted_flagger=False
    )


def test_a_minors_notice_needs_no_statement_and_gets_24_hours_in_taiwan() -> None:
    (event,) = opened(evidence=(EVIDENCE,)).request(
        MINOR, notice_id="n1", channel="webhook", regimes=["tw"], trusted_flagger=False
    )
    assert isinstance(event, TakedownRequested)
    assert (event.deadline_regime, event.deadline_hours, event.legal) == ("tw", 24, True)


def test_a_notice_needs_a_registered_platform_and_an_open_case() -> None:
    with pytest.raises(domain.PlatformRequiredError):
        opened(evidence=(EVIDENCE,), platform_id=None).request(
            MINOR, notice_id="n1", channel="webhook", regimes=["tw"], trusted_flagger=False
        )
    with pytest.raises(domain.TransitionError):
        opened(evidence=(EVIDENCE,)).request(
            replace(MINOR, closed=True),
            notice_id="n1",
            channel="webhook",
            regimes=["tw"],
            trusted_flagger=False,
        )


@pytest.mark.parametrize(
    ("regimes", "age", "flagger", "expected"),
    [
        (["tw"], "adult", False, ("tw", 72, True)),
        (["tw"], "minor", False, ("tw", 24, True)),
        (["us_take_it_down"], "adult", False, ("us_take_it_down", 48, True)),
        (["uk"], "minor", False, ("uk", 48, True)),
        (["tw", "us_take_it_down"], "adult", False, ("us_take_it_down", 48, True)),
        (["tw", "us_take_it_down"], "minor", False, ("tw", 24, True)),
        (["eu_dsa"], "adult", False, ("eu_dsa", 72, False)),
        (["eu_dsa"], "adult", True, ("eu_dsa", 24, False)),
        # a tie: the legal deadline is the one named
        (["eu_dsa", "tw"], "adult", False, ("tw", 72, True)),
    ],
)
def test_the_strictest_regime_sets_the_deadline(
    regimes: list[Regime], age: str, flagger: bool, expected: tuple[str, int, bool]
) -> None:
    d = domain.deadline_for(regimes, age, trusted_flagger=flagger)  # type: ignore[arg-type]
    assert (d.regime, d.hours, d.legal) == expected


def test_a_notice_runs_from_when_it_was_sent_and_is_overdue_only_after() -> None:
    (sent,) = at("requested").send("2026-11-29T10:00:00.000000Z")
    t = at("requested").apply(sent, T0)
    assert t.deadline_at == "2026-12-02T10:00:00.000000Z"
    assert t.mark_overdue(datetime(2026, 12, 2, 9, 59, tzinfo=UTC)) == []
    assert t.mark_overdue(datetime(2026, 12, 2, 10, 0, tzinfo=UTC))[0].event_type == (
        "TakedownOverdue"
    )


def test_evidence_is_added_never_replaced_and_the_same_capture_is_nothing_new() -> None:
    t = opened()
    kwargs = dict(
        captured_at=T0,
        capture_method="screenshot",
        capture_sha256="b" * 64,
        url=None,
        preserved_by="desk",
        offender_account=None,
        offender_ip=None,
    )
    (first,) = t.record_evidence(**kwargs)  # type: ignore[arg-type]
    t = t.apply(first, T0)
    assert t.record_evidence(**kwargs) == []  # type: ignore[arg-type]
    (second,) = t.record_evidence(**{**kwargs, "capture_sha256": "c" * 64})  # type: ignore[arg-type]
    assert len(t.apply(second, T0).evidence) == 2


def test_a_re_upload_links_to_the_last_takedown_that_removed_the_same_content() -> None:
    prior = [("t1", "e1", "removed"), ("t2", "e2", "removed"), ("t3", "e1", "sent")]
    assert domain.previous_removed(prior, "e1") == "t1"
    assert domain.previous_removed(prior, "e3") is None
    assert domain.previous_removed(prior, None) is None


def test_a_notice_carries_what_the_laws_ask_and_nothing_of_the_victim() -> None:
    t = at("sent")
    notifier = domain.Notifier("centre", "desk", "desk@centre.example", "+886-2-1234")
    doc = domain.notice_document(
        t,
        platform_name="PhotoHost",
        age_group="adult",
        url="https://photohost.example/p/1",
        offender_account="@offender",
        offender_ip="203.0.113.7",
        notifier=notifier,
        sent_at=T0,
    )
    assert doc["notice_id"] == "n1"
    assert doc["urls"] == ["https://photohost.example/p/1"]
    assert doc["offender"] == {"account": "@offender", "ip_address": "203.0.113.7"}
    assert doc["statement"] == domain.NON_CONSENT_ADULT
    assert doc["good_faith_statement"]
    assert doc["notifier"]["email"] == "desk@centre.example"
    assert doc["deadline"] == {"regime": "tw", "hours": 72, "legal": True, "due_at": t.deadline_at}
    # exactly these parts, built from the arguments alone: no case, takedown or victim field
    assert set(doc) == {
        "type", "notice_id", "purpose", "asks", "site", "urls", "offender", "person", "statement",
        "good_faith_statement", "identical_copies", "preserve_days", "legal_basis", "deadline",
        "re_upload_of", "notifier", "sent_at",
    }  # fmt: skip
    text = json.dumps(doc)
    for absent in ("case_id", "t1", "pseudonym"):
        assert absent not in text
    minor = domain.notice_document(
        t,
        platform_name="PhotoHost",
        age_group="minor",
        url="https://x.example/1",
        offender_account=None,
        offender_ip=None,
        notifier=notifier,
        sent_at=T0,
    )
    assert minor["statement"] == domain.MINOR and minor["preserve_days"] == 180


def test_retries_back_off_exponentially_with_bounded_jitter() -> None:
    assert domain.retry_delay(1, 0.0) == domain.BASE_DELAY_S / 2
    assert domain.retry_delay(1, 0.999) < domain.BASE_DELAY_S
    assert domain.retry_delay(3, 0.0) == domain.BASE_DELAY_S * 2
    assert domain.retry_delay(30, 0.5) <= domain.MAX_DELAY_S


def test_a_takedown_folds_from_its_events() -> None:
    (opened_event,) = Takedown.open(
        "t1", source="match", source_event_id="e1", platform_id=None, entry_key="k"
    )
    assert isinstance(opened_event, TakedownOpened)
    t = Takedown.replay([(opened_event, T0)])
    assert t is not None and (t.status, t.source, t.entry_key) == ("opened", "match", "k")


def test_the_domain_loads_no_store_nats_sql_or_http() -> None:
    assert top_level_packages_loaded("ncii_takedown.domain") == []


# -- escalation: when it is due is the regime's data; the record carries the timeline -----------


def test_escalation_is_due_at_a_legal_deadline_and_a_day_after_our_own_target() -> None:
    deadline = "2026-11-30T10:00:00.000000Z"
    assert domain.escalation_due_at(deadline, "tw") == deadline
    assert domain.escalation_due_at(deadline, "eu_dsa") == "2026-12-01T10:00:00.000000Z"
    dsa = replace(at("sent"), deadline_regime="eu_dsa", legal=False, deadline_at=deadline)
    overdue = replace(dsa, status="overdue")
    past = domain.parse_time(deadline) + timedelta(hours=1)
    assert not overdue.escalation_due(past)
    assert overdue.escalation_due(past + timedelta(days=1))
    assert not dsa.escalation_due(past + timedelta(days=1))  # not marked overdue: not yet


def test_an_escalation_records_its_due_time_and_the_timeline_it_was_given() -> None:
    from ncii_contracts.takedown import TakedownEscalated, TimelineEntry

    t = replace(at("overdue"), deadline_at="2026-11-30T10:00:00.000000Z")
    entry = TimelineEntry(event_id="e1", type="NoticeSent", occurred_at=T0, hash="h" * 64)
    (event,) = t.escalate(T0, "iWIN", timeline=[entry])
    assert isinstance(event, TakedownEscalated)
    assert event.timeline == [entry] and event.due_at == "2026-11-30T10:00:00.000000Z"


def test_an_escalation_recorded_before_the_timeline_reads_with_an_empty_one() -> None:
    from ncii_contracts.takedown import TakedownEscalated
    from ncii_events.registry import EventRegistry

    registry = EventRegistry(TakedownEscalated)
    v1 = {"takedown_id": "t1", "notice_id": "n1", "escalated_at": T0, "authority": None}
    event = registry.decode("TakedownEscalated", 1, v1)
    assert isinstance(event, TakedownEscalated)
    assert event.timeline == [] and event.due_at is None


def test_the_evidence_checklist_says_delete_nothing_first_in_both_languages() -> None:
    from ncii_takedown.guidance import EVIDENCE_CHECKLIST, checklist

    ids = [i.item_id for i in EVIDENCE_CHECKLIST]
    assert ids[0] == "delete_nothing" and len(set(ids)) == len(ids)
    assert {"accounts", "conversations", "friends", "pages"} <= set(ids)
    assert all(i.en.strip() and i.zh_tw.strip() for i in EVIDENCE_CHECKLIST)
    assert checklist("zh-TW")["items"][0]["text"] == EVIDENCE_CHECKLIST[0].zh_tw  # type: ignore[index]


@pytest.mark.parametrize("purpose", ["freeze_account", "preserve_data"])
def test_a_freeze_or_preserve_notice_has_its_own_outcome_done_not_removed(purpose: str) -> None:
    sent = replace(at("sent"), purpose=purpose)  # type: ignore[arg-type]
    with pytest.raises(domain.TransitionError, match="done or refuse"):
        sent.remove(T0)
    (event,) = sent.fulfil(T0)
    assert event.event_type == "RequestFulfilled"
    done = sent.apply(event, T0)
    assert done.status == "fulfilled" and done.status in domain.FINAL
    assert done.fulfil(T0) == [] and done.cancel("case_withdrawn") == []
    assert [e.event_type for e in sent.refuse(T0, "other")] == ["TakedownRefused"]
    document = domain.notice_document(
        replace(sent, notice_id="n1"),
        platform_name="Chat",
        age_group="adult",
        url=None,
        offender_account="@threat",
        offender_ip=None,
        notifier=domain.Notifier("centre", "desk", "d@x", "1"),
        sent_at=T0,
    )
    assert document["purpose"] == purpose and document["asks"] == domain.ASKS[purpose]  # type: ignore[index]
    assert document["offender"]["account"] == "@threat"


def test_a_takedown_opened_before_notices_had_a_purpose_reads_as_a_removal() -> None:
    from ncii_events.registry import EventRegistry

    registry = EventRegistry(TakedownOpened)
    v1 = {"takedown_id": "t1", "source": "location", "source_event_id": "e1"}
    event = registry.decode("TakedownOpened", 1, v1)
    assert isinstance(event, TakedownOpened) and event.purpose == "removal"


# -- retention (decision 0032) and consent withdrawn (decision 0044) ------------------------------


@pytest.mark.parametrize("status", sorted(domain.FINAL))
def test_an_ended_takedown_keeps_its_evidence_180_days_from_its_end(status: str) -> None:
    (event,) = at(status).schedule_retention(T0)
    assert isinstance(event, EvidenceRetentionScheduled)
    assert event.erase_at == domain.format_time(NOW + timedelta(days=180)) and event.days == 180
    scheduled = at(status).apply(event, T0)
    assert scheduled.erase_at == event.erase_at
    assert scheduled.schedule_retention(T0) == []  # once


@pytest.mark.parametrize("status", sorted(set(TABLE) - domain.FINAL))
def test_a_running_takedown_schedules_no_erasure(status: str) -> None:
    with pytest.raises(domain.TransitionError):
        at(status).schedule_retention(T0)


def test_evidence_is_erased_only_once_its_retention_ran_out() -> None:
    (scheduled,) = at("removed").schedule_retention(T0)
    kept = at("removed").apply(scheduled, T0)
    due = NOW + timedelta(days=180)
    with pytest.raises(domain.TransitionError):
        kept.erase_evidence(due - timedelta(seconds=1), erased=["e1"], kept=[])
    with pytest.raises(domain.TransitionError):
        at("sent").erase_evidence(due, erased=["e1"], kept=[])  # nothing scheduled
    (erased,) = kept.erase_evidence(due, erased=["e1"], kept=["e0"])
    assert isinstance(erased, EvidenceErased)
    assert (erased.erased, erased.kept) == (["e1"], ["e0"])
    assert kept.apply(erased, T0).erase_evidence(due, erased=["e1"], kept=[]) == []


def test_no_evidence_is_added_once_the_takedown_is_in_retention() -> None:
    (scheduled,) = at("refused").schedule_retention(T0)
    with pytest.raises(domain.TransitionError):
        at("refused").apply(scheduled, T0).record_evidence(
            captured_at=T0,
            capture_method="screenshot",
            capture_sha256="c" * 64,
            url=None,
            preserved_by=None,
            offender_account=None,
            offender_ip=None,
        )


@pytest.mark.parametrize("status", sorted(set(TABLE) - domain.FINAL))
def test_withdrawn_consent_cancels_a_removal_but_not_a_freeze_or_preserve(status: str) -> None:
    (event,) = at(status).cancel_for_consent()
    assert isinstance(event, TakedownCancelled) and event.reason == "consent_withdrawn"
    for purpose in ("freeze_account", "preserve_data"):
        assert replace(at(status), purpose=purpose).cancel_for_consent() == []


def test_an_escalation_is_sent_to_the_authority_once_and_only_after_it_was_escalated() -> None:
    from ncii_contracts.takedown import EscalationSent

    with pytest.raises(domain.TransitionError):
        at("overdue").escalation_sent(authority_id="a1", channel="webhook", at=T0, attempts=1)
    (escalated,) = at("overdue").escalate(T0, "iWIN")
    t = at("overdue").apply(escalated, T0)
    (sent,) = t.escalation_sent(authority_id="a1", channel="webhook", at=T0, attempts=2)
    assert isinstance(sent, EscalationSent) and (sent.authority_id, sent.attempts) == ("a1", 2)
    assert (
        t.apply(sent, T0).escalation_sent(authority_id="a1", channel="webhook", at=T0, attempts=3)
        == []
    )


def test_the_authority_gets_the_notice_as_sent_and_the_timeline_ending_with_the_escalation() -> (
    None
):
    from ncii_contracts.takedown import TakedownEscalated, TimelineEntry

    t = replace(at("overdue"), deadline_at="2026-11-30T10:00:00.000000Z")
    entry = TimelineEntry(event_id="e1", type="NoticeSent", occurred_at=T0, hash="h" * 64)
    (record,) = t.escalate(T0, "iWIN", timeline=[entry])
    assert isinstance(record, TakedownEscalated)
    notifier = domain.Notifier("centre", "desk", "desk@centre.example", "+886")
    notice = domain.notice_document(
        t,
        platform_name="PhotoHost",
        age_group="minor",
        url="https://photohost.example/p/1",
        offender_account=None,
        offender_ip=None,
        notifier=notifier,
        sent_at=T0,
    )
    document = domain.escalation_document(
        notice,
        record,
        escalation_event_id="e2",
        escalation_hash="k" * 64,
        escalation_occurred_at=T0,
        authority_name="Ministry",
        notifier=notifier,
    )
    assert document["type"] == "ncii.takedown.escalation" and document["notice"] == notice
    assert document["regime"] == "tw" and "art. 8" in document["legal_basis"]
    assert [e["event_id"] for e in document["timeline"]] == ["e1", "e2"]
    assert document["timeline"][-1]["type"] == "TakedownEscalated"
    assert document["escalation_due_at"] == "2026-11-30T10:00:00.000000Z"
