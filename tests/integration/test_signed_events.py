"""Signed events on a real NATS server, checked by `ncii log verify` as an auditor runs it
(security review F1: a service that can publish on another's subject forged events the
unkeyed hash chain accepted; decision 23).

Each test has a NATS server of its own, so the whole log verified is the test's: the first bad
event named is the one the test wrote.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from nats.aio.client import Client as NATS
from ncii_cli.main import app
from ncii_contracts.intake import HashesSubmitted, SubmittedHash
from ncii_events.auth import create_principal
from ncii_events.crypto import MasterKey
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.envelope import GENESIS, canonical_json, envelope_hash
from ncii_events.keys import NatsCaseKeys
from ncii_events.signing import OPERATOR, PUBLIC_KEYS_FILE
from ncii_events.store import NEW, AggregateRef, EventStore, Version
from ncii_events.stream import REFERENCE, ensure_streams
from ncii_events.transport import connect
from typer.testing import CliRunner

from tests.conftest import ROOT, signing_key
from tests.support.events import REGISTRY
from tests.support.eventually import eventually_sync
from tests.support.factories import CAUSE, new_case


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    store = tmp_path_factory.mktemp("nats-signed")
    server = EmbeddedNats(store, port=free_port(), monitor_port=free_port(), sync_always=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def own_nc(own_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await connect(own_server.url, name="signed-events")
    await ensure_streams(client)
    yield client
    await client.close()


MASTER = MasterKey(os.urandom(32))
"""This module's own servers' master key: hashes are personal data, encrypted under case keys."""


def _store(nc: NATS, keys_dir: Path, signer: str, *, reference: bool = False) -> EventStore:
    signing = signing_key(keys_dir, signer)
    if reference:
        return EventStore(nc, None, registry=REGISTRY, spec=REFERENCE, signing=signing)
    return EventStore(nc, NatsCaseKeys(nc, MASTER), registry=REGISTRY, signing=signing)


def _submitted() -> HashesSubmitted:
    value = uuid.uuid4().hex * 2
    return HashesSubmitted(
        submission_id=str(uuid.uuid4()),
        organisation="ngo-signed",
        age_group="adult",
        hashes=[SubmittedHash(algorithm="pdq", value=value, media="image", quality=90)],
    )


def _case_ref(case: str) -> AggregateRef:
    return AggregateRef(case, "case", case)


async def _verify(server: EmbeddedNats, keys_dir: Path, tmp_path: Path) -> Result:
    env = {
        "NCII_NATS_URL": server.url,
        "NCII_VAR_DIR": str(tmp_path),
        "NCII_SIGNING_PUBLIC_KEYS_FILE": str(keys_dir / PUBLIC_KEYS_FILE),
    }
    # the command runs its own event loop, as it does from a shell
    return await asyncio.to_thread(CliRunner().invoke, app, ["log", "verify"], env=env)


def _counts(result: Result, stream: str) -> tuple[int, int, int]:
    found = re.search(
        rf"^{stream}: \d+ events in \d+ aggregates: (\d+) verified, (\d+) unsigned .*?, (\d+) bad",
        result.output,
        re.MULTILINE,
    )
    assert found, result.output
    verified, unsigned, bad = found.groups()
    return int(verified), int(unsigned), int(bad)


async def _publish_forged(nc: NATS, case: str, prev_hash: str, **envelope: Any) -> dict[str, Any]:
    """What a service that may publish on intake's subjects (or re-maps its own onto them)
    writes: an intake event correctly linked to ``prev_hash`` and hashed, signed as
    ``envelope`` says (a ``signature`` may be made from the hash), or not at all."""
    doc: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": HashesSubmitted.event_type,
        "schema_version": 1,
        "case_id": case,
        "aggregate": "case",
        "aggregate_id": case,
        "occurred_at": "2026-11-29T10:00:00.000000Z",
        "actor": {"organisation": "ngo-signed", "principal": "p", "role": "partner"},
        "correlation_id": "c",
        "causation_id": "c",
        "traceparent": None,
        "payload": _submitted().model_dump(mode="json"),
        "prev_hash": prev_hash,
        **envelope,
    }
    signature = doc.pop("signature", None)
    doc["hash"] = envelope_hash(doc)
    if signature is not None:
        doc["signature"] = signature(doc["hash"]) if callable(signature) else signature
    ack = await nc.jetstream().publish(
        f"ncii.{case}.case.{case}.HashesSubmitted", canonical_json(doc)
    )
    doc["seq"] = ack.seq
    return doc


async def test_signed_events_verify_and_unsigned_ones_written_before_signing_are_only_counted(
    own_server: EmbeddedNats, own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    legacy_case, case = new_case(), new_case()
    # two events as the log held them before this change: no signer, key id or signature
    first = await _publish_forged(own_nc, legacy_case, GENESIS)
    second = await _publish_forged(own_nc, legacy_case, first["hash"])
    assert "signer" not in second
    await _store(own_nc, keys_dir, "intake").append(
        _case_ref(case), [_submitted(), _submitted()], expected=NEW, cause=CAUSE
    )
    operator = _store(own_nc, keys_dir, OPERATOR, reference=True)
    await create_principal(operator, organisation="ngo-signed", role="partner")

    result = await _verify(own_server, keys_dir, tmp_path)
    assert result.exit_code == 0, result.output
    assert _counts(result, "NCII") == (2, 2, 0)
    assert _counts(result, "NCII_REF") == (1, 0, 0)


@pytest.mark.parametrize(
    ("signed_as", "why"),
    [
        ({}, "unsigned, though events are signed since seq 1"),
        (
            {"signer": "intake", "key_id": "from-the-log", "signature": "from-the-log"},
            "signature does not verify with intake's key",
        ),
        (
            {"signer": "intake", "key_id": "from-the-log", "signature": "by-hashmatch"},
            "signature does not verify with intake's key",
        ),
    ],
    ids=["no signature", "a signature copied from intake's event", "signed with another key"],
)
async def test_a_forged_event_with_a_valid_chain_link_is_named_by_verify(
    own_server: EmbeddedNats,
    own_nc: NATS,
    keys_dir: Path,
    tmp_path: Path,
    signed_as: dict[str, str],
    why: str,
) -> None:
    case = new_case()
    [real] = await _store(own_nc, keys_dir, "intake").append(
        _case_ref(case), [_submitted()], expected=NEW, cause=CAUSE
    )
    hashmatch = signing_key(keys_dir, "hashmatch")
    envelope: dict[str, Any] = dict(signed_as)
    if envelope.get("key_id") == "from-the-log":
        envelope["key_id"] = real.envelope.key_id
    if envelope.get("signature") == "from-the-log":
        envelope["signature"] = real.envelope.signature
    elif envelope.get("signature") == "by-hashmatch":
        envelope["signature"] = lambda digest: hashmatch.sign("NCII", digest)
    forged = await _publish_forged(own_nc, case, real.envelope.hash, **envelope)

    result = await _verify(own_server, keys_dir, tmp_path)
    assert result.exit_code == 1, result.output
    assert _counts(result, "NCII") == (1, 0, 1)
    named = f"seq {forged['seq']} (HashesSubmitted, event {forged['event_id']}): {why}"
    assert named in " ".join(result.output.split()), result.output


async def test_an_intake_event_signed_with_hashmatchs_key_is_named_as_the_wrong_signer(
    own_server: EmbeddedNats, own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    """A compromised hashmatch holds its own key: it can sign, but not as intake."""
    case = new_case()
    intake = _store(own_nc, keys_dir, "intake")
    written = await intake.append(_case_ref(case), [_submitted()], expected=NEW, cause=CAUSE)
    [forged] = await _store(own_nc, keys_dir, "hashmatch").append(
        _case_ref(case), [_submitted()], expected=Version.of(written), cause=CAUSE
    )
    result = await _verify(own_server, keys_dir, tmp_path)
    assert result.exit_code == 1, result.output
    assert _counts(result, "NCII") == (1, 0, 1)
    assert (
        f"seq {forged.seq} (HashesSubmitted, event {forged.envelope.event_id}): wrong signer: "
        "hashmatch may not write HashesSubmitted (only intake)"
    ) in " ".join(result.output.split())


async def test_a_principal_signed_by_a_service_not_the_operator_is_refused_by_verify(
    own_server: EmbeddedNats, own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    """Security review F1 row 5: hashmatch minted itself a case worker's API key."""
    await create_principal(
        _store(own_nc, keys_dir, OPERATOR, reference=True), organisation="ngo", role="partner"
    )
    await create_principal(
        _store(own_nc, keys_dir, "hashmatch", reference=True),
        organisation="centre",
        role="caseworker",
    )
    result = await _verify(own_server, keys_dir, tmp_path)
    assert result.exit_code == 1, result.output
    assert _counts(result, "NCII_REF") == (1, 0, 1)
    output = " ".join(result.output.split())
    assert "first bad event in NCII_REF: seq 2 (PrincipalCreated" in output
    assert "wrong signer: hashmatch may not write PrincipalCreated (only operator)" in output


