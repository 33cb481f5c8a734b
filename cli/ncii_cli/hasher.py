"""Client-side hashing: PDQ and MD5 for images, MD5 (and vPDQ if available) for videos.

Everything here runs on the user's own machine. No image ever leaves it: only the
hashes in a :class:`HashSubmission` do, and that model has no field that could carry
a file name or a path.

PDQ follows Meta's reference pipeline (facebook/ThreatExchange ``pdq/``):

* the image is shrunk to at most 512 px a side before hashing, as both reference
  implementations do (Python ``PDQHasher.fromFile``: ``img.thumbnail((512, 512))``;
  C++ ``pdqHash256FromFile``: resize to ``DOWNSAMPLE_DIMS = 512``). With the same Pillow
  call,
  17 of Meta's 18 conformance images hash bit-identically to the expected values (the
  18th, of quality 3, is 10 bits off; Meta's tolerance is 16);
* it is then converted to 8-bit RGB, and luma is taken as 0.299 R + 0.587 G + 0.114 B
  (inside ``pdqhash``).

Two deliberate differences from the reference, both for the victim's benefit:

* EXIF orientation is applied (``ImageOps.exif_transpose``), so a phone photo is hashed
  the way it is displayed;
* 16-bit and float greyscale images are scaled to 0..255 instead of clipped (Pillow's
  ``convert("RGB")`` clips ``I;16`` values to 255, which turns most 16-bit images white).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pdqhash
from ncii_contracts.hashes import (
    PDQ_MIN_QUALITY,
    HashItem,
    HashSubmission,
    Media,
    VideoFrame,
    low_quality_message,
)
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "PDQ_MIN_QUALITY",
    "PDQ_REFERENCE_MAX_SIDE",
    "FileHashes",
    "HashItem",
    "HashSubmission",
    "UnsupportedFile",
    "VideoFrame",
    "build_submission",
    "hamming_distance",
    "hash_file",
    "low_quality_message",
]

#: Meta's reference hashers shrink images to 512 px a side before hashing. It also
#: makes big images cheap: ~25 ms for a 1920x1080 JPEG instead of ~52 ms unshrunk,
#: ~60 ms instead of ~600 ms at 4032x3024.
PDQ_REFERENCE_MAX_SIDE = 512


_HEX64_LEN = 64
_HEX32_LEN = 32
_CHUNK = 1 << 20

VIDEO_EXTENSIONS = frozenset(
    {
        ".3g2",
        ".3gp",
        ".asf",
        ".avi",
        ".f4v",
        ".flv",
        ".m2ts",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".qt",
        ".ts",
        ".webm",
        ".wmv",
    }
)
# ISO-BMFF brands that are still images (HEIF/HEIC/AVIF), not videos.
_IMAGE_FTYP_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
_HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})


# --------------------------------------------------------------------------- results


class UnsupportedFile(Exception):
    """The file cannot be hashed: missing, unreadable, empty, or neither image nor video."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FileHashes:
    """The hashes of one file, plus things only the user's own terminal should see."""

    media: Media
    items: tuple[HashItem, ...]
    warnings: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None

    @property
    def pdq(self) -> HashItem | None:
        return next((i for i in self.items if i.algorithm == "pdq"), None)

    @property
    def md5(self) -> HashItem:
        return next(i for i in self.items if i.algorithm == "md5")

    @property
    def vpdq(self) -> HashItem | None:
        return next((i for i in self.items if i.algorithm == "vpdq"), None)


def build_submission(results: Iterable[FileHashes]) -> HashSubmission:
    """All hashes of all files, in order, without exact duplicates."""
    seen: set[str] = set()
    items: list[HashItem] = []
    for result in results:
        for item in result.items:
            key = item.model_dump_json(exclude_none=True)
            if key not in seen:
                seen.add(key)
                items.append(item)
    return HashSubmission(hashes=items)


def hamming_distance(a: str, b: str) -> int:
    """Bits that differ between two equal-length hex hashes."""
    if len(a) != len(b):
        raise ValueError("hashes differ in length")
    return (int(a, 16) ^ int(b, 16)).bit_count()


# --------------------------------------------------------------------------- hashing


