"""The client-side hasher: agreement with Meta's PDQ reference, and what it refuses."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ncii_cli.hasher import (
    PDQ_MIN_QUALITY,
    FileHashes,
    HashItem,
    HashSubmission,
    UnsupportedFile,
    VideoFrame,
    build_submission,
    hamming_distance,
    hash_file,
)
from PIL import Image
from pydantic import ValidationError

CONFORMANCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "pdq-conformance"
EXPECTED_CSV = CONFORMANCE_DIR / "expected.csv"
MISSING = f"PDQ conformance set not found: looked for {EXPECTED_CSV}"

REFERENCE_DISTANCE = 16  # Meta's own test tolerance (JPEG decoders differ a little)
MATCH_DISTANCE = 31  # usual PDQ match threshold
LOW_QUALITY = ("misc-images__small.jpg", "q0003.jpg", "q0004.jpg")
BRIDGE_ORIGINAL = "reg-test-input__dih__bridge-1-original.jpg"
EXIF_ORIENTATION = 0x0112


def _expected() -> dict[str, str]:
    if not EXPECTED_CSV.is_file():
        return {}
    with EXPECTED_CSV.open(newline="") as fh:
        return {row["image"]: row["pdq_hex"] for row in csv.DictReader(fh)}


EXPECTED = _expected()
BRIDGES = sorted(name for name in EXPECTED if "__dih__bridge-" in name)


def _params(names: list[str]) -> list[object]:
    if not EXPECTED:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING), id="set-missing")]
    return [pytest.param(name, id=name.rsplit("__", 1)[-1]) for name in names]


def _image(name: str) -> Path:
    return CONFORMANCE_DIR / "images" / name


def _pdq(result: FileHashes) -> HashItem:
    pdq = result.pdq
    assert pdq is not None and pdq.value is not None and pdq.quality is not None
    return pdq


def _photo_like(width: int = 96, height: int = 64) -> Image.Image:
    """A small asymmetric RGB image with real structure (PDQ quality 100)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * (x / width)
    g = 127 + 120 * np.sin(x / 7.0) * np.cos(y / 5.0)
    b = 255 * ((x + 2 * y) % 37) / 37
    arr = np.stack([r, g, b], axis=2)
    arr[height // 5 : height // 2, width // 8 : width // 3] = (250, 20, 20)  # off-centre block
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


# ------------------------------------------------------------------ Meta conformance


@pytest.mark.parametrize("name", _params(sorted(EXPECTED)))
def test_pdq_is_within_16_bits_of_meta_reference_hash(name: str) -> None:
    result = hash_file(_image(name))
    distance = hamming_distance(_pdq(result).value or "", EXPECTED[name])
    assert distance <= REFERENCE_DISTANCE, f"{name}: distance {distance}"


@pytest.mark.parametrize("name", _params([n for n in EXPECTED if n.endswith(LOW_QUALITY)]))
def test_low_quality_reference_images_report_quality_below_50_with_warning(name: str) -> None:
    result = hash_file(_image(name))
    pdq = _pdq(result)
    assert pdq.quality is not None and pdq.quality < PDQ_MIN_QUALITY
    assert pdq.low_quality
    expected = f"quality {pdq.quality} is below 50: too low to match on; intake will refuse"
    assert any(w.startswith(expected) for w in result.warnings)


@pytest.mark.parametrize("name", _params([n for n in EXPECTED if not n.endswith(LOW_QUALITY)]))
def test_other_reference_images_are_good_enough_to_match_on(name: str) -> None:
    result = hash_file(_image(name))
    assert not _pdq(result).low_quality
    assert result.warnings == ()


@pytest.mark.parametrize("name", _params(BRIDGES))
def test_dihedral_hashes_of_each_rotated_or_flipped_copy_match_the_original(name: str) -> None:
    original = _pdq(hash_file(_image(BRIDGE_ORIGINAL))).value or ""
    dihedral = _pdq(hash_file(_image(name), dihedral=True)).dihedral
    assert dihedral is not None and len(dihedral) == 8
    best = min(hamming_distance(original, h) for h in dihedral)
    assert best <= MATCH_DISTANCE, f"{name}: closest dihedral hash is {best} bits away"


@pytest.mark.parametrize(
    "name",
    _params(
        [
            "reg-test-input__dih__bridge-2-rotate-90.jpg",
            "reg-test-input__dih__bridge-5-flipx.jpg",
        ]
    ),
)
def test_plain_hash_of_rotated_or_flipped_copy_does_not_match_without_dihedral(
    name: str,
) -> None:
    original = _pdq(hash_file(_image(BRIDGE_ORIGINAL))).value or ""
    plain = _pdq(hash_file(_image(name))).value or ""
    assert hamming_distance(original, plain) > MATCH_DISTANCE


def test_max_hamming_distance_on_conformance_set_is_reported(
    record_property: Callable[[str, object], None],
) -> None:
    if not EXPECTED:
        pytest.skip(MISSING)
    distances = [
        hamming_distance(_pdq(hash_file(_image(n))).value or "", h) for n, h in EXPECTED.items()
    ]
    record_property("max_hamming_distance", max(distances))
    print(f"max Hamming distance to Meta's expected PDQ hashes: {max(distances)}")
    assert max(distances) <= REFERENCE_DISTANCE


# ------------------------------------------------------------------ image handling


def test_dihedral_first_hash_is_the_plain_hash_and_quality_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    _photo_like().save(path)
    plain = _pdq(hash_file(path))
    with_dihedral = _pdq(hash_file(path, dihedral=True))
    assert with_dihedral.dihedral is not None
    assert with_dihedral.value == plain.value == with_dihedral.dihedral[0]
    assert with_dihedral.quality == plain.quality
    assert plain.dihedral is None


@pytest.mark.parametrize(
    ("orientation", "transpose"),
    [
        (2, Image.Transpose.FLIP_LEFT_RIGHT),
        (3, Image.Transpose.ROTATE_180),
        (4, Image.Transpose.FLIP_TOP_BOTTOM),
        (5, Image.Transpose.TRANSPOSE),
        (6, Image.Transpose.ROTATE_270),
        (7, Image.Transpose.TRANSVERSE),
        (8, Image.Transpose.ROTATE_90),
    ],
)
def test_exif_orientation_is_applied_so_hash_equals_physically_rotated_image(
    tmp_path: Path, orientation: int, transpose: Image.Transpose
) -> None:
    stored = _photo_like()
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    tagged, rotated, untagged = tmp_path / "t.png", tmp_path / "r.png", tmp_path / "u.png"
    stored.save(tagged, exif=exif.tobytes())
    stored.transpose(transpose).save(rotated)
    stored.save(untagged)

    tagged_result, rotated_result = hash_file(tagged), hash_file(rotated)
    assert _pdq(tagged_result).value == _pdq(rotated_result).value
    assert _pdq(tagged_result).value != _pdq(hash_file(untagged)).value
    assert (tagged_result.width, tagged_result.height) == (
        rotated_result.width,
        rotated_result.height,
    )


def test_exif_orientation_on_large_image_stays_within_a_few_bits_of_rotated_copy(
    tmp_path: Path,
) -> None:
    # Above 512 px the image is shrunk (like Meta's reference) before it is rotated.
    stored = _photo_like().resize((1500, 1000), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored.save(tmp_path / "t.jpg", exif=exif.tobytes(), quality=95)
    stored.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "r.jpg", quality=95)
    tagged, rotated = hash_file(tmp_path / "t.jpg"), hash_file(tmp_path / "r.jpg")
    assert hamming_distance(_pdq(tagged).value or "", _pdq(rotated).value or "") <= 8
    assert (tagged.width, tagged.height) == (1000, 1500)


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("P", ".png"),
        ("L", ".png"),
        ("LA", ".png"),
        ("RGBA", ".png"),
        ("P", ".gif"),
        ("1", ".png"),
        ("CMYK", ".jpg"),
        ("CMYK", ".tif"),
        ("I;16", ".png"),
        ("I", ".tif"),
        ("F", ".tif"),
    ],
)
def test_image_modes_hash_without_error(tmp_path: Path, mode: str, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    image = _photo_like()
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(grey).save(path)  # mode I;16
    else:
        image.convert(mode).save(path)
    with Image.open(path) as reopened:
        assert reopened.mode.startswith(mode[0])
    pdq = _pdq(hash_file(path))
    assert 0 <= (pdq.quality or 0) <= 100
    assert len(pdq.value or "") == 64


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey8 = _photo_like().convert("L")
    grey8.save(tmp_path / "8.png")
    Image.fromarray(np.asarray(grey8, dtype=np.uint16) * 257).save(tmp_path / "16.png")
    a, b = _pdq(hash_file(tmp_path / "8.png")), _pdq(hash_file(tmp_path / "16.png"))
    # Clipping would turn nearly every pixel white: quality ~0 and an unrelated hash.
    assert b.quality == a.quality
    assert hamming_distance(a.value or "", b.value or "") <= 4


def test_animated_image_hashes_first_frame_and_says_so(tmp_path: Path) -> None:
    frames = [_photo_like(), _photo_like().transpose(Image.Transpose.ROTATE_180)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    result = hash_file(path)
    assert result.media == "image"
    assert any("animated" in w for w in result.warnings)


def test_md5_is_of_the_exact_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    _photo_like().save(path, quality=90)
    result = hash_file(path)
    assert result.md5.value == hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324
    assert result.md5.media == "image"
    assert [i.algorithm for i in result.items] == ["pdq", "md5"]


def test_submission_json_never_contains_the_file_name_or_path(tmp_path: Path) -> None:
    folder = tmp_path / "private-folder-jane-doe"
    folder.mkdir()
    path = folder / "jane-doe-bedroom.png"
    _photo_like().save(path)
    body = json.dumps(build_submission([hash_file(path, dihedral=True)]).body())
    for fragment in ("jane", "bedroom", "private-folder", ".png", str(tmp_path)):
        assert fragment not in body
    assert set(json.loads(body)) == {"hashes"}


def test_models_refuse_extra_fields_so_no_file_name_can_sneak_in() -> None:
    with pytest.raises(ValidationError):
        HashItem.model_validate(
            {"algorithm": "md5", "value": "0" * 32, "media": "image", "filename": "a.jpg"}
        )
    with pytest.raises(ValidationError):
        HashSubmission.model_validate({"hashes": [], "file": "a.jpg"})


def test_identical_files_are_submitted_once(tmp_path: Path) -> None:
    _photo_like().save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes())
    submission = build_submission([hash_file(tmp_path / "a.png"), hash_file(tmp_path / "b.png")])
    assert [i.algorithm for i in submission.hashes] == ["pdq", "md5"]


# ------------------------------------------------------------------ refusals


def test_text_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an image\n")
    with pytest.raises(UnsupportedFile, match="not an image or video") as info:
        hash_file(path)
    assert info.value.path == path


def test_empty_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(UnsupportedFile, match="empty"):
        hash_file(path)


def test_missing_file_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile, match="no such file"):
        hash_file(tmp_path / "nope.jpg")


