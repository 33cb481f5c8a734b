"""The bank's rules, with no I/O.

- PDQ matches by Hamming distance with an inclusive threshold per bank (31 matches at the
  default 31, 32 does not); rotated/flipped copies match only where the bank allows it.
- MD5 matches exactly. vPDQ matches frame by frame (distance <= 31, query frames of quality >= 50)
  and by the share of frames matched on each side, as Meta's vPDQ does.
- A match is suppressed when the query is at least as close to a hash in the negative bank (known
  false positives) as to the banked hash, within the negative bank's threshold.
- Which hashes of a submission are banked, and the plain list format that Meta's
  python-threatexchange reads and writes (``<signal_type> <signal>`` per line).
- The decisions that build the bank's events (settings, imported chunks, sightings, verdicts,
  false positives): the application loads, asks them, and appends what they return.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from ncii_contracts.base import DomainEvent
from ncii_contracts.hashes import PDQ_MIN_QUALITY
from ncii_contracts.hashmatch import (
    BankConfigured,
    FalsePositiveConfirmed,
    FalsePositiveTarget,
    HashesBanked,
    HashesWithdrawn,
    HashListImported,
    ImportMode,
    ListedHash,
    MatchFeedbackReceived,
    MatchFound,
    PlatformProgrammesChanged,
    Programme,
    SightingsCounted,
    Verdict,
    WithdrawalReason,
)
from ncii_contracts.intake import AgeGroup, SubmittedHash

# -- limits and defaults ---------------------------------------------------------------------------

DEFAULT_PDQ_THRESHOLD = 31
"""Meta's confident-match threshold for PDQ (inclusive)."""
MAX_PDQ_THRESHOLD = 64
"""Beyond this, unrelated images start to match: a bank may not be set looser."""
NEGATIVE_PDQ_THRESHOLD = 31
VPDQ_DISTANCE = 31
VPDQ_MIN_QUALITY = 50
VPDQ_QUERY_MATCH_PERCENT = 80
"""python-threatexchange's defaults: 80% of the query's frames, 0% of the banked video's."""
VPDQ_COMPARED_MATCH_PERCENT = 0
MAX_LOOKUP_ITEMS = 1000
MAX_MATCHES_PER_ITEM = 100
IMPORT_CHUNK = 5000
"""Hashes per HashListImported event: ~80 bytes each keeps an event well under NATS's 1 MB."""
MAX_IMPORT_LINES = 1_000_000
MAX_REPORTED_LINE_ERRORS = 100
CHANGE_KEY_BITS = 24
"""A bank change's key is ``stream_seq << 24 | n``: the same on every replica and every rebuild."""
HEX = frozenset("0123456789abcdef")
DIHEDRAL = ("original", "rot90", "rot180", "rot270", "flipX", "flipY", "flipPlus1", "flipMinus1")

_LIST_BANK = re.compile(r"^[A-Z][A-Z0-9_]{1,62}$")
CASE_BANK_PREFIX = "ORG_"
NEGATIVE_BANK = "NEGATIVE"


class BankRuleError(Exception):
    """A command the bank's rules refuse. ``kind`` names the rule for API clients."""

    kind = "bank-rule"
    status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ReportedContentIsBanked(BankRuleError):
    """A false-positive report whose content is the banked hash itself: the platform's content
    is the victim's image, so it cannot be a false positive (decision 27)."""

    kind = "reported-content-is-banked-hash"

    def __init__(self, detail: str, status: int = 409) -> None:
        super().__init__(detail)
        self.status = status


class ProgrammeFixed(BankRuleError):
    """A bank's programme was asked to change (decision 39)."""

    kind = "bank-programme-fixed"


class ReportedContentNearBanked(BankRuleError):
    """Confirming a reported content within the match threshold of the banked hash, without
    saying that the evidence was reviewed (decision 27)."""

    kind = "reported-content-near-banked-hash"


