"""Hashmatch's events: when a hash became matchable and when it stopped, every bank setting,
every imported list, every sighting a platform reported, every verdict and every false positive a
case worker confirmed. No payload holds an image or personal data except the URL where a platform
saw a match, which is personal and encrypted with the case's key.

Streams and aggregates:

* on the case's stream (``ncii.<case>.<aggregate>.<id>.<Type>``), so replaying a case shows them:
  ``banking/<case_id>`` (HashesBanked, HashesWithdrawn) and ``match/<match_uuid>`` (MatchFound,
  SightingsCounted, MatchFeedbackReceived) for hashes that came from a case;
* on the reference stream (``nciiref.<aggregate>.<id>.<Type>``): ``bank/<name>``
  (BankConfigured), ``hash_list/<import_id>`` (HashListImported), ``negative_bank/<negative_id>``
  (FalsePositiveConfirmed), ``platform_programmes/<uuid of the platform's organisation>``
  (PlatformProgrammesChanged), and ``match/<match_uuid>`` for matches of imported-list
  entries, which belong to no case.

Programmes (decision 39): a minor's hashes go to a child-protection bank, an adult's to an
adults' bank; every bank belongs to one programme, and a platform receives (look-ups, the
feed) only the programmes it subscribes to.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ncii_contracts.base import PERSONAL, DomainEvent
from ncii_contracts.streams import CASES, REFERENCE

Algorithm = Literal["pdq", "md5", "vpdq"]
ListAlgorithm = Literal["pdq", "md5"]
Verdict = Literal["blocked", "not_blocked", "false_positive"]
WithdrawalReason = Literal[
    "case_withdrawn", "case_erased", "false_positive", "share_hashes_consent_withdrawn"
]
SkipReason = Literal["duplicate", "low_quality", "invalid", "negative_bank"]
FalsePositiveTarget = Literal["banked_hash", "reported_content"]
ImportMode = Literal["add", "replace"]
Programme = Literal["adults", "child_protection"]
"""Which hash-sharing programme a bank belongs to: ``child_protection`` holds minors' hashes
(shared only with platforms enrolled in it), ``adults`` adults' hashes (decision 39)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BankedEntry(_Frozen):
    entry_key: str
    """The entry's stable identity (derived from the submission event and the hash's index)."""
    index: int
    """Position of the hash in the submission."""
    algorithm: Algorithm
    dihedral: bool = False
    """The 8 rotations and flips were banked too (aliases of this entry)."""


class SkippedHash(_Frozen):
    index: int
    reason: SkipReason


class ListedHash(_Frozen):
    algorithm: ListAlgorithm
    value: str


class HashesBanked(DomainEvent, aggregate="banking"):
    """Hashes of a case's submission entered its partner's bank and became matchable."""

    submission_id: str
    bank: str
    entries: list[BankedEntry]
    skipped: list[SkippedHash] = Field(default_factory=list)
    matchable_from: str
    """When the bank committed them; every matcher applies them within ``poll_interval_ms``."""
    poll_interval_ms: int


def _same_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2 of an event whose v2 only adds a value to a closed set."""
    return payload


class HashesWithdrawn(DomainEvent, aggregate="banking", version=2, upcasters={1: _same_payload}):
    """Hashes of a case left matching and the platforms' delta feed.

    v2: ``reason`` may also be ``share_hashes_consent_withdrawn`` (the victim withdrew her
    consent to sharing hashes; the case goes on: decision 35)."""

    reason: WithdrawalReason
    entry_keys: list[str]
    unmatchable_from: str
    """When the bank committed the removal; no look-up answered after it returns them."""


class BankConfigured(
    DomainEvent,
    aggregate="bank",
    streams=(REFERENCE,),
    version=2,
    upcasters={1: _same_payload},
):
    """A bank's settings, all of them (a PUT): later events replace earlier ones.

    v2: ``programme``, the hash-sharing programme the bank belongs to (decision 39); v1 banks
    were all in the adults' programme."""

    bank: str
    enabled: bool
    pdq_threshold: int
    match_dihedral: bool
    vpdq_query_match_percent: int
    vpdq_compared_match_percent: int
    programme: Programme = "adults"