def test_directory_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile, match="directory"):
        hash_file(tmp_path)


def test_truncated_jpeg_is_unsupported(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    _photo_like(400, 300).save(good, quality=90)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(UnsupportedFile, match="not a readable image"):
        hash_file(bad)


def test_heic_without_pillow_heif_names_the_missing_package(tmp_path: Path) -> None:
    if importlib.util.find_spec("pillow_heif") is not None:
        pytest.skip("pillow-heif is installed here, so HEIC files are readable")
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    with pytest.raises(UnsupportedFile, match="pillow-heif"):
        hash_file(path)


# ------------------------------------------------------------------ video

FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 4


def test_video_without_vpdq_gives_md5_and_says_similarity_hashes_are_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vpdq", None)  # import vpdq -> ImportError
    path = tmp_path / "clip.mp4"
    path.write_bytes(FAKE_MP4)
    result = hash_file(path)
    assert result.media == "video"
    assert [i.algorithm for i in result.items] == ["md5"]
    assert result.md5.value == hashlib.md5(FAKE_MP4).hexdigest()  # noqa: S324
    assert result.md5.media == "video"
    assert any("vPDQ" in w and "unavailable" in w for w in result.warnings)


def test_video_is_recognised_by_its_signature_without_an_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vpdq", None)
    path = tmp_path / "download"
    path.write_bytes(FAKE_MP4)
    assert hash_file(path).media == "video"


@pytest.mark.parametrize("suffix", [".mov", ".m4v", ".webm", ".mkv", ".avi"])
def test_video_is_recognised_by_its_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setitem(sys.modules, "vpdq", None)
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(b"opaque container bytes " * 10)
    assert hash_file(path).media == "video"


def test_video_with_vpdq_available_includes_frame_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feature = types.SimpleNamespace
    fake = types.ModuleType("vpdq")
    fake.computeHash = lambda _path: [  # type: ignore[attr-defined]
        feature(hex="AB" * 32, quality=90, timestamp=0.0, frame_number=0),
        feature(hex="cd" * 32, quality=12, timestamp=1.0000001, frame_number=30),
    ]
    monkeypatch.setitem(sys.modules, "vpdq", fake)
    path = tmp_path / "clip.mp4"
    path.write_bytes(FAKE_MP4)
    result = hash_file(path)
    assert [i.algorithm for i in result.items] == ["vpdq", "md5"]
    assert result.vpdq is not None
    assert result.vpdq.frames == [
        VideoFrame(value="ab" * 32, quality=90, timestamp=0.0),
        VideoFrame(value="cd" * 32, quality=12, timestamp=1.0),
    ]
    assert result.warnings == ()


def test_video_whose_vpdq_hashing_fails_still_gets_its_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_path: str) -> list[object]:
        raise Exception("Fail to create VPDQ hash")  # what vpdq itself raises

    fake = types.ModuleType("vpdq")
    fake.computeHash = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vpdq", fake)
    path = tmp_path / "clip.mp4"
    path.write_bytes(FAKE_MP4)
    result = hash_file(path)
    assert [i.algorithm for i in result.items] == ["md5"]
    assert any("vPDQ hashing failed" in w for w in result.warnings)


