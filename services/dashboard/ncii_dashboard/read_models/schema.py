"""The dashboard's tables (decision 0047). Codes, counts, times and ids only: every value here
is a clear, closed field of an event (an enumeration, a flag, a time) or a registered party's
name (an organisation, a registered platform, a partner organisation). Nothing is decrypted to
fill them, so nothing personal can reach them; a case's rows are deleted when it is erased.

* ``dash_platforms``: the platform registry (reference stream): id, name, kind, jurisdiction.
* ``dash_cases``: one row per case: organisation, age group, intake channel, spread status,
  status (open, closed, withdrawn) and when it was opened and closed.
* ``dash_case_categories``: the case's legal categories (the opening's, then the assessment's).
* ``dash_locations``: reported locations: the kind of service (not its name, which is personal).
* ``dash_takedowns``: one row per takedown: platform, purpose, status, the clock it ran against
  and how it ended.
* ``dash_reports``: one row per art. 7 report: kind, due, filed (late or not), overdue.
* ``dash_referrals``: one row per referral: partner organisation, service, status.
* ``dash_matches`` / ``dash_sighting_windows``: sightings by platform organisation.
* ``dash_erasures``: how many cases were erased per month (a count: nothing else survives).
* ``dash_counts``: the counts the views show, kept by the fold in the same transaction as the
  rows (``counts``; decision 0054): a counter, its key (a code, an id, a month or a registered
  name), a sub-key (a code) and the count.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table

METADATA = MetaData()

PLATFORMS = Table(
    "dash_platforms",
    METADATA,
    Column("platform_id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("jurisdiction", String(2), nullable=False),
    Column("api_organisation", String(100), index=True),
)

CASES = Table(
    "dash_cases",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("organisation", String(100), nullable=False),
    Column("age_group", String(10), nullable=False),
    Column("intake_channel", String(20), nullable=False),
    Column("spread_status", String(20), nullable=False),
    Column("status", String(12), nullable=False),  # open | closed | withdrawn
    Column("opened_at", String(40), nullable=False, index=True),
    Column("closed_at", String(40)),
    Index("ix_dash_cases_status", "status"),
)

CASE_CATEGORIES = Table(
    "dash_case_categories",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("category", String(40), primary_key=True),
)

LOCATIONS = Table(
    "dash_locations",
    METADATA,
    Column("location_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("channel_kind", String(20), nullable=False),
    Column("reported_at", String(40), nullable=False),
)

TAKEDOWNS = Table(
    "dash_takedowns",
    METADATA,
    Column("takedown_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("source", String(10), nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("platform_id", String(36)),
    # opened | requested | sent | acknowledged | removed | fulfilled | refused | cancelled
    Column("status", String(12), nullable=False),
    Column("opened_at", String(40), nullable=False, index=True),
    Column("sent_at", String(40)),
    Column("deadline_at", String(40)),
    Column("deadline_regime", String(20)),
    Column("legal", Boolean),
    Column("ended_at", String(40)),
    Column("in_time", Boolean),
    Column("hours_to_end", Float),
    Column("refusal_reason", String(30)),
    Column("overdue", Boolean, nullable=False),
    Column("escalated", Boolean, nullable=False),
    # medians of time to removal by index (decision 0054): the k-th value of a platform's
    # removals, and of all of them (platform_id covered, for the jurisdictions' medians)
    Index("ix_dash_takedowns_platform_hours", "status", "platform_id", "hours_to_end"),
    Index("ix_dash_takedowns_hours", "status", "hours_to_end", "platform_id"),
)

REPORTS = Table(
    "dash_reports",
    METADATA,
    Column("report_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(12), nullable=False),  # due | overdue | filed
    Column("due_at", String(40), nullable=False, index=True),
    Column("filed_at", String(40)),
    Column("late", Boolean),
)

REFERRALS = Table(
    "dash_referrals",
    METADATA,
    Column("referral_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False, index=True),
    Column("partner_organisation", String(100), nullable=False),
    Column("service", String(30), nullable=False),
    Column("status", String(12), nullable=False),
    Column("offered_at", String(40), nullable=False, index=True),
)

MATCHES = Table(
    "dash_matches",
    METADATA,
    Column("match_id", String(64), primary_key=True),
    Column("case_id", String(36), index=True),  # None: an imported list's entry (no case)
    Column("platform", String(100), nullable=False),
    Column("seen_at", String(40), nullable=False, index=True),
    Column("sightings", Integer, nullable=False),
    Column("verdict", String(20)),
)

SIGHTING_WINDOWS = Table(
    "dash_sighting_windows",
    METADATA,
    Column("match_id", String(64), primary_key=True),
    Column("window_start", String(40), primary_key=True),
    Column("case_id", String(36), index=True),
    Column("sightings", Integer, nullable=False),
)

ERASURES = Table(
    "dash_erasures",
    METADATA,
    Column("month", String(7), primary_key=True),
    Column("erased", Integer, nullable=False),
)

COUNTS = Table(
    "dash_counts",
    METADATA,
    Column("counter", String(40), primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("sub", String(40), primary_key=True),
    Column("n", Integer, nullable=False),
)

CASE_TABLES = (CASE_CATEGORIES, LOCATIONS, TAKEDOWNS, REPORTS, REFERRALS, MATCHES, SIGHTING_WINDOWS)
"""Every table keyed to a case besides ``dash_cases``: an erasure deletes the case's rows."""
