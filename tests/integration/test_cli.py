"""The `ncii` command line against the run's NATS server."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

from click.testing import Result
from nats.aio.client import Client as NATS
from ncii_cli.main import app
from ncii_cli.services import all_services
from ncii_contracts.intake import HashesSubmitted, SubmittedHash
from ncii_events.auth import PRINCIPALS_METADATA
from ncii_events.db import make_engine, migrate, migrate_runtime
from ncii_events.keys import NatsCaseKeys
from ncii_events.projection.dead_letters import DEAD_LETTERS
from ncii_events.signing import OPERATOR, PUBLIC_KEYS_FILE, provision
from ncii_events.store import NEW, AggregateRef, EventStore
from ncii_events.stream import REFERENCE
from ncii_hashmatch.main import SPEC as HASHMATCH
from ncii_hashmatch.read_models import schema
from typer.testing import CliRunner

from tests.conftest import TEST_SIGNER, SuiteNats, signing_key
from tests.support.events import REGISTRY, NoteAdded
from tests.support.factories import CAUSE, new_case, note_ref


def _env(nats_server: SuiteNats, tmp_path: Path) -> dict[str, str]:
    """The operator's var/ in tmp_path: its signing key in var/keys, as `ncii run` makes it."""
    provision(tmp_path / "keys", [OPERATOR])
    return {"NCII_NATS_URL": nats_server.url, "NCII_VAR_DIR": str(tmp_path)}


def test_log_stats_reports_both_streams_append_only(
    nats_server: SuiteNats, tmp_path: object
) -> None:
    result = CliRunner().invoke(app, ["log", "stats", "--json"], env=_env(nats_server, tmp_path))
    assert result.exit_code == 0, result.output
    assert '"stream": "NCII"' in result.output and '"stream": "NCII_REF"' in result.output
    assert '"deny_delete": true' in result.output


async def test_log_verify_checks_every_chain_and_signature_of_a_case(
    nats_server: SuiteNats, nc: NATS, case_keys: NatsCaseKeys, keys_dir: Path, tmp_path: Path
) -> None:
    intake = EventStore(nc, case_keys, registry=REGISTRY, signing=signing_key(keys_dir, "intake"))
    case = new_case()
    ref = AggregateRef(case, "case", case)
    await intake.append(ref, [_hashes(), _hashes()], expected=NEW, cause=CAUSE)
    public = str(keys_dir / PUBLIC_KEYS_FILE)
    args = ["log", "verify", "--case", case, "--public-keys", public]
    result = await _cli(_env(nats_server, tmp_path), *args)
    assert result.exit_code == 0, result.output
    assert "NCII: 2 events in 1 aggregates: 2 verified, 0 unsigned" in result.output
    assert "NCII_REF" not in result.output  # one case: the reference stream is not read
    # the tests' own signer writes no service's events: a case of them does not verify
    test_case = new_case()
    await _store_of_the_tests(nc, keys_dir).append(
        note_ref(test_case), [NoteAdded(text="a")], expected=NEW, cause=CAUSE
    )
    args = ["log", "verify", "--case", test_case, "--public-keys", public]
    result = await _cli(_env(nats_server, tmp_path), *args)
    assert result.exit_code == 1
    assert "no signer may write TestNoteAdded: no service emits it" in result.output


async def test_log_verify_without_public_keys_is_a_usage_error_saying_where_they_come_from(
    nats_server: SuiteNats, tmp_path: Path
) -> None:
    env = {"NCII_NATS_URL": nats_server.url, "NCII_VAR_DIR": str(tmp_path)}
    result = await _cli(env, "log", "verify")
    assert result.exit_code == 2
    assert "no public keys" in result.output and "NCII_SIGNING_PUBLIC_KEYS" in result.output