# -- banks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankSettings:
    programme: Programme = "adults"
    """The hash-sharing programme the bank belongs to (decision 39): fixed once the bank
    exists; a case bank's follows from its name."""
    enabled: bool = True
    pdq_threshold: int = DEFAULT_PDQ_THRESHOLD
    match_dihedral: bool = True
    vpdq_query_match_percent: int = VPDQ_QUERY_MATCH_PERCENT
    vpdq_compared_match_percent: int = VPDQ_COMPARED_MATCH_PERCENT

    def errors(self) -> list[tuple[str, str]]:
        """(field, what to fix) for each setting out of range."""
        out: list[tuple[str, str]] = []
        if not 0 <= self.pdq_threshold <= MAX_PDQ_THRESHOLD:
            out.append(("pdq_threshold", f"must be 0..{MAX_PDQ_THRESHOLD} (Meta's default: 31)"))
        for name in ("vpdq_query_match_percent", "vpdq_compared_match_percent"):
            if not 0 <= getattr(self, name) <= 100:
                out.append((name, "must be a percentage, 0..100"))
        return out


DEFAULT_SETTINGS = BankSettings()


PROGRAMMES: tuple[Programme, ...] = ("adults", "child_protection")
CHILD_PROTECTION_SUFFIX = "__CHILD"
"""Ends the name of a partner's child-protection case bank. A slug never holds two underscores
in a row (runs of other characters become one), so no organisation's adults' bank can end so."""
DEFAULT_PLATFORM_PROGRAMMES: tuple[Programme, ...] = ("adults",)
"""What a platform whose subscription was never recorded receives: the adults' programme only.
Minors' hashes go to the platforms enrolled in the child-protection programme, by name."""


def programme_of_case(age_group: AgeGroup) -> Programme:
    """A minor's hashes belong to the child-protection programme, an adult's to the adults'."""
    return "child_protection" if age_group == "minor" else "adults"


def case_bank_name(organisation: str, programme: Programme = "adults") -> str:
    """The bank of a partner organisation's case hashes in one programme: ``ORG_`` + its name in
    upper snake case (a short digest keeps two organisations whose names differ only in
    punctuation apart), and ``__CHILD`` for its minors' hashes."""
    slug = re.sub(r"[^A-Z0-9]+", "_", organisation.upper()).strip("_")[:40] or "X"
    if slug.lower().replace("_", "-") != organisation:
        slug += "_" + hashlib.sha256(organisation.encode()).hexdigest()[:6].upper()
    suffix = CHILD_PROTECTION_SUFFIX if programme == "child_protection" else ""
    return CASE_BANK_PREFIX + slug + suffix


def is_case_bank(name: str) -> bool:
    return name.startswith(CASE_BANK_PREFIX)


def case_bank_programme(name: str) -> Programme | None:
    """The programme a case bank belongs to by its name; None for a list bank (its settings
    say it)."""
    if not is_case_bank(name):
        return None
    return "child_protection" if name.endswith(CHILD_PROTECTION_SUFFIX) else "adults"


def bank_programme(name: str, current: Programme | None, asked: Programme | None) -> Programme:
    """The programme a bank's configuration records: a case bank's is its name's; a list
    bank's is what it has (``current``, None when it does not exist yet), else what is asked,
    else adults. Raises BankRuleError when ``asked`` would move an existing bank (its hashes
    were given to the other programme's platforms: import the list into a new bank instead)."""
    fixed = case_bank_programme(name) or current
    if fixed is None:
        return asked or "adults"
    if asked is not None and asked != fixed:
        raise ProgrammeFixed(
            f"this bank belongs to the {fixed} programme and a bank's programme cannot change "
            "(its hashes went to that programme's platforms): import the list into a new bank "
            f"configured with programme {asked!r}"
        )
    return fixed


def platform_programmes(
    platform: str, programmes: Iterable[Programme]
) -> PlatformProgrammesChanged:
    """A platform's whole subscription, de-duplicated, in a stable order."""
    chosen = set(programmes)
    return PlatformProgrammesChanged(
        platform=platform, programmes=[p for p in PROGRAMMES if p in chosen]
    )


def list_bank_error(name: str) -> str | None:
    """Why ``name`` cannot be an imported list's bank, or None."""
    if not _LIST_BANK.match(name):
        return "a bank name is 2..63 characters A-Z, 0-9 and _, starting with a letter"
    if is_case_bank(name):
        return "banks named ORG_... hold partner organisations' case hashes; lists cannot go there"
    if name == NEGATIVE_BANK:
        return "the negative bank is filled by confirmed false positives"
    return None


def bank_name_error(name: str) -> str | None:
    """Why ``name`` cannot be configured, or None (case banks may be configured, not imported)."""
    if is_case_bank(name) and _LIST_BANK.match(name):
        return None
    return list_bank_error(name)


