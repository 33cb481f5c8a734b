"""Auditors on a real NATS server (issue 13, decision 37): a case replayed from the log with
every link and signature checked, as of a time, reveals recorded before data is returned, the
whole log verified on worker processes (also after bytes of a stored message changed on disk),
and a case bundle verified offline.

Each test has a NATS server of its own, so the log verified is the test's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

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
from ncii_contracts.hashmatch import (
    BankedEntry,
    HashesBanked,
    HashesWithdrawn,
    MatchFeedbackReceived,
    MatchFound,
    SightingsCounted,
)
from ncii_contracts.intake import (
    CaseOpened,
    CaseWithdrawn,
    Consents,
    HashesSubmitted,
    SubmittedHash,
)
from ncii_contracts.referral import (
    GuidanceItemTicked,
    MandatoryReportDue,
    MandatoryReportOverdue,
    MandatoryReportSubmitted,
    ReferralAccepted,
    ReferralOffered,
)
from ncii_contracts.takedown import TakedownOpened, TakedownPlatformAssigned
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


async def test_the_replay_command_names_the_first_forged_event_and_exits_1(
    own_server: EmbeddedNats, own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    case, _ = await _case(own_nc, keys_dir, events=1)
    [real] = (await _auditor(own_nc, keys_dir).replay(case, AUDITOR)).entries
    forged = await _publish_forged(own_nc, case, real.hash)
    table = await _cli(own_server, keys_dir, tmp_path, "replay", case)
    assert table.exit_code == 1, table.output
    said = " ".join(table.output.split())
    assert "broken; first bad: event 2 of the case" in said and forged["event_id"] in said
    lines = await _cli(own_server, keys_dir, tmp_path, "replay", case, "--json")
    assert lines.exit_code == 1
    summary = json.loads(lines.output.splitlines()[-1])["summary"]
    assert forged["event_id"] in summary["first_break"] and summary["bad"] == 1


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
        # the command an auditor runs, on the copy
        verified = await _cli(server, keys_dir, tmp_path, "verify", "--workers", "2")
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
    # its id went with its bytes: it is named by its aggregate and the hash its successor holds
    assert f"case {case}'s case {case} event with hash {target.hash}" in report.first_break.reason
    assert verified.exit_code == 1, verified.output
    said = " ".join(verified.output.split())
    assert f"first bad event in NCII: seq {target.seq}" in said, said
    assert target.hash in said


async def _cli(
    server: EmbeddedNats, keys_dir: Path, tmp_path: Path, *args: str, columns: int = 80
) -> Result:
    env = {
        "COLUMNS": str(columns),  # rich's width for the table
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
    table = await _cli(own_server, keys_dir, tmp_path, "replay", case, columns=1000)
    assert table.exit_code == 0 and "chain and signatures hold" in table.output
    flat = "".join(table.output.split())
    assert lines[0]["event"]["payload"]["submission_id"] in flat and '"<withheld>"' in flat
    assert hashes[0] not in flat

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
    # the PDF carries the signed JSON: verified from the PDF alone, and refused once changed
    printable = out.with_suffix(".pdf")
    from_pdf = CliRunner().invoke(
        cli,
        [
            "audit",
            "verify-bundle",
            str(printable),
            "--public-key",
            str(keys_dir / PUBLIC_KEYS_FILE),
        ],
    )
    assert from_pdf.exit_code == 0 and "holds" in from_pdf.output, from_pdf.output
    pdf = printable.read_bytes()
    at = pdf.index(b'"event_id": "') + len(b'"event_id": "')
    printable.write_bytes(pdf[:at] + (b"0" if pdf[at : at + 1] != b"0" else b"1") + pdf[at + 1 :])
    altered = CliRunner().invoke(
        cli,
        [
            "audit",
            "verify-bundle",
            str(printable),
            "--public-key",
            str(keys_dir / PUBLIC_KEYS_FILE),
        ],
    )
    assert altered.exit_code == 1 and "does not verify" in altered.output, altered.output


class _Writers:
    """Appends a case's events as each service does: its own signer, its own aggregates."""

    def __init__(self, nc: NATS, keys_dir: Path, case: str) -> None:
        self.case = case
        self.stores = {
            s: _store(nc, keys_dir, s) for s in ("intake", "hashmatch", "takedown", "referral")
        }
        self.versions: dict[tuple[str, str], Version] = {}

    async def append(self, signer: str, aggregate: str, aggregate_id: str, event: Any) -> str:
        version = self.versions.get((aggregate, aggregate_id), NEW)
        [written] = await self.stores[signer].append(
            AggregateRef(self.case, aggregate, aggregate_id), [event], expected=version, cause=CAUSE
        )
        self.versions[(aggregate, aggregate_id)] = Version(
            written.seq, written.envelope.hash, version.count + 1
        )
        return written.envelope.occurred_at