async def test_a_payload_changed_after_signing_is_named_by_verify(
    own_server: EmbeddedNats, own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    """The signed event copied with another payload (its hash redone so the chain holds, its
    signature kept): the signature no longer matches. (A change in place without redoing the
    hash is "content altered": tests/unit/test_signing.py.)"""
    case = new_case()
    [real] = await _store(own_nc, keys_dir, "intake").append(
        _case_ref(case), [_submitted()], expected=NEW, cause=CAUSE
    )
    copied = real.envelope.to_dict()
    changed = {k: v for k, v in copied.items() if k not in ("hash", "prev_hash", "event_id")}
    changed["payload"] = _submitted().model_dump(mode="json")
    forged = await _publish_forged(own_nc, case, real.envelope.hash, **changed)
    assert forged["signature"] == real.envelope.signature
    result = await _verify(own_server, keys_dir, tmp_path)
    assert result.exit_code == 1, result.output
    assert f"seq {forged['seq']} (HashesSubmitted" in " ".join(result.output.split())
    assert "signature does not verify with intake's key" in " ".join(result.output.split())


def test_a_service_without_its_private_key_does_not_start_and_says_what_to_do(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    missing = tmp_path / "keys" / "takedown.ed25519"
    env = {
        **os.environ,
        "NCII_NATS_URL": nats_server.url,
        "NCII_VAR_DIR": str(tmp_path),
        "NCII_PORT": str(free_port()),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("NCII_SIGNING_KEY_FILE", None)
    env.pop("NCII_SIGNING_KEYS_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ncii_takedown.main"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        eventually_sync(lambda: process.poll() is not None, what="takedown refusing to start")
        stderr = process.stderr.read().decode() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == 1
    said = " ".join(stderr.split())
    assert f"takedown cannot start: no signing key for takedown at {missing}" in said
    assert "`ncii signing-keys create`" in said and "NCII_SIGNING_KEY_FILE" in said