# -- banking a submission --------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    index: int
    algorithm: str
    value: str | None
    media: str
    quality: int | None = None
    aliases: tuple[str, ...] = ()
    """PDQ: the 7 rotations/flips (dihedral[1:]) computed on the device."""
    frames: tuple[str, ...] = ()
    """vPDQ: the distinct frame hashes."""

    @property
    def identity(self) -> tuple[str, str]:
        return (self.algorithm, identity_value(self.algorithm, self.value, self.frames))


@dataclass(frozen=True)
class Skipped:
    index: int
    reason: str


def is_hex(value: str | None, length: int) -> bool:
    return value is not None and len(value) == length and set(value) <= HEX


def identity_value(algorithm: str, value: str | None, frames: Sequence[str] = ()) -> str:
    """What makes two hashes the same: the value, or for vPDQ a digest of the distinct frames."""
    if algorithm == "vpdq":
        joined = ",".join(sorted(set(frames)))
        return "frames:" + hashlib.sha256(joined.encode()).hexdigest()
    return value or ""


def plan_banking(
    hashes: Sequence[SubmittedHash],
    already: Iterable[tuple[str, str]] = (),
    negatives: Iterable[tuple[str, str]] = (),
) -> tuple[list[Accepted], list[Skipped]]:
    """Which hashes of a submission are banked. ``already``: (algorithm, identity) pairs the
    case has banked; ``negatives``: (algorithm, value) pairs in the negative bank."""
    seen = set(already)
    negative = set(negatives)
    accepted: list[Accepted] = []
    skipped: list[Skipped] = []
    for index, item in enumerate(hashes):
        candidate = _candidate(index, item)
        if isinstance(candidate, Skipped):
            skipped.append(candidate)
            continue
        if candidate.identity in seen:
            skipped.append(Skipped(index, "duplicate"))
            continue
        if (candidate.algorithm, candidate.value or "") in negative:
            skipped.append(Skipped(index, "negative_bank"))
            continue
        seen.add(candidate.identity)
        accepted.append(candidate)
    return accepted, skipped


def _candidate(index: int, item: SubmittedHash) -> Accepted | Skipped:
    value = item.value.lower() if item.value else None
    if item.algorithm == "pdq":
        if not is_hex(value, 64):
            return Skipped(index, "invalid")
        if item.quality is not None and item.quality < PDQ_MIN_QUALITY:
            return Skipped(index, "low_quality")
        aliases: tuple[str, ...] = ()
        if item.dihedral is not None:
            variants = [v.lower() for v in item.dihedral]
            if len(variants) == len(DIHEDRAL) and all(is_hex(v, 64) for v in variants):
                aliases = tuple(variants[1:])
        return Accepted(index, "pdq", value, item.media, item.quality, aliases=aliases)
    if item.algorithm == "md5":
        if not is_hex(value, 32):
            return Skipped(index, "invalid")
        return Accepted(index, "md5", value, item.media)
    frames = tuple(dict.fromkeys(f.lower() for f in item.frames or ()))
    if not frames or not all(is_hex(f, 64) for f in frames):
        return Skipped(index, "invalid")
    return Accepted(index, "vpdq", None, "video", frames=frames)


# -- matching --------------------------------------------------------------------------------------


def pdq_within(distance: int, threshold: int) -> bool:
    """The threshold is inclusive: at 31, distance 31 matches and 32 does not."""
    return distance <= threshold


@dataclass(frozen=True)
class Candidate:
    """A raw hit of the index: query item, banked entry, distance, through a rotation/flip?"""

    item: int
    entry_id: int
    distance: int
    rotated: bool = False


def admit(candidate: Candidate, algorithm: str, settings: BankSettings) -> bool:
    if not settings.enabled:
        return False
    if algorithm == "pdq":
        if candidate.rotated and not settings.match_dihedral:
            return False
        return pdq_within(candidate.distance, settings.pdq_threshold)
    return True  # md5 hits are exact; vPDQ is decided by vpdq_is_match


