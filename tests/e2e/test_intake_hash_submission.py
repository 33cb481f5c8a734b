"""`ncii hash --submit` against the running intake: hashes of Meta's conformance images reach
the case, the file never does, and images too low in quality are refused with a clear error."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from ncii_cli.main import app
from ncii_contracts import intake as intake_events
from ncii_events.store import EventStore
from typer.testing import CliRunner

from tests.conftest import ROOT
from tests.e2e.conftest import RunningService, caught_up
from tests.e2e.test_intake_api import case_body

CONFORMANCE = ROOT.parent / "shared" / "pdq-conformance" / "images"
MakeKey = Callable[[str, str], Awaitable[str]]

pytestmark = pytest.mark.skipif(
    not CONFORMANCE.is_dir(), reason=f"Meta's conformance images not found at {CONFORMANCE}"
)


async def _minor_case(intake: RunningService, key: str) -> str:
    async with intake.client(key) as client:
        response = await client.post("/v1/cases", json=case_body(age_group="minor"))
        assert response.status_code == 201
        return str(response.json()["case_id"])


async def test_ncii_hash_submits_the_conformance_images_hashes_to_the_case_and_never_the_file(
    intake: RunningService, make_key: MakeKey, store: EventStore
) -> None:
    key = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    case_id = await _minor_case(intake, key)
    images = sorted(p for p in CONFORMANCE.glob("*bridge*.jpg"))
    assert len(images) == 8
    result = CliRunner().invoke(
        app,
        [
            "hash",
            *map(str, images),
            "--dihedral",
            "--submit",
            case_id,
            "--intake-url",
            intake.url,
            "--key",
            key,
        ],
    )
    assert result.exit_code == 0, result.output
    history = await store.read_case(case_id)
    submitted = [e.event for e in history if isinstance(e.event, intake_events.HashesSubmitted)]
    assert len(submitted) == 1
    pdq = [h for h in submitted[0].hashes if h.algorithm == "pdq"]
    md5 = [h for h in submitted[0].hashes if h.algorithm == "md5"]
    assert len(pdq) == 8 and len(md5) == 8
    assert all(h.dihedral is not None and len(h.dihedral) == 8 for h in pdq)
    raw = b"".join(str(e.envelope.to_dict()).encode() for e in history)
    assert b"bridge" not in raw and b".jpg" not in raw


async def test_a_low_quality_image_is_refused_with_what_to_do_and_nothing_is_written(
    intake: RunningService, make_key: MakeKey, store: EventStore
) -> None:
    key = await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    await caught_up(intake)
    case_id = await _minor_case(intake, key)
    low = CONFORMANCE / "reg-test-input__labelme-subset__q0003.jpg"
    good = CONFORMANCE / "misc-images__c.png"
    result = CliRunner().invoke(
        app,
        [
            "hash",
            str(good),
            str(low),
            "--submit",
            case_id,
            "--intake-url",
            intake.url,
            "--key",
            key,
        ],
    )
    assert result.exit_code == 1
    assert "below 50" in result.output
    history = await store.read_case(case_id)
    assert [e.type for e in history] == ["CaseOpened"]


def test_the_conformance_folder_is_where_the_tests_expect_it() -> None:
    assert (CONFORMANCE.parent / "expected.csv").is_file(), Path(CONFORMANCE)
