"""What platforms and case workers send: the HTTP bodies, validated so each bad field gets a
clear message about what to fix (never an echo of the value). Hashes only: no field could carry
an image, a file name or a person's name."""

from __future__ import annotations

from typing import Literal

from ncii_contracts.hashes import PDQ_MIN_QUALITY
from ncii_contracts.hashmatch import FalsePositiveTarget, ListAlgorithm, Programme, Verdict
from ncii_events.http.fields import Hex64, PastTime, WebAddress
from ncii_events.http.fields import RequestBody as _Body
from pydantic import Field, model_validator

from ncii_hashmatch import domain
from ncii_hashmatch.matcher import Query


class FrameIn(_Body):
    value: Hex64
    quality: int | None = Field(default=None, ge=0, le=100)
    timestamp: float | None = Field(default=None, ge=0, description="ignored; accepted as sent")


class HashIn(_Body):
    """One hash to look up, as ``ncii hash`` prints it.

    * ``pdq``: ``value`` (64 hex); optionally ``dihedral``, the 8 hashes of the image's rotations
      and flips computed on your side (``ncii hash --dihedral``), original first;
    * ``md5``: ``value`` (32 hex), the file's MD5 (``video_md5`` in python-threatexchange);
    * ``vpdq``: ``frames`` (frame hashes with their quality; frames below 50 are ignored).
    """

    algorithm: Literal["pdq", "md5", "vpdq"]
    value: str | None = None
    quality: int | None = Field(default=None, ge=0, le=100)
    media: Literal["image", "video"] | None = None
    dihedral: list[Hex64] | None = Field(default=None, min_length=8, max_length=8)
    frames: list[FrameIn] | None = Field(default=None, min_length=1, max_length=20_000)

    @model_validator(mode="after")
    def _fields_match_algorithm(self) -> HashIn:
        value = (self.value or "").strip().lower()
        if self.algorithm == "pdq":
            if not domain.is_hex(value, 64):
                raise ValueError("pdq value must be 64 hex characters")
            if self.frames is not None:
                raise ValueError("frames are only for vpdq")
            if self.dihedral is not None and self.dihedral[0] != value:
                raise ValueError("dihedral[0] must be the original hash (value)")
        elif self.algorithm == "md5":
            if not domain.is_hex(value, 32):
                raise ValueError("md5 value must be 32 hex characters")
            if self.dihedral is not None or self.frames is not None:
                raise ValueError("md5 takes only a value")
        else:
            if not self.frames:
                raise ValueError("vpdq needs frames")
            if self.value is not None or self.dihedral is not None:
                raise ValueError("vpdq takes only frames")
        return self

    @property
    def low_quality(self) -> bool:
        """A PDQ hash below quality 50: too little detail to match on (Meta's rule)."""
        return (
            self.algorithm == "pdq" and self.quality is not None and self.quality < PDQ_MIN_QUALITY
        )

    @property
    def cost(self) -> int:
        """What the item counts against a key's look-up budget: the hashes and frames the
        matcher compares (an image with its 8 rotations counts 8, a video its frames)."""
        return len(self.frames or ()) or len(self.dihedral or ()) or 1

    def query(self) -> Query:
        if self.low_quality:
            return Query("pdq")  # matches nothing
        if self.algorithm == "pdq":
            value = (self.value or "").strip().lower()
            values = tuple(self.dihedral) if self.dihedral is not None else (value,)
            return Query("pdq", values=values)
        if self.algorithm == "md5":
            return Query("md5", values=((self.value or "").strip().lower(),))
        frames = domain.usable_frames(domain.Frame(f.value, f.quality) for f in self.frames or ())
        return Query("vpdq", frames=tuple(frames))


class Lookup(_Body):
    items: list[HashIn] = Field(min_length=1, max_length=domain.MAX_LOOKUP_ITEMS)

    @property
    def cost(self) -> int:
        return sum(item.cost for item in self.items)


class Sighting(_Body):
    hash: HashIn
    url: WebAddress = Field(
        description="where the content was seen (kept encrypted with the victim's case)"
    )
    seen_at: PastTime

    @model_validator(mode="after")
    def _matchable(self) -> Sighting:
        if self.hash.low_quality:
            raise ValueError(f"a PDQ hash below quality {PDQ_MIN_QUALITY} cannot be matched on")
        return self


class ContentHash(_Body):
    algorithm: ListAlgorithm
    value: str

    @model_validator(mode="after")
    def _hex(self) -> ContentHash:
        if not domain.is_hex(self.value.lower(), 64 if self.algorithm == "pdq" else 32):
            raise ValueError(f"{self.algorithm} value must be hex of the right length")
        return self


class Feedback(_Body):
    verdict: Verdict = Field(
        description="blocked, not_blocked, or false_positive (not the victim's image)"
    )
    content: ContentHash | None = Field(
        default=None,
        description="with false_positive: the hash of your content, for the negative bank",
    )

    @model_validator(mode="after")
    def _content_only_for_false_positives(self) -> Feedback:
        if self.content is not None and self.verdict != "false_positive":
            raise ValueError("content is only sent with a false_positive verdict")
        return self


class BankSettingsIn(_Body):
    programme: Programme | None = Field(
        default=None,
        description=(
            "the hash-sharing programme of a new list bank: adults (the default) or "
            "child_protection (minors' images: only platforms enrolled in it receive them). "
            "Case banks follow their name (ORG_..., ORG_...__CHILD); an existing bank's "
            "programme cannot change"
        ),
    )
    enabled: bool = True
    pdq_threshold: int = Field(
        default=domain.DEFAULT_PDQ_THRESHOLD,
        ge=0,
        le=domain.MAX_PDQ_THRESHOLD,
        description="inclusive Hamming distance (Meta's confident threshold is 31)",
    )
    match_dihedral: bool = Field(
        default=True, description="also match the 8 rotations and flips of banked images"
    )
    vpdq_query_match_percent: int = Field(default=domain.VPDQ_QUERY_MATCH_PERCENT, ge=0, le=100)
    vpdq_compared_match_percent: int = Field(
        default=domain.VPDQ_COMPARED_MATCH_PERCENT, ge=0, le=100
    )

    def settings(self) -> domain.BankSettings:
        """The settings asked (the programme is resolved against the bank's own)."""
        return domain.BankSettings(**self.model_dump(exclude={"programme"}))


class PlatformProgrammesIn(_Body):
    programmes: list[Programme] = Field(
        max_length=len(domain.PROGRAMMES),
        description=(
            "every programme the platform receives (replaces its subscription): adults, "
            "child_protection, both, or none ([])"
        ),
    )


class ConfirmFalsePositive(_Body):
    target: FalsePositiveTarget = Field(
        default="banked_hash",
        description=(
            "banked_hash: the banked hash itself is not what the victim meant to block (it "
            "leaves matching everywhere); reported_content: the platform's content is a "
            "look-alike (look-ups closer to it than to the banked hash are suppressed)"
        ),
    )
    near_banked_hash_reviewed: bool = Field(
        default=False,
        description=(
            "with reported_content within the match threshold of the banked hash (see the "
            "list's reported_content.within_match_threshold): true once the evidence was "
            "checked and the content is not the victim's image; without it such a "
            "confirmation is refused (409)"
        ),
    )
