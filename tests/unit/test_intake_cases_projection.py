"""Intake's cases read model, on real SQLite: a batch folded at once gives the same rows as the
same events applied one at a time."""

from __future__ import annotations

from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.intake import (
    CaseErased,
    CaseOpened,
    CaseWithdrawn,
    Consents,
    HashesSubmitted,
    LocationReported,
    MandatoryReportFiled,
    NonConsentRecorded,
    SubmittedHash,
)
from ncii_events.store import RecordedEvent
from ncii_intake.read_models.projections import CasesProjection
from ncii_intake.read_models.schema import CASES, METADATA
from sqlalchemy import Engine, create_engine, select

from tests.support.factories import recorded_case_event


def _recorded(seq: int, case_id: str, event: DomainEvent) -> RecordedEvent:
    occurred_at = f"2026-11-24T10:{seq:02d}:00.000000Z"
    return recorded_case_event(seq, event, case_id=case_id, occurred_at=occurred_at)


def _opened(reference: str, age_group: str) -> CaseOpened:
    return CaseOpened(
        organisation="org-a",
        reference=reference,
        age_group=age_group,  # type: ignore[arg-type]
        harm_categories=["threat_sextortion"],
        spread_status="threatened",
        channels=[],
        intake_channel="phone",
        learned_at="2026-11-24T09:00:00.000000Z",
        consents=Consents(takedown=True, share_hashes=True, referral=True),
    )


def _location(n: int) -> LocationReported:
    return LocationReported(location_id=f"l{n}", platform="p", channel_kind="social_platform")


HASHES = HashesSubmitted(
    submission_id="s1",
    organisation="org-a",
    age_group="adult",
    hashes=[
        SubmittedHash(algorithm="md5", value="0" * 32, media="image"),
        SubmittedHash(algorithm="md5", value="1" * 32, media="image"),
    ],
)

HISTORY: list[tuple[str, DomainEvent]] = [
    ("adult", _opened("AAAA-AAAA-AAAA", "adult")),
    ("minor", _opened("BBBB-BBBB-BBBB", "minor")),
    ("adult", _location(1)),
    ("gone", _opened("CCCC-CCCC-CCCC", "adult")),
    ("adult", NonConsentRecorded(stated_at="2026-11-24T10:05:00.000000Z", method="written")),
    ("minor", _location(2)),
    ("adult", _location(3)),
    ("adult", HASHES),
    ("minor", MandatoryReportFiled(filed_at="2026-11-24T11:00:00.000000Z", authority="x")),
    ("gone", CaseWithdrawn(withdrawn_by="victim")),
    ("gone", CaseErased(erased_by="victim")),
    ("never-opened", _location(4)),
    ("minor", CaseWithdrawn(withdrawn_by="partner")),
]
EVENTS = [_recorded(i, case, ev) for i, (case, ev) in enumerate(HISTORY, start=1)]


def _engine() -> Engine:
    engine = create_engine("sqlite://")
    METADATA.create_all(engine)
    return engine


def _apply_in_batches(size: int) -> dict[str, dict[str, Any]]:
    engine = _engine()
    projection = CasesProjection()
    for start in range(0, len(EVENTS), size):
        with engine.begin() as conn:
            projection.apply_batch(conn, EVENTS[start : start + size])
    with engine.connect() as conn:
        return {r["case_id"]: dict(r) for r in conn.execute(select(CASES)).mappings()}


def test_a_batch_folded_at_once_writes_the_same_rows_as_one_event_at_a_time() -> None:
    one_at_a_time = _apply_in_batches(1)
    assert _apply_in_batches(len(EVENTS)) == one_at_a_time
    assert _apply_in_batches(4) == one_at_a_time


def test_the_rows_say_what_happened_to_each_case() -> None:
    rows = _apply_in_batches(len(EVENTS))
    assert set(rows) == {"adult", "minor", "gone"}  # an event of an unknown case changes nothing
    adult, minor, gone = rows["adult"], rows["minor"], rows["gone"]
    assert (adult["status"], adult["locations"], adult["hashes"]) == ("active", 2, 2)
    assert adult["statement_recorded_at"] == "2026-11-24T10:05:00.000000Z"
    assert adult["last_seq"] == 8
    # an old log's MandatoryReportFiled still folds (the report itself is referral's now)
    assert "report_due_at" not in minor and "report_filed_at" not in minor
    assert (minor["status"], minor["locations"], minor["last_seq"]) == ("withdrawn", 1, 13)
    assert gone["status"] == "erased"
    assert gone["opened_at"] == "2026-11-24T10:04:00.000000Z"


def test_an_adult_case_awaits_the_statement_until_it_is_recorded() -> None:
    engine = _engine()
    with engine.begin() as conn:
        CasesProjection().apply_batch(conn, EVENTS[:1])
        status = conn.execute(select(CASES.c.status)).scalar_one()
    assert status == "awaiting_statement"
