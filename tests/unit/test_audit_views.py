"""The audit side's pure parts (decision 37): the as-of fold, and the log-order checks the
whole-log verify applies to its workers' results."""

from __future__ import annotations

from ncii_audit.bundle import bundle_body
from ncii_audit.history import CaseHistory, Entry, fold
from ncii_audit.verify import _UNSIGNED, Checked, OrderedChecks
from ncii_events.envelope import GENESIS


def _entry(position: int, aggregate: str, payload: dict[str, object]) -> Entry:
    return Entry(
        position=position,
        seq=100 + position,
        event_id=f"e{position}",
        type=f"T{position}",
        schema_version=1,
        aggregate=aggregate,
        aggregate_id=aggregate,
        occurred_at=f"2026-11-30T08:00:0{position}.000000Z",
        actor={"organisation": "o", "principal": "p", "role": "caseworker"},
        correlation_id="c",
        causation_id="c",
        signer="intake",
        key_id="k",
        hash=f"{position:064d}",
        prev_hash=GENESIS,
        check="ok",
        payload=payload,
    )


def test_the_fold_keeps_each_fields_latest_value_and_the_event_that_set_it() -> None:
    history = CaseHistory(
        "c1",
        [
            _entry(1, "case", {"status": "open", "age_group": "adult"}),
            _entry(2, "takedown", {"platform": None}),
            _entry(3, "case", {"status": "withdrawn"}),
        ],
        None,
        3,
        0,
    )
    case, takedown = fold(history)
    assert case.fields == {"status": "withdrawn", "age_group": "adult"}
    assert case.set_by == {"status": 3, "age_group": 1}
    assert case.events == ["T1", "T3"] and case.last_at.startswith("2026-11-30T08:00:03")
    assert takedown.aggregate == "takedown" and takedown.events == ["T2"]


def _checked(seq: int, prev: str, digest: str, verdict: str | None = None) -> Checked:
    return Checked(seq, f"e{seq}", "T", ("c", "case", "c"), digest, prev, True, verdict)


def test_a_sequence_missing_from_the_store_is_named_where_it_is_missing() -> None:
    checks = OrderedChecks()
    checks.feed([_checked(1, GENESIS, "a" * 64), _checked(3, "b" * 64, "c" * 64)])
    report = checks.report()
    assert report.first_break is not None and report.first_break.seq == 2
    assert report.first_break.reason == "missing from the store: seq 2"
    # the event after the hole links to a hash nobody has seen: bad too
    assert report.bad == 2 and report.verified == 1


def test_an_unsigned_event_is_legacy_only_before_the_first_signed_one() -> None:
    checks = OrderedChecks()
    checks.feed(
        [
            _checked(1, GENESIS, "a" * 64, _UNSIGNED),
            _checked(2, "a" * 64, "b" * 64),
            _checked(3, "b" * 64, "c" * 64, _UNSIGNED),
        ]
    )
    report = checks.report()
    assert (report.unsigned, report.verified, report.bad) == (1, 1, 1)
    assert report.first_break is not None and report.first_break.seq == 3
    assert report.first_break.reason == "unsigned, though events are signed since seq 2"


def test_a_bundle_names_the_evidence_events_and_a_captures_sha256() -> None:
    capture = "ab" * 32
    history = {
        "summary": {"case_id": "c1"},
        "events": [
            _entry(1, "case", {"status": "open"}).to_json(),
            {
                **_entry(2, "takedown", {"capture_sha256": capture, "url": None}).to_json(),
                "type": "EvidencePreserved",
            },
        ],
    }
    body = bundle_body(history, [], "NCII", {}, {})
    [evidence] = body["evidence"]
    assert evidence["type"] == "EvidencePreserved" and evidence["position"] == 2
    assert evidence["capture_sha256"] == capture and evidence["hash"] == f"{2:064d}"


def test_without_public_keys_a_replay_says_signatures_were_not_checked() -> None:
    from ncii_audit.history import UNCHECKED, build_history
    from ncii_contracts.intake import PoliceReportDecisionRecorded
    from ncii_events import codec
    from ncii_events.envelope import Actor
    from ncii_events.model import AggregateRef, Cause, RecordedEvent

    event = PoliceReportDecisionRecorded(decision="declined")
    encoded = codec.encode(
        AggregateRef("c1", "case", "c1"),
        event,
        event.model_dump(mode="json"),
        event_id="e1",
        prev_hash=GENESIS,
        cause=Cause(Actor("o", "p", "caseworker"), "c", "c"),
        actor_doc={"organisation": "o", "principal": "p", "role": "caseworker"},
        traceparent=None,
        signing=None,
        stream="NCII",
    )
    recorded = RecordedEvent(seq=1, envelope=encoded.envelope, event=event)
    history = build_history("c1", [recorded], None, personal_fields={}, shown=False)
    assert [e.check for e in history.entries] == [UNCHECKED]
    assert history.summary()["signatures_checked"] is False