async def test_as_of_folds_every_services_aggregates_of_a_case_as_they_stood_at_two_times(
    own_nc: NATS, keys_dir: Path
) -> None:
    """Decisions 52 and 56: as of a time, the case, its hashes in the bank and a match, a
    takedown, a referral, the minor's art. 7 report and the guidance, each folded by its own
    service's published domain code, from the same log at two times."""
    case = new_case()
    w = _Writers(own_nc, keys_dir, case)
    match_uuid, takedown_id, referral_id, report_id = (str(uuid.uuid4()) for _ in range(4))
    learned = "2026-11-30T08:00:00.000000Z"
    await w.append(
        "intake",
        "case",
        case,
        CaseOpened(
            organisation="ngo-audit",
            reference="AAAA-BBBB-CCCC",
            age_group="minor",
            harm_categories=["threat_sextortion"],
            spread_status="spread",
            channels=[],
            intake_channel="phone",
            learned_at=learned,
            consents=Consents(takedown=True, share_hashes=True, referral=True),
            region="taipei_city",
        ),
    )
    banked = HashesBanked(
        submission_id="s1",
        bank="ORG_NGO_AUDIT__CHILD",
        entries=[BankedEntry(entry_key=k, index=i, algorithm="pdq") for i, k in enumerate("ab")],
        matchable_from=learned,
        poll_interval_ms=200,
    )
    await w.append("hashmatch", "banking", case, banked)
    found = MatchFound(
        match_id="m_1",
        sighting_id="s-1",
        bank=banked.bank,
        entry_key="a",
        algorithm="pdq",
        distance=4,
        platform="platform-a",
        seen_at="2026-11-30T09:00:00Z",
        url="https://platform.example/p/1",
    )
    await w.append("hashmatch", "match", match_uuid, found)
    await w.append(
        "takedown",
        "takedown",
        takedown_id,
        TakedownOpened(takedown_id=takedown_id, source="match", source_event_id="x"),
    )
    await w.append(
        "referral",
        "referral",
        referral_id,
        ReferralOffered(
            referral_id=referral_id,
            partner_id="p1",
            partner_organisation="ngo-support",
            service="photodna_programme",
            needs=["emotional_support"],
            consent_basis="victim_consent",
            age_group="minor",
            pseudonym="Sparrow",
        ),
    )
    due = MandatoryReportDue(
        report_id=report_id, learned_at=learned, due_at="2026-12-01T08:00:00.000000Z"
    )
    await w.append("referral", "mandatory_report", report_id, due)
    then_text = await w.append(
        "referral",
        "guidance",
        case,
        GuidanceItemTicked(item="sextortion_do_not_pay", ticked_at=learned),
    )
    # later: the platform counts and judges its sightings, one hash leaves matching, the
    # takedown gets its platform, the partner accepts, the report runs late and is filed, and
    # the case is withdrawn
    await w.append(
        "hashmatch",
        "match",
        match_uuid,
        SightingsCounted(
            match_id="m_1",
            entry_key="a",
            platform="platform-a",
            window_start="2026-11-30T09:00:00Z",
            window_end="2026-11-30T10:00:00Z",
            sightings=3,
            first_seen_at="2026-11-30T09:00:00Z",
            last_seen_at="2026-11-30T09:40:00Z",
        ),
    )
    await w.append(
        "hashmatch",
        "match",
        match_uuid,
        MatchFeedbackReceived(match_id="m_1", entry_key="a", verdict="blocked", platform="p"),
    )
    await w.append(
        "hashmatch",
        "banking",
        case,
        HashesWithdrawn(reason="false_positive", entry_keys=["b"], unmatchable_from=learned),
    )
    await w.append(
        "takedown",
        "takedown",
        takedown_id,
        TakedownPlatformAssigned(takedown_id=takedown_id, platform_id="platform-a"),
    )
    await w.append(
        "referral",
        "referral",
        referral_id,
        ReferralAccepted(referral_id=referral_id, accepted_at=learned),
    )
    await w.append(
        "referral",
        "mandatory_report",
        report_id,
        MandatoryReportOverdue(report_id=report_id, due_at=due.due_at, detected_at=due.due_at),
    )
    await w.append(
        "referral",
        "mandatory_report",
        report_id,
        MandatoryReportSubmitted(report_id=report_id, filed_at=due.due_at, late=True),
    )
    await w.append("intake", "case", case, CaseWithdrawn(withdrawn_by="caseworker"))

    auditor = _auditor(own_nc, keys_dir)
    then = datetime.fromisoformat(then_text.replace("Z", "+00:00"))
    now = datetime.fromisoformat("2999-01-01T00:00:00+00:00")
    past = await auditor.replay(case, AUDITOR, as_of=then)
    present = await auditor.replay(case, AUDITOR, as_of=now)
    assert past.ok and present.ok
    assert (len(past.entries), len(present.entries)) == (7, 15)

    def folded(history: Any) -> dict[str, Any]:
        out = {}
        for d in history.domain:
            assert "error" not in d, d
            out[d["aggregate"]] = d
        return out

    before, after = folded(past), folded(present)
    services = {"case": "intake", "banking": "hashmatch", "match": "hashmatch"}
    services |= {"takedown": "takedown", "referral": "referral"}
    services |= {"mandatory_report": "referral", "guidance": "referral"}
    assert {a: d["folded_by"] for a, d in before.items()} == services
    assert {a: d["folded_by"] for a, d in after.items()} == services
    state = {a: d["state"] for a, d in before.items()}
    later = {a: d["state"] for a, d in after.items()}
    assert (state["case"]["status"], later["case"]["status"]) == ("active", "withdrawn")
    assert (state["banking"]["matchable"], later["banking"]["matchable"]) == (2, 1)
    assert [e["state"] for e in later["banking"]["entries"]] == ["matchable", "negative"]
    assert (state["match"]["sightings"], later["match"]["sightings"]) == (1, 3)
    assert (state["match"]["verdict"], later["match"]["verdict"]) == (None, "blocked")
    assert (state["takedown"]["platform_id"], later["takedown"]["platform_id"]) == (
        None,
        "platform-a",
    )
    assert (state["referral"]["status"], later["referral"]["status"]) == ("offered", "accepted")
    report, filed = state["mandatory_report"], later["mandatory_report"]
    assert (report["status"], filed["status"], filed["late"]) == ("due", "filed", True)
    assert report["kind"] == "victim_minor"
    # the region is personal: withheld from the fold as from the history, so no authority
    assert report["region"] is None and report["authority"] is None
    assert state["guidance"] == {"ticked": {"sextortion_do_not_pay": learned}}
    assert "Sparrow" not in json.dumps([past.domain, present.domain])
    assert "platform.example" not in json.dumps([past.domain, present.domain])