def best_matches(
    candidates: Iterable[Candidate],
    algorithm_of: dict[int, str],
    settings_of: dict[int, BankSettings],
) -> list[Candidate]:
    """The closest admitted hit per (item, entry): a plain hit wins a tie with a rotated one.
    Entries missing from ``settings_of`` (not live any more) are dropped."""
    best: dict[tuple[int, int], Candidate] = {}
    for c in candidates:
        settings = settings_of.get(c.entry_id)
        if settings is None or not admit(c, algorithm_of.get(c.entry_id, "pdq"), settings):
            continue
        key = (c.item, c.entry_id)
        current = best.get(key)
        if current is None or (c.distance, c.rotated) < (current.distance, current.rotated):
            best[key] = c
    return sorted(best.values(), key=lambda c: (c.item, c.distance, c.entry_id))


def suppressed(
    match_distance: int,
    negative_distance: int | None,
    negative_threshold: int = NEGATIVE_PDQ_THRESHOLD,
) -> bool:
    """A match is suppressed when the query is within the negative bank's threshold of a known
    false positive and at least as close to it as to the banked hash."""
    if negative_distance is None:
        return False
    return negative_distance <= negative_threshold and negative_distance <= match_distance


# -- vPDQ ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    value: str
    quality: int | None = None
    """Frames without a quality (banked frames carry none) are kept."""


@dataclass(frozen=True)
class VpdqResult:
    query_match_percent: float
    compared_match_percent: float

    def is_match(self, settings: BankSettings) -> bool:
        return (
            self.query_match_percent >= settings.vpdq_query_match_percent
            and self.compared_match_percent >= settings.vpdq_compared_match_percent
        )


def usable_frames(frames: Iterable[Frame], min_quality: int = VPDQ_MIN_QUALITY) -> list[str]:
    """Distinct frame hashes of sufficient quality, in first-seen order (vPDQ's de-duplicated
    bag of frames)."""
    kept = (f.value.lower() for f in frames if f.quality is None or f.quality >= min_quality)
    return list(dict.fromkeys(kept))


def vpdq_percentages(
    query_frames: int, compared_frames: int, query_matched: int, compared_matched: int
) -> VpdqResult:
    """Share of the query's (distinct) frames that matched some frame of the compared video,
    and the reverse."""
    return VpdqResult(
        100.0 * query_matched / query_frames if query_frames else 0.0,
        100.0 * compared_matched / compared_frames if compared_frames else 0.0,
    )