def hash_file(path: Path, *, dihedral: bool = False) -> FileHashes:
    """Hash one file on the local machine.

    Images: PDQ (+ the 8 dihedral hashes if ``dihedral``) and MD5 of the exact bytes.
    Videos: MD5 of the exact bytes, and vPDQ frame hashes if the optional ``vpdq``
    package is importable (otherwise a warning says they are unavailable).

    Raises :class:`UnsupportedFile` if the file cannot be read or is neither.
    """
    path = Path(path)
    md5 = _md5_of_file(path)
    _register_optional_openers()
    try:
        with Image.open(path) as img:
            prepared = _prepare_image(img)
    except Image.DecompressionBombError as exc:
        raise UnsupportedFile(path, f"image is too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # Not an image Pillow can decode (or a truncated/corrupt one): maybe a video.
        if _looks_like_video(path):
            return _hash_video(path, md5)
        raise UnsupportedFile(path, _not_supported_reason(path, exc)) from exc

    pdq = _pdq_item(prepared.rgb, dihedral=dihedral)
    warnings = prepared.warnings
    if pdq.low_quality and pdq.quality is not None:
        warnings += (low_quality_message(pdq.quality),)
    return FileHashes(
        media="image",
        items=(pdq, HashItem(algorithm="md5", value=md5, media="image")),
        warnings=warnings,
        width=prepared.width,
        height=prepared.height,
    )


@dataclass(frozen=True, slots=True)
class _PreparedImage:
    rgb: npt.NDArray[np.uint8]
    width: int  # as displayed, before shrinking
    height: int
    warnings: tuple[str, ...]


def _prepare_image(img: Image.Image) -> _PreparedImage:
    """Decode, shrink like the reference, orient, and convert to HxWx3 uint8."""
    warnings: list[str] = []
    if getattr(img, "n_frames", 1) > 1:
        warnings.append("animated image: only the first frame was hashed")
    width, height = img.size
    # Shrink before anything loads the pixels, exactly like Meta's reference hasher
    # (for big JPEGs thumbnail() lets the decoder downscale, which changes a few bits).
    img.thumbnail((PDQ_REFERENCE_MAX_SIDE, PDQ_REFERENCE_MAX_SIDE))
    try:
        oriented = ImageOps.exif_transpose(img)
    except Exception:  # a mangled EXIF block must not stop the hashing
        oriented = img
        warnings.append("could not read the EXIF orientation; hashed as stored")
    if oriented.size != img.size:  # orientation 5..8 swaps the axes
        width, height = height, width
    return _PreparedImage(_to_rgb_array(oriented), width, height, tuple(warnings))


def _pdq_item(rgb: npt.NDArray[np.uint8], *, dihedral: bool) -> HashItem:
    if dihedral:
        bit_vectors, quality = pdqhash.compute_dihedral(rgb)
        hexes = [_bits_to_hex(bits) for bits in bit_vectors]
        return HashItem(
            algorithm="pdq", value=hexes[0], quality=int(quality), media="image", dihedral=hexes
        )
    bits, quality = pdqhash.compute(rgb)
    return HashItem(algorithm="pdq", value=_bits_to_hex(bits), quality=int(quality), media="image")


def _bits_to_hex(bits: npt.NDArray[Any]) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def _to_rgb_array(img: Image.Image) -> npt.NDArray[np.uint8]:
    """Any Pillow mode -> C-contiguous HxWx3 uint8 (what ``pdqhash`` needs)."""
    if img.width == 0 or img.height == 0:
        raise ValueError("image has no pixels")
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _to_uint8_grey(np.asarray(img), mode)
        return np.ascontiguousarray(np.repeat(grey[:, :, np.newaxis], 3, axis=2))
    if mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _to_uint8_grey(arr: npt.NDArray[Any], mode: str) -> npt.NDArray[np.uint8]:
    values = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and 255 < hi <= 65535):
        scaled = values / 257.0  # 16-bit full scale -> 8-bit full scale
    elif mode == "F" and lo >= 0 and hi <= 1.0:
        scaled = values * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = values
    else:  # anything else: stretch the actual range
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _md5_of_file(path: Path) -> str:
    if not path.exists():
        raise UnsupportedFile(path, "no such file")
    if path.is_dir():
        raise UnsupportedFile(path, "is a directory, not a file")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                size += len(chunk)
                digest.update(chunk)
    except OSError as exc:
        raise UnsupportedFile(path, f"cannot read the file ({exc.strerror or exc})") from exc
    if size == 0:
        raise UnsupportedFile(path, "file is empty")
    return digest.hexdigest()


# --------------------------------------------------------------------------- video


def _looks_like_video(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    guessed, _ = mimetypes.guess_type(path.name)
    if guessed is not None and guessed.startswith("video/"):
        return True
    return _video_signature(path)


def _video_signature(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if len(head) >= 12 and head[4:8] == b"ftyp":  # ISO-BMFF: mp4, mov, m4v, 3gp ...
        return head[8:12] not in _IMAGE_FTYP_BRANDS
    return (
        head.startswith(b"\x1a\x45\xdf\xa3")  # EBML: mkv, webm
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or head.startswith(b"FLV")
        or head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")  # ASF: wmv
        or head.startswith(b"\x00\x00\x01\xba")  # MPEG program stream
    )


def _hash_video(path: Path, md5: str) -> FileHashes:
    items: list[HashItem] = []
    warnings: list[str] = []
    try:
        vpdq = importlib.import_module("vpdq")
    except ImportError as exc:
        warnings.append(
            "video similarity hashes (vPDQ) unavailable: the optional 'vpdq' package "
            f"is not usable here ({exc}); only the MD5 of the exact file was computed"
        )
    else:
        try:
            features = vpdq.computeHash(str(path))
            frames = [
                VideoFrame(
                    value=str(f.hex).lower(),
                    quality=int(f.quality),
                    timestamp=round(float(f.timestamp), 3),
                )
                for f in features
            ]
        except Exception as exc:  # vpdq raises bare Exception on decode failure
            warnings.append(f"vPDQ hashing failed ({exc}); only the MD5 was computed")
        else:
            if frames:
                items.append(HashItem(algorithm="vpdq", media="video", frames=frames))
            else:
                warnings.append("vPDQ produced no frame hashes; only the MD5 was computed")
    items.append(HashItem(algorithm="md5", value=md5, media="video"))
    return FileHashes(media="video", items=tuple(items), warnings=tuple(warnings))


# --------------------------------------------------------------------------- misc


@functools.cache
def _register_optional_openers() -> bool:
    """Let Pillow open HEIC/HEIF (iPhone photos) if ``pillow-heif`` is installed."""
    try:
        heif = importlib.import_module("pillow_heif")
    except ImportError:
        return False
    heif.register_heif_opener()
    return True


def _not_supported_reason(path: Path, exc: BaseException) -> str:
    suffix = path.suffix.lower()
    if suffix in _HEIF_EXTENSIONS and not _register_optional_openers():
        return (
            "HEIC/HEIF images need the optional 'pillow-heif' package; install it or "
            "export the photo as JPEG first"
        )
    if isinstance(exc, UnidentifiedImageError):
        return "not an image or video this tool can read (unrecognised file format)"
    return f"not a readable image (decoding failed: {exc}) and not a recognised video"
