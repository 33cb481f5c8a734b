"""The bank's tables. The bank is the truth for matching; every matcher process follows it.

* ``hm_entries``: one row per banked hash (``live`` = matchable, ``listed`` = in the platforms'
  delta feed), never deleted: a removal flips the flags and is recorded as a change. PDQ
  rotations (``aliases``) and vPDQ frames (``frames``) are stored as concatenated hex
  (``split_hashes`` reads them back).
* ``hm_changes``: every change to what matches, keyed ``(stream, stream_seq << 24 | n)``: the key
  comes from the log, so it is the same on every replica and after every rebuild, and the delta
  feed's cursor is valid on any replica. Kinds: ``add`` and ``remove`` (matching and the feed),
  ``unmatch`` (matching only; the feed's removal follows on the case's stream), ``negative``
  (a hash entered the negative bank) and ``settings`` (a bank's settings changed).
* ``hm_banks``: every bank, with the programme it belongs to (``adults`` or
  ``child_protection``, decision 39); ``hm_platform_programmes``: each platform's subscription.
* ``hm_outbox``: events the bank decided to record (HashesBanked, HashesWithdrawn), written in
  the same transaction as the change and appended to the log by the outbox publisher.
* ``hm_sighting_windows`` (not a projection): the running count of a platform's sightings of
  one entry in the current window, until the window's SightingsCounted is in the log (no URL:
  the window's first URL is in its MatchFound, encrypted).

A case's hash values are personal: they are here only while the case lives. Erasure overwrites
them (``value``, ``ident``, ``aliases``, ``frames``; decision 26) and a rebuild cannot read them
back. The case id of an entry never leaves the service, and sighting URLs stay encrypted in the
log. Alembic (``migrations/``) creates these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

METADATA = MetaData()
EntryId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

BANKS = Table(
    "hm_banks",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),  # case | list
    Column("organisation", String(100)),
    Column("programme", String(20), nullable=False, server_default="adults"),
    Column("enabled", Boolean, nullable=False),
    Column("pdq_threshold", Integer, nullable=False),
    Column("match_dihedral", Boolean, nullable=False),
    Column("vpdq_query_match_percent", Integer, nullable=False),
    Column("vpdq_compared_match_percent", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

ENTRIES = Table(
    "hm_entries",
    METADATA,
    Column("entry_id", EntryId, primary_key=True, autoincrement=True),
    Column("entry_key", String(36), nullable=False, unique=True),
    Column("bank", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # case | list
    Column("case_id", String(36), index=True),
    Column("source_id", String(36), nullable=False),  # submission id | import id
    Column("algorithm", String(8), nullable=False),
    Column("media", String(8), nullable=False),
    Column("ident", String(72), nullable=False),  # value, or a digest of a video's frames
    Column("value", String(64)),
    Column("aliases", Text),  # PDQ: the 7 rotations/flips, concatenated hex
    Column("frames", Text),  # vPDQ: distinct frame hashes, concatenated hex
    Column("quality", Integer),
    Column("live", Boolean, nullable=False),
    Column("listed", Boolean, nullable=False),
    Column("state", String(16), nullable=False),  # live | withdrawn | erased | negative | replaced
    Column("added_at", String(40), nullable=False),
    Column("removed_at", String(40)),
    Index("ix_hm_entries_bank_ident", "bank", "algorithm", "ident"),
    Index("ix_hm_entries_value", "algorithm", "value"),
)

CHANGES = Table(
    "hm_changes",
    METADATA,
    Column("stream", String(1), primary_key=True),  # c (cases) | r (reference)
    Column("key", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(10), nullable=False),  # add | remove | unmatch | negative | settings
    Column("entry_key", String(36)),
    Column("negative_id", String(36)),
    Column("at", String(40), nullable=False),
    Column("mix", BigInteger),  # the order within a release window of the feed (decision 26)
)

NEGATIVES = Table(
    "hm_negatives",
    METADATA,
    Column("neg_no", EntryId, primary_key=True, autoincrement=True),
    Column("negative_id", String(36), nullable=False, unique=True),
    Column("algorithm", String(8), nullable=False),
    Column("value", String(64), nullable=False),
    Column("target", String(20), nullable=False),
    Column("match_id", String(80), nullable=False),
    Column("added_at", String(40), nullable=False),
    Index("ix_hm_negatives_value", "algorithm", "value"),
)

CLOSED_CASES = Table(
    "hm_closed_cases",
    METADATA,
    Column("case_id", String(36), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("at", String(40), nullable=False),
)

MATCHES = Table(
    "hm_matches",
    METADATA,
    Column("match_id", String(80), primary_key=True),
    Column("match_uuid", String(36), nullable=False),
    Column("platform", String(100), nullable=False),
    Column("entry_key", String(36), nullable=False, index=True),
    Column("sightings", Integer, nullable=False),
    Column("last_seen_at", String(40)),
    Column("verdict", String(20)),
    Column("verdict_at", String(40)),
    Column("content_algorithm", String(8)),
    Column("content_value", String(64)),
    Column("fp_confirmed", Boolean, nullable=False),
)

PLATFORM_PROGRAMMES = Table(
    "hm_platform_programmes",
    METADATA,
    # a platform's subscription (decision 39); a platform without a row has the default
    Column("platform", String(100), primary_key=True),
    Column("programmes", String(60), nullable=False),  # comma-separated, possibly empty
    Column("updated_at", String(40), nullable=False),
)

OUTBOX = Table(
    "hm_outbox",
    METADATA,
    Column("id", EntryId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("stream", String(1), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("aggregate", String(30), nullable=False),
    Column("aggregate_id", String(80), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("payload", Text, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("causation_id", String(64), nullable=False),
    # the span that handled the cause: the published event continues its trace (decision 55)
    Column("traceparent", String(55)),
    Column("created_at", String(40), nullable=False),
    Column("published_at", String(40), index=True),
)

PENDING = MetaData()
"""Tables that are not projections: what they hold is not in the log yet, so a rebuild of the
bank (which drops and recreates ``METADATA``) must leave them alone."""

SIGHTING_WINDOWS = Table(
    "hm_sighting_windows",
    PENDING,
    # one platform's sightings of one entry (its match aggregate) in one window of the clock
    Column("match_uuid", String(36), primary_key=True),
    Column("window_start", BigInteger, primary_key=True, autoincrement=False),
    Column("window_end", BigInteger, nullable=False, index=True),
    Column("stream", String(1), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("match_id", String(80), nullable=False),
    Column("entry_key", String(36), nullable=False),
    Column("platform", String(100), nullable=False),
    Column("sightings", Integer, nullable=False),
    Column("first_seen_at", String(40), nullable=False),
    Column("last_seen_at", String(40), nullable=False),
    Column("traceparent", String(55)),  # the first sighting's request (decision 55)
)

SQL_IN_CHUNK = 500
HASH_HEX = 64


def in_chunks(items: Sequence[Any], size: int = SQL_IN_CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices short enough for one SQL ``IN`` list."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def split_hashes(concatenated: str | None) -> list[str]:
    """The 64-hex hashes of an ``aliases`` or ``frames`` column, in their order."""
    text = concatenated or ""
    return [text[i : i + HASH_HEX] for i in range(0, len(text), HASH_HEX)]