def test_signing_keys_create_makes_every_signers_key_once_and_prints_the_public_keys(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "keys"
    first = CliRunner().invoke(app, ["signing-keys", "create", "--dir", str(folder)])
    assert first.exit_code == 0, first.output
    signers = [*all_services(), OPERATOR]
    assert "created the signing keys of " + ", ".join(signers) in " ".join(first.output.split())
    for signer in signers:
        assert (folder / f"{signer}.ed25519").stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    public = json.loads(first.stdout.strip().splitlines()[-1])
    assert sorted(public) == sorted(signers)
    again = CliRunner().invoke(app, ["signing-keys", "create", "--dir", str(folder)])
    assert again.exit_code == 0 and "every signer already has its key" in again.output
    assert json.loads(again.stdout.strip().splitlines()[-1]) == public


def test_keys_create_without_the_operators_signing_key_fails_saying_what_to_do(
    nats_server: SuiteNats, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["keys", "create", "--org", "x", "--role", "partner"],
        env={"NCII_NATS_URL": nats_server.url, "NCII_VAR_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1
    assert "no signing key for operator" in result.output
    assert "ncii signing-keys create" in " ".join(result.output.split())


def test_keys_are_shown_once_listed_by_hint_and_revoked(
    nats_server: SuiteNats, tmp_path: Path
) -> None:
    env = _env(nats_server, tmp_path)
    runner = CliRunner()
    created = runner.invoke(
        app, ["keys", "create", "--org", "cli-test-org", "--role", "auditor"], env=env
    )
    assert created.exit_code == 0, created.output
    key = re.search(r"ncii_live_\S+", created.output)
    principal = re.search(r"principal (\S+)", created.output)
    assert key and principal
    listed = runner.invoke(app, ["keys", "list"], env=env)
    assert "cli-test-org" in listed.output and key.group(0) not in listed.output
    assert runner.invoke(app, ["keys", "revoke", principal.group(1)], env=env).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", "no-such"], env=env).exit_code == 1


def test_a_bad_role_is_a_usage_error(nats_server: SuiteNats, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["keys", "create", "--org", "x", "--role", "superuser"],
        env=_env(nats_server, tmp_path),
    )
    assert result.exit_code == 2


async def _cli(env: dict[str, str], *args: str) -> Result:
    # the command runs its own event loop, as it does from a shell
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def _hashes(value: str | None = None) -> HashesSubmitted:
    return HashesSubmitted(
        submission_id=str(uuid.uuid4()),
        organisation="ngo-cli",
        age_group="adult",
        hashes=[
            SubmittedHash(
                algorithm="pdq", value=value or uuid.uuid4().hex * 2, media="image", quality=90
            )
        ],
    )


def _store_of_the_tests(nc: NATS, keys_dir: Path) -> EventStore:
    return EventStore(nc, None, registry=REGISTRY, signing=signing_key(keys_dir, TEST_SIGNER))


async def _submitted_hash(store: EventStore) -> tuple[int, str]:
    """A case's hash submission in the log: its sequence and the PDQ value."""
    case = new_case()
    value = uuid.uuid4().hex * 2
    written = await store.append(
        AggregateRef(case, "case", case), [_hashes(value)], expected=NEW, cause=CAUSE
    )
    return written[-1].seq, value


async def _scalar(db: Path, sql: str, *params: object) -> object:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            return (await conn.exec_driver_sql(sql, tuple(params))).scalar()
    finally:
        await engine.dispose()


async def test_projections_rebuild_replays_every_projection_of_hashmatch_principals_included(
    nats_server: SuiteNats, store: EventStore, tmp_path: Path, master_key_file: Path
) -> None:
    # the bank decrypts submitted hashes (decision 26): the CLI runs with the services' key
    env = {**_env(nats_server, tmp_path), "NCII_MASTER_KEY_FILE": str(master_key_file)}
    created = await _cli(env, "keys", "create", "--org", "cli-rebuild-org", "--role", "auditor")
    assert created.exit_code == 0, created.output
    _seq, value = await _submitted_hash(store)
    result = await _cli(env, "projections", "rebuild", "--service", "hashmatch")
    assert result.exit_code == 0, result.output
    for name in ("principals", "bank", "bank_reference"):
        assert f"{name}: " in result.output
    db = tmp_path / "hashmatch.db"
    org = "SELECT count(*) FROM principals WHERE organisation = ?"
    assert await _scalar(db, org, "cli-rebuild-org") == 1
    assert await _scalar(db, "SELECT count(*) FROM hm_entries WHERE value = ?", value) == 1


async def test_dead_letters_of_every_projection_are_listed_and_retried(
    nats_server: SuiteNats, nc: NATS, store: EventStore, tmp_path: Path, master_key_file: Path
) -> None:
    """Principals' and hashmatch's bank projections included (their events are in two
    streams)."""
    env = {**_env(nats_server, tmp_path), "NCII_MASTER_KEY_FILE": str(master_key_file)}
    created = await _cli(env, "keys", "create", "--org", "cli-dead-org", "--role", "auditor")
    assert created.exit_code == 0, created.output
    ref_store = EventStore(nc, None, registry=REGISTRY, spec=REFERENCE)
    principal_seq = await ref_store.last_sequence()
    hash_seq, value = await _submitted_hash(store)
    db = tmp_path / "hashmatch.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await migrate_runtime(engine)
        await migrate(engine, HASHMATCH.migrations or Path(), "alembic_version_hashmatch")
        async with engine.begin() as conn:
            for projection, seq in (("principals", principal_seq), ("bank", hash_seq)):
                await conn.execute(
                    DEAD_LETTERS.insert().values(
                        projection=projection,
                        stream_seq=seq,
                        error_type="ValueError",
                        error_where="test",
                        attempts=5,
                        status="open",
                        failed_at="2026-11-29T00:00:00Z",
                    )
                )
            for projection in PRINCIPALS_METADATA, schema.METADATA:
                await conn.run_sync(projection.create_all)
    finally:
        await engine.dispose()

    listed = await _cli(env, "deadletters", "list", "--service", "hashmatch")
    assert listed.exit_code == 0, listed.output
    assert "principals" in listed.output and "bank" in listed.output
    for letter in (1, 2):
        retried = await _cli(env, "deadletters", "retry", str(letter), "--service", "hashmatch")
        assert retried.exit_code == 0, retried.output
    org = "SELECT count(*) FROM principals WHERE organisation = ?"
    assert await _scalar(db, org, "cli-dead-org") == 1
    assert await _scalar(db, "SELECT count(*) FROM hm_entries WHERE value = ?", value) == 1
    after = await _cli(env, "deadletters", "list", "--service", "hashmatch")
    assert "principals" not in after.output and "ValueError" not in after.output