def hamming_hex(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def vpdq_compare(
    query: Iterable[Frame],
    compared: Iterable[Frame],
    distance: int = VPDQ_DISTANCE,
    min_quality: int = VPDQ_MIN_QUALITY,
) -> VpdqResult:
    """Brute force, frame against frame (the reference the indexed matcher is tested against)."""
    q = usable_frames(query, min_quality)
    c = usable_frames(compared, min_quality)
    q_hit: set[int] = set()
    c_hit: set[int] = set()
    for i, a in enumerate(q):
        for j, b in enumerate(c):
            if hamming_hex(a, b) <= distance:
                q_hit.add(i)
                c_hit.add(j)
    return vpdq_percentages(len(q), len(c), len(q_hit), len(c_hit))


# -- the plain list format (python-threatexchange) ----------------------------------------------

SIGNAL_TYPES: dict[str, tuple[str, int]] = {"pdq": ("pdq", 64), "video_md5": ("md5", 32)}
"""python-threatexchange signal type -> (our algorithm, hex length)."""


@dataclass(frozen=True)
class ListedLine:
    line: int
    algorithm: str
    value: str


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


@dataclass
class ParsedList:
    hashes: list[ListedLine] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    duplicates: int = 0
    lines: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_hash_list(text: str) -> ParsedList:
    """``<signal_type> <signal>`` per line, as python-threatexchange's file exchange reads it.

    Signal types ``pdq`` (64 hex) and ``video_md5`` (32 hex); hex in either case (stored lower
    case). Blank lines and lines starting with ``#`` are skipped; a hash listed twice counts
    once. Every other line must be valid: a list is imported whole or not at all."""
    out = ParsedList()
    seen: set[tuple[str, str]] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        out.lines = number
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        signal_type, _, signal = line.partition(" ")
        signal = signal.strip()
        known = SIGNAL_TYPES.get(signal_type.lower())
        if known is None:
            out.errors.append(
                LineError(number, "unknown signal type: use 'pdq' or 'video_md5', then a space")
            )
            continue
        algorithm, length = known
        value = signal.lower()
        if not is_hex(value, length):
            out.errors.append(
                LineError(number, f"{signal_type.lower()} needs {length} hex characters")
            )
            continue
        if (algorithm, value) in seen:
            out.duplicates += 1
            continue
        seen.add((algorithm, value))
        out.hashes.append(ListedLine(number, algorithm, value))
    return out


def export_line(algorithm: str, media: str, value: str | None) -> str | None:
    """One line of the plain format, or None for what it cannot express (image MD5s, vPDQ)."""
    if algorithm == "pdq" and value:
        return f"pdq {value}"
    if algorithm == "md5" and media == "video" and value:
        return f"video_md5 {value}"
    return None


def chunks(items: Sequence[ListedLine], size: int = IMPORT_CHUNK) -> list[Sequence[ListedLine]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [items[:0]]


# -- changes ---------------------------------------------------------------------------------------


def change_key(stream_seq: int, n: int) -> int:
    """The key of the ``n``-th bank change made by the event at ``stream_seq``."""
    if not 0 <= n < (1 << CHANGE_KEY_BITS):
        raise ValueError("too many changes from one event")
    return (stream_seq << CHANGE_KEY_BITS) | n


def feed_mix(stream: str, key: int, entry_key: str | None) -> int:
    """A change's place in the delta feed's release window (decision 26): a 63-bit digest of
    its log-derived key and its entry key (which platforms never see), so the order is the
    same on every replica and after a rebuild, yet says nothing about which changes came from
    one submission or one case."""
    text = f"ncii-feed-mix|{stream}|{key}|{entry_key or ''}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


# -- decisions: the events they build --------------------------------------------------------------

NEGATIVE_ALGORITHMS = ("pdq", "md5")
"""What the negative bank holds: a video's vPDQ frames cannot go there."""


def bank_configured(name: str, settings: BankSettings) -> BankConfigured:
    """A bank's settings, all of them (later events replace earlier ones)."""
    return BankConfigured(
        bank=name,
        programme=settings.programme,
        enabled=settings.enabled,
        pdq_threshold=settings.pdq_threshold,
        match_dihedral=settings.match_dihedral,
        vpdq_query_match_percent=settings.vpdq_query_match_percent,
        vpdq_compared_match_percent=settings.vpdq_compared_match_percent,
    )


def list_chunks(
    import_id: str, bank: str, mode: ImportMode, parsed: ParsedList, size: int = IMPORT_CHUNK
) -> list[HashListImported]:
    """One HashListImported per chunk of the list (one empty chunk for an empty list, which a
    ``replace`` needs to empty the bank)."""
    parts = chunks(parsed.hashes, size)
    return [
        HashListImported(
            import_id=import_id,
            bank=bank,
            mode=mode,
            chunk=n,
            chunks=len(parts),
            hashes=[ListedHash(algorithm=h.algorithm, value=h.value) for h in part],
        )
        for n, part in enumerate(parts)
    ]


def owning_case(kind: str, case_id: str | None) -> str | None:
    """The case whose stream records a match on an entry, or None (imported-list entries belong
    to no case: the reference stream records theirs)."""
    return case_id if kind == "case" else None


def percent(value: float | None) -> int | None:
    """A vPDQ share as the whole percentage an event carries (truncated)."""
    return None if value is None else int(value)


def match_found(
    *,
    match_id: str,
    sighting_id: str,
    bank: str,
    entry_key: str,
    algorithm: str,
    distance: int,
    rotated: bool,
    query_match_percent: float | None,
    compared_match_percent: float | None,
    platform: str,
    seen_at: str,
    url: str,
    from_case: bool,
) -> MatchFound:
    """A sighting of one banked entry. The url (personal: it leads to the victim's image) is kept
    only for a case's entry; for an imported list's entry it is withheld."""
    return MatchFound(
        match_id=match_id,
        sighting_id=sighting_id,
        bank=bank,
        entry_key=entry_key,
        algorithm=algorithm,
        distance=distance,
        rotated=rotated,
        query_match_percent=percent(query_match_percent),
        compared_match_percent=percent(compared_match_percent),
        platform=platform,
        seen_at=seen_at,
        url_withheld=not from_case,
        url=url if from_case else None,
    )


# -- sightings: one event per window, and a count ------------------------------------------------

SIGHTING_WINDOW_SECONDS = 3600
"""Sightings of one entry by one platform within this long make one MatchFound and a count."""
SIGHTING_GRACE_SECONDS = 60
"""A window is counted this long after it closed: a request that began in it has ended."""


@dataclass(frozen=True)
class SightingWindow:
    """A window of the server's clock, in whole seconds since the epoch: [start, end)."""

    start: int
    end: int

    @classmethod
    def at(cls, now: float, seconds: int = SIGHTING_WINDOW_SECONDS) -> SightingWindow:
        """The window ``now`` falls in. Windows are aligned to multiples of their length, so
        every replica and every request computes the same one without asking anybody."""
        if seconds < 1:
            raise ValueError("a sighting window lasts at least a second")
        start = int(now // seconds) * seconds
        return cls(start, start + seconds)

    def due(self, now: float, grace: int = SIGHTING_GRACE_SECONDS) -> bool:
        """Whether its count can be recorded: closed, and every request in it finished."""
        return now >= self.end + grace


@dataclass(frozen=True)
class SightingTally:
    """What a window's sightings of one entry by one platform came to."""

    sightings: int
    first_seen_at: str
    last_seen_at: str


def _utc(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def records_match_found(tally: SightingTally | None) -> bool:
    """A sighting is recorded as the window's MatchFound until the window has a tally (a tally
    is only started once its MatchFound is in the log); every later one only adds to the
    tally. The MatchFound's id is the window's, so racing first sightings still write one."""
    return tally is None


def sightings_counted(
    *,
    match_id: str,
    entry_key: str,
    platform: str,
    window: SightingWindow,
    tally: SightingTally,
) -> SightingsCounted | None:
    """The count of a closed window, or None when its MatchFound said everything (one
    sighting)."""
    if tally.sightings <= 1:
        return None
    return SightingsCounted(
        match_id=match_id,
        entry_key=entry_key,
        platform=platform,
        window_start=_utc(window.start),
        window_end=_utc(window.end),
        sightings=tally.sightings,
        first_seen_at=tally.first_seen_at,
        last_seen_at=tally.last_seen_at,
    )


# -- verdicts ----------------------------------------------------------------------------------


def current_verdict(
    events: Iterable[object],
) -> tuple[str, str | None, str | None] | None:
    """The platform's latest verdict on a match (verdict, content algorithm, content value),
    from the match's events, or None."""
    current = None
    for event in events:
        if isinstance(event, MatchFeedbackReceived):
            current = (event.verdict, event.content_algorithm, event.content_value)
    return current


def match_feedback(
    match_id: str,
    entry_key: str,
    verdict: Verdict,
    platform: str,
    content: tuple[str, str] | None,
    current: tuple[str, str | None, str | None] | None = None,
) -> MatchFeedbackReceived | None:
    """A platform's verdict on a match, with the hash of its own content if it sent one; None
    when it is the verdict (and content) the match already has: saying it again is no news."""
    said = (verdict, content[0] if content else None, content[1] if content else None)
    if current == said:
        return None
    return MatchFeedbackReceived(
        match_id=match_id,
        entry_key=entry_key,
        verdict=verdict,
        platform=platform,
        content_algorithm=content[0] if content else None,
        content_value=content[1] if content else None,
    )


def negative_hash(
    target: FalsePositiveTarget,
    entry_algorithm: str,
    entry_value: str | None,
    match_verdict: str | None,
    content_algorithm: str | None,
    content_value: str | None,
) -> tuple[str, str]:
    """The (algorithm, value) a confirmed false positive puts into the negative bank: the banked
    hash (PDQ or MD5 only), or the platform's content (only once the platform has reported the
    match as a false positive with its content's hash; ``match_verdict`` None: no verdict)."""
    if target == "banked_hash":
        if entry_algorithm not in NEGATIVE_ALGORITHMS or not entry_value:
            raise BankRuleError(
                "only PDQ and MD5 hashes go into the negative bank; this entry is a video's "
                "vPDQ frames"
            )
        return str(entry_algorithm), str(entry_value)
    if match_verdict != "false_positive" or not content_value:
        raise BankRuleError(
            "the platform has not reported a false positive with the hash of its "
            "content for this match; confirm the banked hash instead, or wait for it"
        )
    return str(content_algorithm), str(content_value)


@dataclass(frozen=True)
class ContentComparison:
    """How a platform's reported content compares with the banked hash of its match: what a
    case worker sees before confirming it into the negative bank. ``distance``: PDQ Hamming
    distance (the closest of the banked image, its rotations and flips, or a video's frames),
    0 or None for MD5 (equal or not), None when the two cannot be compared."""

    compared: bool
    equal: bool
    distance: int | None
    threshold: int | None
    within_threshold: bool


NOT_COMPARED = ContentComparison(False, False, None, None, False)


def compare_reported_content(
    entry_algorithm: str,
    entry_values: Sequence[str],
    content_algorithm: str | None,
    content_value: str | None,
    pdq_threshold: int,
) -> ContentComparison:
    """``entry_values``: the banked PDQ hash and its rotations/flips, a video's frames, or the
    MD5. A PDQ content is compared with PDQ and vPDQ entries (frames are PDQ hashes), against
    the bank's threshold or vPDQ's frame distance; an MD5 content with an MD5 entry."""
    values = [v for v in entry_values if v]
    if content_value is None or not values:
        return NOT_COMPARED
    content = content_value.lower()
    if content_algorithm == "md5" and entry_algorithm == "md5":
        equal = content in values
        return ContentComparison(True, equal, 0 if equal else None, None, equal)
    if content_algorithm == "pdq" and entry_algorithm in ("pdq", "vpdq"):
        threshold = pdq_threshold if entry_algorithm == "pdq" else VPDQ_DISTANCE
        distance = min(hamming_hex(content, v) for v in values)
        return ContentComparison(
            True, distance == 0, distance, threshold, pdq_within(distance, threshold)
        )
    return NOT_COMPARED


IS_BANKED = (
    "the reported content is the banked hash itself (PDQ distance 0, or the same MD5): it is "
    "the victim's image, not a false positive, and putting it into the negative bank would "
    "stop it matching for every platform"
)


def check_report(comparison: ContentComparison) -> None:
    """A platform's false-positive report: a content equal to the banked hash is refused at
    once (422), the platform is told nothing it did not know (its look-up said distance 0)."""
    if comparison.equal:
        raise ReportedContentIsBanked(IS_BANKED + "; send the report without content", 422)


def check_reported_content(comparison: ContentComparison, near_reviewed: bool) -> None:
    """Refuse to put the victim's own image into the negative bank (409): a content equal to
    the banked hash never (every look-up of the victim's hash would be suppressed, for every
    platform); one within the match threshold only once a case worker says the evidence was
    reviewed (it may be a copy of the victim's image)."""
    if comparison.equal:
        raise ReportedContentIsBanked(IS_BANKED)
    if comparison.within_threshold and not near_reviewed:
        raise ReportedContentNearBanked(
            f"the reported content is at PDQ distance {comparison.distance} of the banked hash, "
            f"within the match threshold ({comparison.threshold}): it may be a copy of the "
            "victim's image, and look-ups closer to it than to the banked hash would be "
            "suppressed for every platform. Check with the platform or the case first; to "
            'confirm it after that, send "near_banked_hash_reviewed": true'
        )


def false_positive_confirmed(
    negative_id: str,
    match_id: str,
    entry_key: str,
    bank: str,
    target: FalsePositiveTarget,
    negative: tuple[str, str],
) -> FalsePositiveConfirmed:
    """A case worker's confirmation: ``negative`` (from negative_hash) enters the negative bank."""
    algorithm, value = negative
    return FalsePositiveConfirmed(
        negative_id=negative_id,
        match_id=match_id,
        entry_key=entry_key,
        bank=bank,
        target=target,
        algorithm=algorithm,
        value=value,
    )


# -- a case's hashes and matches as their events leave them (for auditors, decision 56) ---------

EntryState = Literal["matchable", "withdrawn", "negative", "erased"]
RETIRED_STATE: dict[str, EntryState] = {"false_positive": "negative", "case_erased": "erased"}


def retired_state(reason: WithdrawalReason) -> EntryState:
    """What a banked entry becomes when it leaves matching: ``negative`` (a confirmed false
    positive), ``erased`` (the case was erased), else ``withdrawn``."""
    return RETIRED_STATE.get(reason, "withdrawn")


@dataclass(frozen=True)
class BankedHash:
    """One hash of a case in its bank (the value is personal and is not here: its key is)."""

    entry_key: str
    bank: str
    submission_id: str
    index: int
    algorithm: str
    dihedral: bool
    matchable_from: str
    state: EntryState = "matchable"
    unmatchable_from: str | None = None
    reason: WithdrawalReason | None = None


@dataclass(frozen=True)
class CaseBanking:
    """A case's ``banking`` aggregate: every hash banked, whether it still matches, and the
    submitted hashes the bank skipped (and why). An entry leaves matching once, by the first
    withdrawal that names it, as the bank's projection takes it out."""

    entries: tuple[BankedHash, ...]
    skipped: tuple[tuple[str, int, str], ...]
    """(submission id, index in the submission, reason)."""

    @property
    def matchable(self) -> int:
        return sum(1 for e in self.entries if e.state == "matchable")

    @staticmethod
    def replay(history: Iterable[tuple[DomainEvent, str]]) -> CaseBanking | None:
        entries: dict[str, BankedHash] = {}
        skipped: list[tuple[str, int, str]] = []
        seen = False
        for event, _at in history:
            if isinstance(event, HashesBanked):
                seen = True
                for banked in event.entries:
                    entries.setdefault(
                        banked.entry_key,
                        BankedHash(
                            entry_key=banked.entry_key,
                            bank=event.bank,
                            submission_id=event.submission_id,
                            index=banked.index,
                            algorithm=banked.algorithm,
                            dihedral=banked.dihedral,
                            matchable_from=event.matchable_from,
                        ),
                    )
                skipped += [(event.submission_id, s.index, s.reason) for s in event.skipped]
            elif isinstance(event, HashesWithdrawn):
                seen = True
                for key in event.entry_keys:
                    entry = entries.get(key)
                    if entry is not None and entry.state == "matchable":
                        entries[key] = replace(
                            entry,
                            state=retired_state(event.reason),
                            unmatchable_from=event.unmatchable_from,
                            reason=event.reason,
                        )
        return CaseBanking(tuple(entries.values()), tuple(skipped)) if seen else None


def sightings_added(event: MatchFound | SightingsCounted) -> int:
    """How many sightings an event adds to its match: a ``MatchFound`` is its window's first
    sighting; a window's ``SightingsCounted`` counts that one too."""
    return 1 if isinstance(event, MatchFound) else event.sightings - 1


@dataclass(frozen=True)
class CaseMatch:
    """A ``match`` aggregate (one platform, one banked entry): its sightings, how close the
    closest was, and the platform's latest verdict. The URLs stay in the events (personal)."""

    match_id: str
    platform: str
    bank: str
    entry_key: str
    algorithm: str
    sightings: int
    windows: int
    """Sighting windows opened (one ``MatchFound`` each)."""
    first_seen_at: str
    last_seen_at: str
    closest_distance: int
    verdict: str | None = None
    verdict_at: str | None = None
    content_reported: bool = False
    """The platform sent its own content's hash with its verdict (a false-positive report)."""

    @staticmethod
    def replay(history: Iterable[tuple[DomainEvent, str]]) -> CaseMatch | None:
        match: CaseMatch | None = None
        for event, at in history:
            if isinstance(event, MatchFound):
                if match is None:
                    match = CaseMatch(
                        match_id=event.match_id,
                        platform=event.platform,
                        bank=event.bank,
                        entry_key=event.entry_key,
                        algorithm=event.algorithm,
                        sightings=0,
                        windows=0,
                        first_seen_at=event.seen_at,
                        last_seen_at=event.seen_at,
                        closest_distance=event.distance,
                    )
                match = replace(
                    match,
                    sightings=match.sightings + sightings_added(event),
                    windows=match.windows + 1,
                    first_seen_at=min(match.first_seen_at, event.seen_at),
                    last_seen_at=max(match.last_seen_at, event.seen_at),
                    closest_distance=min(match.closest_distance, event.distance),
                )
            elif match is None:
                continue  # nothing is counted before the first sighting is recorded
            elif isinstance(event, SightingsCounted):
                match = replace(
                    match,
                    sightings=match.sightings + sightings_added(event),
                    first_seen_at=min(match.first_seen_at, event.first_seen_at),
                    last_seen_at=max(match.last_seen_at, event.last_seen_at),
                )
            elif isinstance(event, MatchFeedbackReceived):
                match = replace(
                    match,
                    verdict=event.verdict,
                    verdict_at=at,
                    content_reported=event.content_value is not None,
                )
        return match
