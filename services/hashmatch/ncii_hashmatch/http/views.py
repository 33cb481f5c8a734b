"""What hashmatch's API answers: the response models, and how hits and rows become them.
Platforms get opaque ids (``tokens``), never a bank's name or an entry's key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from ncii_hashmatch.domain import ContentComparison
from ncii_hashmatch.matcher import Hit
from ncii_hashmatch.read_models.schema import split_hashes
from ncii_hashmatch.tokens import Tokens


class MatchOut(BaseModel):
    match_id: str
    bank: str
    algorithm: str
    distance: int
    rotated: bool = False
    query_match_percent: float | None = None
    compared_match_percent: float | None = None


class ItemResult(BaseModel):
    index: int
    matches: list[MatchOut]
    skipped: str | None = None
    """Why an item was not searched (a PDQ hash below quality 50)."""


class LookupResult(BaseModel):
    items: list[ItemResult]


class Change(BaseModel):
    change: Literal["add", "remove"]
    id: str
    """This entry's id for you (the same as the match id you get when it matches): a removal
    names the entry by it alone."""
    bank: str
    algorithm: str
    media: str
    value: str | None = None
    """The hash, in additions only: a removal never carries it (an erased case's hashes are
    gone; a platform that never had them must not learn them from the removal)."""
    dihedral: list[str] | None = None


class ChangePage(BaseModel):
    items: list[Change]
    next_cursor: str
    has_more: bool
    reset: bool = False
    """Your subscription to the programmes changed since the cursor you sent: this page starts
    the list again; drop what you hold and rebuild it from here (decision 39)."""


class BankOut(BaseModel):
    name: str
    public_id: str
    kind: str
    programme: str
    enabled: bool
    pdq_threshold: int
    match_dihedral: bool
    vpdq_query_match_percent: int
    vpdq_compared_match_percent: int
    live_hashes: int
    updated_at: str


class BankList(BaseModel):
    items: list[BankOut]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def match_out(tokens: Tokens, organisation: str, hit: Hit) -> MatchOut:
    return MatchOut(
        match_id=tokens.match_id(organisation, hit.entry_key),
        bank=tokens.bank_id(hit.bank),
        algorithm=hit.algorithm,
        distance=hit.distance,
        rotated=hit.rotated,
        query_match_percent=_round(hit.query_match_percent),
        compared_match_percent=_round(hit.compared_match_percent),
    )


def change(tokens: Tokens, organisation: str, row: Any) -> Change | None:
    """A feed row as the platform sees it; None for what the feed does not list."""
    if row.entry_key is None or row.algorithm not in ("pdq", "md5"):
        return None  # vPDQ frames are matched here, not listed
    if row.kind == "add" and (not row.listed or not row.value):
        # Removed since (its removal follows): a platform reading now never gets the hash of
        # a withdrawn or erased case. One that got the addition earlier gets the removal.
        return None
    add = row.kind == "add"
    return Change(
        change=row.kind,
        id=tokens.match_id(organisation, row.entry_key),
        bank=tokens.bank_id(row.bank),
        algorithm=row.algorithm,
        media=row.media,
        value=row.value if add else None,
        dihedral=[row.value, *split_hashes(row.aliases)] if add and row.aliases else None,
    )


def bank_out(tokens: Tokens, row: dict[str, Any]) -> BankOut:
    return BankOut.model_validate({**row, "public_id": tokens.bank_id(row["name"])})


def false_positive(row: Any, comparison: ContentComparison) -> dict[str, Any]:
    """A report awaiting a case worker, with how its content compares with the banked hash:
    the evidence to read before confirming it into the negative bank (decision 27)."""
    return {
        "match_id": row.match_id,
        "bank": row.bank,
        "algorithm": row.algorithm,
        "platform": row.platform,
        "sightings": row.sightings,
        "reported_at": row.verdict_at,
        "content_hash_reported": row.content_value is not None,
        "reported_content": {
            "algorithm": row.content_algorithm,
            "compared_with_banked_hash": comparison.compared,
            "equals_banked_hash": comparison.equal,
            "distance": comparison.distance,
            "match_threshold": comparison.threshold,
            "within_match_threshold": comparison.within_threshold,
        }
        if row.content_value is not None
        else None,
    }
