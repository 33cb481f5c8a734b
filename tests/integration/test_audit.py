"""Auditors on a real NATS server (issue 13, decision 37): a case replayed from the log with
every link and signature checked, as of a time, reveals recorded before data is returned, the
whole log verified on worker processes (also after bytes of a stored message changed on disk),
and a case bundle verified offline.

Each test has a NATS server of its own, so the log verified is the test's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import Result
from nats.aio.client import Client as NATS
from ncii_audit.app import AuditApp, Reveal, public_keys_doc
from ncii_audit.bundle import verify_bundle
from ncii_audit.history import fold
from ncii_audit.verify import verify_store
from ncii_cli.main import app as cli
from ncii_cli.services import all_services
from ncii_contracts import ALL_EVENTS
from ncii_contracts.audit import AuditorReadPersonalData
from ncii_contracts.intake import HashesSubmitted, SubmittedHash
from ncii_events.crypto import MasterKey
from ncii_events.embedded import EmbeddedNats, free_port
from ncii_events.envelope import Actor
from ncii_events.keys import NatsCaseKeys
from ncii_events.registry import EventRegistry
from ncii_events.settings import Settings
from ncii_events.signing import PUBLIC_KEYS_FILE, allowed_signers
from ncii_events.store import NEW, AggregateRef, EventStore, Version
from ncii_events.stream import ensure_streams
from ncii_events.transport import connect
from typer.testing import CliRunner

from tests.conftest import signing_key
from tests.integration.test_signed_events import _publish_forged
from tests.support.factories import CAUSE, new_case

MASTER = MasterKey(os.urandom(32))
REGISTRY = EventRegistry(*ALL_EVENTS)
AUDITOR = Actor("centre", "auditor-1", "auditor")


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(
        tmp_path_factory.mktemp("nats-audit"),
        port=free_port(),
        monitor_port=free_port(),
        sync_always=False,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def own_nc(own_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await connect(own_server.url, name="audit-tests")
    await ensure_streams(client)
    yield client
    await client.close()


def _store(nc: NATS, keys_dir: Path, signer: str) -> EventStore:
    return EventStore(
        nc,
        NatsCaseKeys(nc, MASTER, writer=True),
        registry=REGISTRY,
        signing=signing_key(keys_dir, signer),
    )


def _keys(keys_dir: Path) -> dict[str, list[str]]:
    doc = public_keys_doc(Settings(signing_public_keys_file=keys_dir / PUBLIC_KEYS_FILE))
    assert doc is not None
    return doc


def _auditor(nc: NATS, keys_dir: Path) -> AuditApp:
    allowed = allowed_signers({n: s.emits for n, s in all_services().items()})
    return AuditApp(
        _store(nc, keys_dir, "audit"), _keys(keys_dir), allowed, signing_key(keys_dir, "audit")
    )


def _submitted(value: str | None = None) -> HashesSubmitted:
    return HashesSubmitted(
        submission_id=str(uuid.uuid4()),
        organisation="ngo-audit",
        age_group="adult",
        hashes=[
            SubmittedHash(
                algorithm="pdq", value=value or uuid.uuid4().hex * 2, media="image", quality=90
            )
        ],
    )


async def _case(nc: NATS, keys_dir: Path, events: int = 2) -> tuple[str, list[str]]:
    case = new_case()
    intake = _store(nc, keys_dir, "intake")
    version: Version = NEW
    hashes = []
    for _ in range(events):
        value = uuid.uuid4().hex * 2
        hashes.append(value)
        written = await intake.append(
            AggregateRef(case, "case", case), [_submitted(value)], expected=version, cause=CAUSE
        )
        version = Version(written[-1].seq, written[-1].envelope.hash, version.count + 1)
    return case, hashes


async def test_replay_verifies_every_event_and_withholds_personal_fields(
    own_nc: NATS, keys_dir: Path
) -> None:
    case, hashes = await _case(own_nc, keys_dir)
    history = await _auditor(own_nc, keys_dir).replay(case, AUDITOR)
    assert history.ok and history.verified == 2
    assert [e.check for e in history.entries] == ["ok", "ok"]
    assert [e.position for e in history.entries] == [1, 2]
    first = history.entries[0]
    assert first.signer == "intake" and first.actor["role"] == "caseworker"
    assert first.correlation_id == CAUSE.correlation_id
    assert first.personal == {"hashes": "withheld"}
    assert first.payload["hashes"] is None
    assert hashes[0] not in json.dumps([e.to_json() for e in history.entries])


async def test_a_reveal_is_in_the_log_before_personal_fields_are_shown(
    own_nc: NATS, keys_dir: Path
) -> None:
    case, hashes = await _case(own_nc, keys_dir)
    auditor = _auditor(own_nc, keys_dir)
    reveal = Reveal("legal_obligation", "court-2026/17", "GET /v1/audit/cases/{case_id}")
    history = await auditor.replay(case, AUDITOR, reveal=reveal)
    assert history.entries[0].payload["hashes"][0]["value"] == hashes[0]
    read = history.entries[-1]
    assert read.type == AuditorReadPersonalData.event_type and read.signer == "audit"
    assert read.actor == {"organisation": "centre", "principal": "auditor-1", "role": "auditor"}
    assert read.payload["reason"] == "legal_obligation" and read.check == "ok"
    # the access log replays it: who, when, why, through which endpoint
    [logged] = await auditor.access_log(case)
    assert logged["endpoint"] == "GET /v1/audit/cases/{case_id}"
    assert logged["actor"]["principal"] == "auditor-1" and logged["ticket"] == "court-2026/17"


async def test_replay_names_the_first_forged_event_of_the_case(
    own_nc: NATS, keys_dir: Path
) -> None:
    case, _ = await _case(own_nc, keys_dir, events=1)
    auditor = _auditor(own_nc, keys_dir)
    [real] = (await auditor.replay(case, AUDITOR)).entries
    forged = await _publish_forged(own_nc, case, real.hash)  # linked, hashed, unsigned
    history = await auditor.replay(case, AUDITOR)
    assert not history.ok
    assert history.entries[1].check.startswith("unsigned, though events are signed")
    assert history.first_break is not None and forged["event_id"] in history.first_break
    assert history.first_break.startswith("event 2 of the case")


async def test_as_of_shows_the_case_as_it_stood_then(own_nc: NATS, keys_dir: Path) -> None:
    case, _ = await _case(own_nc, keys_dir, events=3)
    auditor = _auditor(own_nc, keys_dir)
    full = await auditor.replay(case, AUDITOR)
    second = full.entries[1]
    then = datetime.fromisoformat(second.occurred_at.replace("Z", "+00:00"))
    past = await auditor.replay(case, AUDITOR, as_of=then)
    assert [e.event_id for e in past.entries] == [e.event_id for e in full.entries[:2]]
    [state] = fold(past)
    assert state.events == ["HashesSubmitted", "HashesSubmitted"]
    assert state.set_by["submission_id"] == 2
    assert state.fields["submission_id"] == second.payload["submission_id"]


async def test_a_case_bundle_verifies_offline_and_any_change_is_refused(
    own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    case, _ = await _case(own_nc, keys_dir)
    document = await _auditor(own_nc, keys_dir).bundle(case, AUDITOR)
    audit_key = _keys(keys_dir)["audit"][-1]
    assert verify_bundle(document, audit_key) == []
    path = tmp_path / "case.json"
    path.write_text(json.dumps(document))
    ok = CliRunner().invoke(cli, ["audit", "verify-bundle", str(path), "--public-key", audit_key])
    assert ok.exit_code == 0, ok.output
    # a changed history line: the bundle's signature no longer holds
    document["bundle"]["history"][0]["actor"]["principal"] = "someone-else"
    path.write_text(json.dumps(document))
    bad = CliRunner().invoke(cli, ["audit", "verify-bundle", str(path), "--public-key", audit_key])
    assert bad.exit_code == 1 and "does not verify" in bad.output
    # another key than the audit signer's
    other = _keys(keys_dir)["intake"][-1]
    assert verify_bundle(await _auditor(own_nc, keys_dir).bundle(case, AUDITOR), other)


async def test_verify_on_workers_counts_every_event_and_names_a_forged_one(
    own_nc: NATS, keys_dir: Path
) -> None:
    case, _ = await _case(own_nc, keys_dir, events=3)
    auditor = _auditor(own_nc, keys_dir)
    allowed = auditor.allowed
    report = await verify_store(auditor.store, _keys(keys_dir), allowed, workers=2)
    assert (report.checked, report.verified, report.bad) == (3, 3, 0)
    last = (await auditor.replay(case, AUDITOR)).entries[-1]
    forged = await _publish_forged(
        own_nc, case, last.hash, signer="intake", key_id="x", signature="x"
    )
    report = await verify_store(auditor.store, _keys(keys_dir), allowed, workers=2)
    assert report.bad == 1 and report.first_break is not None
    assert report.first_break.event_id == forged["event_id"]


async def test_verify_names_the_event_whose_bytes_changed_in_a_copied_jetstream_store(
    own_server: EmbeddedNats, own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    case, _ = await _case(own_nc, keys_dir, events=3)
    history = await _auditor(own_nc, keys_dir).replay(case, AUDITOR)
    target = history.entries[1]
    await own_nc.close()
    own_server.stop()
    copy = tmp_path / "copy"
    shutil.copytree(own_server.store_dir, copy)
    # one byte of the second event's id, in the copy's block file: NATS's own checksum then drops
    # the message, and verify names the position it is missing from
    changed = 0
    for block in copy.rglob("*.blk"):
        data = block.read_bytes()
        at = data.find(target.event_id.encode())
        if at >= 0:
            block.write_bytes(
                data[:at] + (b"f" if data[at : at + 1] != b"f" else b"e") + data[at + 1 :]
            )
            changed += 1
    assert changed == 1
    server = EmbeddedNats(copy, port=free_port(), monitor_port=free_port(), sync_always=False)
    server.start()
    try:
        nc = await connect(server.url, name="audit-copy")
        try:
            store = EventStore(nc, None, registry=REGISTRY)
            allowed = allowed_signers({n: s.emits for n, s in all_services().items()})
            report = await verify_store(store, _keys(keys_dir), allowed, workers=2)
        finally:
            await nc.close()
    finally:
        server.stop()
    assert report.first_break is not None, report
    assert report.first_break.seq == target.seq, report.first_break
    assert "missing from the store" in report.first_break.reason


async def _cli(server: EmbeddedNats, keys_dir: Path, tmp_path: Path, *args: str) -> Result:
    env = {
        "NCII_NATS_URL": server.url,
        "NCII_VAR_DIR": str(tmp_path),
        "NCII_SIGNING_KEYS_DIR": str(keys_dir),
        "NCII_SIGNING_PUBLIC_KEYS_FILE": str(keys_dir / PUBLIC_KEYS_FILE),
    }
    # the command runs its own event loop, as it does from a shell
    return await asyncio.to_thread(CliRunner().invoke, cli, ["audit", *args], env=env)


async def test_the_audit_commands_replay_verify_and_bundle_a_case(
    own_server: EmbeddedNats, own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    case, hashes = await _case(own_nc, keys_dir, events=2)
    replayed = await _cli(own_server, keys_dir, tmp_path, "replay", case, "--json")
    assert replayed.exit_code == 0, replayed.output
    lines = [json.loads(line) for line in replayed.output.splitlines()]
    assert [next(iter(line)) for line in lines] == ["event", "event", "summary"]
    assert lines[0]["event"]["check"] == "ok" and lines[-1]["summary"]["verified"] == 2
    assert hashes[0] not in replayed.output
    as_of = lines[0]["event"]["occurred_at"]
    past = await _cli(own_server, keys_dir, tmp_path, "replay", case, "--json", "--as-of", as_of)
    kinds = [next(iter(json.loads(line))) for line in past.output.splitlines()]
    assert kinds == ["event", "state", "domain", "summary"], past.output
    table = await _cli(own_server, keys_dir, tmp_path, "replay", case)
    assert table.exit_code == 0 and "chain and signatures hold" in table.output

    verified = await _cli(own_server, keys_dir, tmp_path, "verify", "--workers", "2")
    assert verified.exit_code == 0, verified.output
    assert "NCII: 2 events in 1 aggregates" in verified.output
    assert "events/s): 2 verified, 0 unsigned" in " ".join(verified.output.split())

    out = tmp_path / "bundle.json"
    made = await _cli(own_server, keys_dir, tmp_path, "bundle", case, "--out", str(out))
    assert made.exit_code == 0, made.output
    assert "Case bundle" in out.with_suffix(".html").read_text()
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF-")
    # offline: no server, the public keys file names the audit key
    checked = CliRunner().invoke(
        cli,
        ["audit", "verify-bundle", str(out), "--public-key", str(keys_dir / PUBLIC_KEYS_FILE)],
    )
    assert checked.exit_code == 0, checked.output
    assert "holds" in checked.output