class HashListImported(DomainEvent, aggregate="hash_list", streams=(REFERENCE,)):
    """One chunk (at most 5,000 hashes, to stay under NATS's 1 MB message limit) of a list
    imported into a named bank. ``replace``: after the last chunk, the bank holds only this list."""

    import_id: str
    bank: str
    mode: ImportMode
    chunk: int
    chunks: int
    hashes: list[ListedHash]


class MatchFound(DomainEvent, aggregate="match", streams=(CASES, REFERENCE)):
    """A platform saw content matching a banked hash (a sighting), so takedown can act.

    ``url`` is personal (it leads to the victim's image) and encrypted with the case's key; it
    is not kept for imported-list entries, which belong to no case (``url_withheld``)."""

    match_id: str
    """The opaque id the platform was given (bound to that platform and the banked entry)."""
    sighting_id: str
    bank: str
    entry_key: str
    algorithm: Algorithm
    distance: int
    rotated: bool = False
    """Matched through one of the 8 rotations/flips."""
    query_match_percent: int | None = None
    compared_match_percent: int | None = None
    platform: str
    seen_at: str
    url_withheld: bool = False
    url: Annotated[str | None, PERSONAL] = None


class SightingsCounted(DomainEvent, aggregate="match", streams=(CASES, REFERENCE)):
    """How many times one platform reported seeing one banked entry within one window (an
    hour by default), once the window has closed. The window's first sighting is its
    ``MatchFound`` (with its URL); the later ones are counted here, so a flood of reports adds
    two events to a case, not one per report. Their URLs are not kept: the platform holds
    them, and the first one is enough for takedown to act on the match."""

    match_id: str
    entry_key: str
    platform: str
    window_start: str
    window_end: str
    """The window, by the server's clock (UTC, from its start up to its end excluded)."""
    sightings: int
    """Every sighting reported in the window, the one its MatchFound records included."""
    first_seen_at: str
    last_seen_at: str
    """The earliest and latest ``seen_at`` the platform gave in the window."""


class MatchFeedbackReceived(DomainEvent, aggregate="match", streams=(CASES, REFERENCE)):
    """A platform's verdict on a match. ``content_*``: the hash of the platform's own content,
    sent with a false positive so a case worker can put it into the negative bank."""

    match_id: str
    entry_key: str
    verdict: Verdict
    platform: str
    content_algorithm: ListAlgorithm | None = None
    content_value: str | None = None


class FalsePositiveConfirmed(DomainEvent, aggregate="negative_bank", streams=(REFERENCE,)):
    """A case worker confirmed a false positive: the hash enters the negative bank, and from
    then on look-ups near it are suppressed (and an identical banked hash leaves matching)."""

    negative_id: str
    match_id: str
    entry_key: str
    bank: str
    target: FalsePositiveTarget
    algorithm: ListAlgorithm
    value: str


class PlatformProgrammesChanged(DomainEvent, aggregate="platform_programmes", streams=(REFERENCE,)):
    """A platform's subscription to the hash-sharing programmes, all of it (later events
    replace earlier ones): its look-ups match, and its delta feed lists, only the banks of
    these programmes. An empty list: none (the platform gets no matches and no hashes)."""

    platform: str
    """The platform's organisation (of its API keys, role ``platform``)."""
    programmes: list[Programme]


HASHMATCH_EVENTS: tuple[type[DomainEvent], ...] = (
    HashesBanked,
    HashesWithdrawn,
    BankConfigured,
    HashListImported,
    MatchFound,
    SightingsCounted,
    MatchFeedbackReceived,
    FalsePositiveConfirmed,
    PlatformProgrammesChanged,
)
