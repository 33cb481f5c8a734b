"""The hashes clients send: one wire format for the hasher (``ncii hash``), intake's
``POST /v1/cases/{id}/hashes`` and hashmatch's platform look-ups. Hashes only: no model here has
a field that could carry a file name, a path or an image."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

#: Meta recommends discarding PDQ hashes with quality <= 49 for matching.
PDQ_MIN_QUALITY = 50

Algorithm = Literal["pdq", "md5", "vpdq"]
Media = Literal["image", "video"]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Quality = Annotated[int, Field(ge=0, le=100)]

_HEX64_LEN = 64
_HEX32_LEN = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoFrame(_Strict):
    """One vPDQ frame hash."""

    value: Hex64
    quality: Quality
    timestamp: float = Field(ge=0)


class HashItem(_Strict):
    """One hash as accepted by ``POST /v1/cases/{case_id}/hashes``.

    * ``pdq``: ``value`` (64 hex), ``quality``, ``media="image"``, optional ``dihedral``
      (the 8 hashes original, rot90, rot180, rot270, flipX, flipY, flipPlus1, flipMinus1);
    * ``md5``: ``value`` (32 hex), ``media`` image or video;
    * ``vpdq``: ``frames``, ``media="video"``.

    Hex is lowercase only, so that one hash has exactly one spelling.
    """

    algorithm: Algorithm
    value: str | None = None
    quality: Quality | None = None
    media: Media
    dihedral: list[Hex64] | None = Field(default=None, min_length=8, max_length=8)
    frames: list[VideoFrame] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _fields_match_algorithm(self) -> HashItem:
        if self.algorithm == "pdq":
            _require_hex(self.value, _HEX64_LEN, "pdq")
            if self.quality is None:
                raise ValueError("pdq hashes need a quality (0..100)")
            if self.media != "image":
                raise ValueError("pdq hashes are for images; use vpdq for videos")
            if self.frames is not None:
                raise ValueError("frames are only for vpdq hashes")
            if self.dihedral is not None and self.dihedral[0] != self.value:
                raise ValueError("dihedral[0] must be the original hash (value)")
        elif self.algorithm == "md5":
            _require_hex(self.value, _HEX32_LEN, "md5")
            if self.quality is not None or self.dihedral is not None or self.frames is not None:
                raise ValueError("md5 hashes take only value and media")
        else:  # vpdq
            if self.media != "video":
                raise ValueError("vpdq hashes are for videos")
            if self.frames is None:
                raise ValueError("vpdq hashes need frames")
            if self.value is not None or self.quality is not None or self.dihedral is not None:
                raise ValueError("vpdq hashes take only frames and media")
        return self

    @property
    def low_quality(self) -> bool:
        """True for a PDQ hash too low in quality to match on."""
        if self.algorithm != "pdq" or self.quality is None:
            return False
        return self.quality < PDQ_MIN_QUALITY


def _require_hex(value: str | None, length: int, algorithm: str) -> None:
    if value is None:
        raise ValueError(f"{algorithm} hashes need a value")
    if len(value) != length or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{algorithm} value must be {length} lowercase hex characters")


class HashSubmission(_Strict):
    """The JSON body of ``POST /v1/cases/{case_id}/hashes``: hashes, nothing else."""

    hashes: list[HashItem] = Field(min_length=1)

    def body(self) -> dict[str, Any]:
        """The JSON-ready body (fields that do not apply are left out)."""
        return self.model_dump(mode="json", exclude_none=True)


def low_quality_message(quality: int) -> str:
    return (
        f"quality {quality} is below {PDQ_MIN_QUALITY}: too low to match on; "
        "intake will refuse this PDQ hash"
    )
