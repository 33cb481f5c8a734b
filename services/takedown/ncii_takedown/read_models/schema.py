"""Takedown's tables. No personal data: URLs, the offender's account and address and who
preserved evidence stay encrypted in the log, and so does the platform name a case worker typed
for a location (it is resolved to a registered platform's id, or left unresolved).

* ``td_platforms``: the registry (reference stream).
* ``td_cases``: what takedown needs of a case (organisation, age group, consent, statement,
  closed).
* ``td_takedowns``: one row per takedown, its state, its notice and deadline, its purpose, and
  its evidence's retention (when it is due for erasure, when it was erased).
* ``td_outbox``: events the reactor decided on (TakedownOpened, TakedownRequested,
  TakedownCancelled), written in the checkpoint's transaction and appended by the publisher.
* ``td_deliveries``: notices and cancellations to deliver (webhook), or to send by hand (web form,
  e-mail until SMTP lands): attempts, the next attempt, dead letters.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

METADATA = MetaData()
RowId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

PLATFORMS = Table(
    "td_platforms",
    METADATA,
    Column("platform_id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("name_key", String(100), nullable=False, index=True),
    Column("kind", String(30), nullable=False),
    Column("jurisdiction", String(2), nullable=False),
    Column("regimes", String(200), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("webhook_url", String(2048)),
    Column("email", String(254)),
    Column("form_url", String(2048)),
    Column("api_organisation", String(100), index=True),
    Column("takes_hash_lists", Boolean, nullable=False),
    Column("trusted_flagger", Boolean, nullable=False),
    Column("secret_version", Integer, nullable=False),
    Column("registered_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)

CASES = Table(
    "td_cases",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("organisation", String(100), nullable=False),
    Column("age_group", String(10), nullable=False),
    Column("consents_takedown", Boolean, nullable=False),
    Column("statement_recorded", Boolean, nullable=False),
    Column("closed", String(20)),  # None, case_withdrawn or case_erased
)

TAKEDOWNS = Table(
    "td_takedowns",
    METADATA,
    Column("takedown_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("source", String(10), nullable=False),
    Column("location_id", String(36)),
    Column("match_id", String(100)),
    Column("entry_key", String(36)),
    Column("platform_id", String(36), index=True),
    Column("previous_takedown_id", String(36)),
    Column("status", String(20), nullable=False, index=True),
    Column("evidence", Integer, nullable=False),
    Column("notice_id", String(36), unique=True),
    Column("channel", String(10)),
    Column("deadline_regime", String(20)),
    Column("deadline_hours", Integer),
    Column("legal", Boolean),
    Column("sent_at", String(40)),
    Column("deadline_at", String(40), index=True),
    Column("acknowledged_at", String(40)),
    Column("removed_at", String(40)),
    Column("refused_reason", String(40)),
    Column("opened_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    # removal | freeze_account | preserve_data (migration 0002)
    Column("purpose", String(20), nullable=False, server_default="removal"),
    Column("ended_at", String(40)),
    Column("erase_at", String(40), index=True),  # evidence due for erasure (decision 0032)
    Column("evidence_erased_at", String(40)),
    # the deadline sweep: due notices by status and deadline, not every open one (migration 0004)
    Index("ix_td_takedowns_status_deadline", "status", "deadline_at"),
)

OUTBOX = Table(
    "td_outbox",
    METADATA,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("case_id", String(36), nullable=False),
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
    Index("ix_td_outbox_unpublished", "published_at", "id"),
)

DELIVERIES = Table(
    "td_deliveries",
    METADATA,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("delivery_id", String(60), nullable=False, unique=True),
    Column("kind", String(12), nullable=False),  # notice | cancellation | escalation
    Column("takedown_id", String(36), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("notice_id", String(36), nullable=False, index=True),
    Column("platform_id", String(36), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("cancel_reason", String(20)),
    # pending (the worker sends it) | manual (a case worker sends it) | delivered | dead |
    # cancelled (the case closed before it left)
    Column("status", String(10), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", String(40)),
    Column("last_error", String(60)),
    Column("created_at", String(40), nullable=False),
    Column("delivered_at", String(40)),
    Column("traceparent", String(55)),  # what queued it: the delivery's trace (decision 55)
)
