"""Referral's tables. No personal data: the pseudonym, the contact route, notes, reasons, the
region and the authority's reference stay encrypted in the log (decision 0033).

* ``rf_partners``: the support partners' registry (reference stream).
* ``rf_cases``: what referral needs of a case (organisation, age group, consent to referral,
  the facts guidance derives from, closed).
* ``rf_referrals``: one row per referral: its partner, service and state.
* ``rf_reports``: one row per art. 7 report (the minor's, the known suspect's): due, filed,
  overdue; the sweep and the staff view read it.
* ``rf_offenders``: whether the case's offender is known (intake's OffenderDetailsRecorded).
* ``rf_guidance``: the items staff ticked, per case.
* ``rf_outbox``: events the reactor decided on, written in the checkpoint's transaction.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

METADATA = MetaData()
RowId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

PARTNERS = Table(
    "rf_partners",
    METADATA,
    Column("partner_id", String(36), primary_key=True),
    Column("organisation", String(100), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("services", String(200), nullable=False),
    Column("regions", String(400), nullable=False),
    Column("languages", String(100), nullable=False),
    Column("taking_referrals", Boolean, nullable=False),
    Column("registered_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

CASES = Table(
    "rf_cases",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("organisation", String(100), nullable=False),
    Column("age_group", String(10), nullable=False),
    Column("consents_referral", Boolean, nullable=False),
    Column("harm_categories", String(300), nullable=False),
    Column("spread_status", String(20), nullable=False),
    Column("on_social_platform", Boolean, nullable=False),
    Column("offender_known", Boolean, nullable=False),
    Column("learned_at", String(40), nullable=False),
    Column("closed", String(20)),
    # filed through intake's superseded route (decision 34): the minor's report is not late
    Column("intake_report_filed_at", String(40)),
)

REFERRALS = Table(
    "rf_referrals",
    METADATA,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("partner_id", String(36), nullable=False),
    Column("partner_organisation", String(100), nullable=False, index=True),
    Column("service", String(30), nullable=False),
    Column("status", String(12), nullable=False, index=True),
    Column("consent_basis", String(30), nullable=False),
    Column("offered_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

REPORTS = Table(
    "rf_reports",
    METADATA,
    Column("report_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(12), nullable=False),  # due | overdue | filed
    Column("learned_at", String(40), nullable=False),
    Column("due_at", String(40), nullable=False),
    Column("filed_at", String(40)),
    Column("late", Boolean),
    Column("overdue_at", String(40)),
    # the sweep and the staff view: open reports of a status in due order, read in index order
    # up to a page (no sort; decision 36)
    Index("ix_rf_reports_status_due_id", "status", "due_at", "report_id"),
)

OFFENDERS = Table(
    # whether the offender is known, from intake's OffenderDetailsRecorded read without
    # decrypting it (only ``known`` is clear; decision 36): guidance and the suspect clock
    "rf_offenders",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("known", Boolean, nullable=False),
    Column("recorded_at", String(40), nullable=False),
)

GUIDANCE = Table(
    "rf_guidance",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("item", String(60), primary_key=True),
    Column("ticked_at", String(40), nullable=False),
)

OUTBOX = Table(
    "rf_outbox",
    METADATA,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("case_id", String(36), nullable=False),
    Column("aggregate", String(30), nullable=False),
    Column("aggregate_id", String(36), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("payload", Text, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("causation_id", String(64), nullable=False),
    # the span that handled the cause: the published event continues its trace (decision 55)
    Column("traceparent", String(55)),
    Column("created_at", String(40), nullable=False),
    Column("published_at", String(40)),
    # the publisher's unpublished rows, without a scan of those published (migration 0004)
    Index("ix_rf_outbox_unpublished", "published_at", "id"),
)