# ------------------------------------------------------------------ models


@pytest.mark.parametrize(
    "item",
    [
        {"algorithm": "pdq", "value": "A" * 64, "quality": 80, "media": "image"},
        {"algorithm": "pdq", "value": "a" * 63, "quality": 80, "media": "image"},
        {"algorithm": "pdq", "value": "g" * 64, "quality": 80, "media": "image"},
        {"algorithm": "pdq", "value": "a" * 64, "quality": 101, "media": "image"},
        {"algorithm": "pdq", "value": "a" * 64, "quality": -1, "media": "image"},
        {"algorithm": "pdq", "value": "a" * 64, "media": "image"},
        {"algorithm": "pdq", "value": "a" * 64, "quality": 80, "media": "video"},
        {"algorithm": "pdq", "value": "a" * 64, "quality": 80, "media": "image", "dihedral": []},
        {"algorithm": "md5", "value": "a" * 64, "media": "image"},
        {"algorithm": "md5", "value": "a" * 32, "quality": 80, "media": "image"},
        {"algorithm": "vpdq", "media": "video"},
        {"algorithm": "vpdq", "media": "video", "frames": []},
        {"algorithm": "vpdq", "media": "image", "frames": [{"value": "a" * 64, "quality": 1}]},
        {"algorithm": "sha1", "value": "a" * 40, "media": "image"},
    ],
)
def test_hash_item_refuses_malformed_hashes(item: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        HashItem.model_validate(item)


def test_submission_body_has_the_documented_shape() -> None:
    body = HashSubmission(
        hashes=[
            HashItem(algorithm="pdq", value="a" * 64, quality=87, media="image"),
            HashItem(algorithm="md5", value="b" * 32, media="image"),
            HashItem(
                algorithm="vpdq",
                media="video",
                frames=[VideoFrame(value="c" * 64, quality=90, timestamp=1.0)],
            ),
        ]
    ).body()
    assert body == {
        "hashes": [
            {"algorithm": "pdq", "value": "a" * 64, "quality": 87, "media": "image"},
            {"algorithm": "md5", "value": "b" * 32, "media": "image"},
            {
                "algorithm": "vpdq",
                "media": "video",
                "frames": [{"value": "c" * 64, "quality": 90, "timestamp": 1.0}],
            },
        ]
    }
    assert HashSubmission.model_validate(body).body() == body