DOCS = Path(__file__).resolve().parents[2] / "docs" / "case-bundles.md"


def _offline_check_block() -> str:
    """The shell block docs/case-bundles.md gives a third party, as it stands."""
    text = DOCS.read_text()
    after = text.split("<!-- offline-check", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


async def test_the_documented_offline_check_verifies_a_bundle_with_python_and_openssl_only(
    own_nc: NATS, keys_dir: Path, tmp_path: Path
) -> None:
    case, _ = await _case(own_nc, keys_dir)
    document = await _auditor(own_nc, keys_dir).bundle(case, AUDITOR)
    audit_key = _keys(keys_dir)["audit"][-1]
    script = _offline_check_block()

    def run(doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        (tmp_path / "case.json").write_text(json.dumps(doc, indent=1))
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], "AUDIT_KEY": audit_key},
            capture_output=True,
            text=True,
            check=False,
        )

    good = run(document)
    assert good.returncode == 0, good.stderr
    assert "Signature Verified Successfully" in good.stdout
    changed = json.loads(json.dumps(document))
    changed["bundle"]["history"][0]["occurred_at"] = "2026-01-01T00:00:00.000000Z"
    bad = run(changed)
    assert bad.returncode != 0 and "Signature Verification Failure" in bad.stdout + bad.stderr

    # section 3: each event's hash and link, recomputed with the standard library alone
    last: dict[tuple[str, str, str], str] = {}
    for entry in document["bundle"]["envelopes"]:
        body = {k: v for k, v in entry.items() if k not in ("seq", "hash", "signature")}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(encoded.encode()).hexdigest() == entry["hash"]
        link = (entry["case_id"], entry["aggregate"], entry["aggregate_id"])
        assert entry["prev_hash"] == last.get(link, "0" * 64)
        last[link] = entry["hash"]
