"""The audit side's pure parts (decision 37): the as-of fold, and the log-order checks the
whole-log verify applies to its workers' results."""

from __future__ import annotations

import json

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
    # the hole is named by what the next event of its aggregate holds of it
    assert report.first_break.reason.startswith("missing from the store: seq 2; ")
    assert "case c's case c event with hash " + "b" * 64 in report.first_break.reason
    assert "(seq 3, event e3)" in report.first_break.reason
    # the event after the hole links to a hash nobody has seen: bad too
    assert report.bad == 2 and report.verified == 1


def test_two_holes_before_a_broken_link_are_not_guessed_between() -> None:
    checks = OrderedChecks()
    checks.feed([_checked(1, GENESIS, "a" * 64), _checked(4, "b" * 64, "c" * 64)])
    checks.feed([_checked(6, "x" * 64, "d" * 64)])
    report = checks.report()
    assert report.first_break is not None
    assert report.first_break.reason == "missing from the store: seq 2-3"


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


def test_the_bundle_pdf_holds_history_evidence_and_chain_proof_and_points_to_the_json() -> None:
    import io

    from ncii_audit.bundle import (
        attached_bundle,
        bundle_body,
        bundle_json,
        digest_of,
        render_pdf,
        sign_bundle,
    )
    from ncii_audit.history import build_history
    from ncii_contracts.intake import PoliceReportDecisionRecorded
    from ncii_contracts.takedown import EvidencePreserved
    from ncii_events import codec
    from ncii_events.audit import SignaturePolicy
    from ncii_events.envelope import Actor
    from ncii_events.model import AggregateRef, Cause, RecordedEvent
    from ncii_events.signing import PublicKeys, SigningKey, allowed_signers, public_b64
    from pypdf import PdfReader

    intake, takedown, audit = (SigningKey.generate(s) for s in ("intake", "takedown", "audit"))
    keys = {k.signer: [public_b64(k.public_key)] for k in (intake, takedown)}
    allowed = allowed_signers(
        {"intake": [PoliceReportDecisionRecorded], "takedown": [EvidencePreserved]}
    )
    case, capture = "0196a3c2-0000-7000-8000-00000000000b", "cd" * 32
    written = [
        (
            AggregateRef(case, "case", case),
            PoliceReportDecisionRecorded(decision="declined"),
            intake,
        ),
        (
            AggregateRef(case, "takedown", "t1"),
            EvidencePreserved(
                takedown_id="t1",
                captured_at="2026-11-30T08:00:00Z",
                capture_method="screenshot",
                capture_sha256=capture,
            ),
            takedown,
        ),
    ]
    events = []
    for seq, (ref, event, signing) in enumerate(written, start=1):
        encoded = codec.encode(
            ref,
            event,
            event.model_dump(mode="json"),
            event_id=f"e{seq}",
            prev_hash=GENESIS,
            cause=Cause(Actor("centre", "p", "caseworker"), "c", "c"),
            actor_doc={"organisation": "centre", "principal": "p", "role": "caseworker"},
            traceparent=None,
            signing=signing,
            stream="NCII",
        )
        events.append(RecordedEvent(seq=seq, envelope=encoded.envelope, event=event))
    policy = SignaturePolicy("NCII", PublicKeys(keys), allowed)
    history = build_history(case, events, policy, personal_fields={}, shown=False)
    assert history.ok
    history_json = {"summary": history.summary(), "events": [e.to_json() for e in history.entries]}
    document = sign_bundle(bundle_body(history_json, events, "NCII", keys, allowed), audit)

    pdf = render_pdf(document)
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    # the signed JSON is a standard attachment any PDF reader lists, and the one we find
    assert reader.attachments == {f"case-bundle-{case}.json": [bundle_json(document).encode()]}
    assert attached_bundle(pdf) == document
    flat = " ".join(text.split())
    assert case in flat and "PoliceReportDecisionRecorded" in flat and "EvidencePreserved" in flat
    assert capture in flat  # the evidence capture's hash
    for recorded in events:  # the chain proof: each event's hash and signer
        assert recorded.envelope.hash in flat
    assert f"signed by takedown key {takedown.key_id}" in flat
    assert digest_of(document["bundle"]) in flat and document["signature"]["value"] in flat
    assert "ncii audit verify-bundle FILE.json --public-key KEY" in flat
    assert "attached to this PDF" in flat
    assert "not signed and proves nothing by itself" in flat


def test_as_of_folds_each_aggregate_by_its_own_services_published_domain_code() -> None:
    from datetime import UTC, datetime

    from ncii_audit.folds import domain_states, published_folds
    from ncii_audit.history import occurred_by
    from ncii_contracts.intake import CaseOpened, Consents, NonConsentRecorded
    from ncii_events import codec
    from ncii_events.envelope import Actor, Envelope
    from ncii_events.model import AggregateRef, Cause, RecordedEvent

    folds = published_folds()
    assert {"case", "takedown", "referral"} <= set(folds)
    assert folds["case"].service == "intake"
    case = "0196a3c2-0000-7000-8000-00000000000c"
    opened = CaseOpened(
        organisation="o",
        reference="AAAA-BBBB-CCCC",
        age_group="adult",
        harm_categories=["threat_sextortion"],
        spread_status="threatened",
        channels=[],
        intake_channel="phone",
        learned_at="2026-11-30T07:00:00.000000Z",
        consents=Consents(takedown=True, share_hashes=True, referral=True),
    )
    stated = NonConsentRecorded(stated_at="2026-11-30T09:00:00.000000Z", method="written")
    events = []
    for seq, (event, at) in enumerate(
        [(opened, "2026-11-30T08:00:00.000000Z"), (stated, "2026-11-30T09:00:00.000000Z")], 1
    ):
        encoded = codec.encode(
            AggregateRef(case, "case", case),
            event,
            event.model_dump(mode="json"),
            event_id=f"e{seq}",
            prev_hash=GENESIS,
            cause=Cause(Actor("o", "p", "caseworker"), "c", "c"),
            actor_doc={"organisation": "o", "principal": "p", "role": "caseworker"},
            traceparent=None,
            signing=None,
            stream="NCII",
        )
        doc = {**encoded.envelope.to_dict(), "occurred_at": at}
        events.append(RecordedEvent(seq=seq, envelope=Envelope.from_dict(doc), event=event))

    def status_at(hour: int) -> object:
        when = datetime(2026, 11, 30, hour, 30, tzinfo=UTC)
        [folded] = domain_states(case, occurred_by(events, when), folds)
        assert folded["folded_by"] == "intake" and folded["aggregate"] == "case"
        assert json.loads(json.dumps(folded)) == folded  # JSON values only
        return folded["state"]["status"]

    # intake's own rule: an adult's case acts only once her statement is recorded
    assert status_at(8) == "awaiting_statement"
    assert status_at(9) == "active"
