"""Signed events (decision 23): the signed envelope's encoding, the verifier's rules, and the
key files. No I/O beyond a temporary folder; the log itself is in
tests/integration/test_signed_events.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from ncii_contracts.intake import HashesSubmitted, SubmittedHash
from ncii_contracts.principals import PrincipalCreated
from ncii_events import codec
from ncii_events.audit import ChainVerifier, SignaturePolicy
from ncii_events.envelope import GENESIS, Envelope, canonical_event_json, envelope_hash
from ncii_events.settings import Settings
from ncii_events.signing import (
    OPERATOR,
    PUBLIC_KEYS_FILE,
    PublicKeys,
    SigningKey,
    SigningKeyError,
    allowed_signers,
    key_path,
    load_signing_key,
    own_signing_key,
    provision,
    public_b64,
)
from ncii_events.store import AggregateRef, RecordedEvent

from tests.support.factories import CAUSE

INTAKE = SigningKey.generate("intake")
HASHMATCH = SigningKey.generate("hashmatch")
KEYS = PublicKeys({s.signer: public_b64(s.public_key) for s in (INTAKE, HASHMATCH)})
POLICY = SignaturePolicy(
    "NCII", KEYS, allowed_signers({"intake": [HashesSubmitted], "hashmatch": []})
)
CASE = "0196a3c2-0000-7000-8000-000000000001"
REF = AggregateRef(CASE, "case", CASE)
ACTOR_DOC = {name: getattr(CAUSE.actor, name) for name in codec.ACTOR_FIELDS}


def _submitted(value: str = "ab" * 32, **payload: Any) -> HashesSubmitted:
    hashes = [SubmittedHash(algorithm="pdq", value=value, media="image", quality=90)]
    return HashesSubmitted(
        submission_id="s1", organisation="ngo", age_group="adult", hashes=hashes, **payload
    )


def _signed(
    prev: str, signing: SigningKey | None = INTAKE, n: int = 0, stream: str = "NCII"
) -> codec.Encoded:
    event = _submitted(f"{n:064x}")
    return codec.encode(
        REF,
        event,
        event.model_dump(mode="json"),
        event_id=f"e{n}",
        prev_hash=prev,
        cause=CAUSE,
        actor_doc=ACTOR_DOC,
        traceparent=None,
        signing=signing,
        stream=stream,
    )


def _chain(*signings: SigningKey | None) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    prev = GENESIS
    for n, signing in enumerate(signings, start=1):
        enc = _signed(prev, signing, n)
        out.append(RecordedEvent(seq=n, envelope=Envelope.from_json(enc.data), event=None))
        prev = enc.envelope.hash
    return out


def _replaced(recorded: RecordedEvent, *, rehash: bool, **changes: Any) -> RecordedEvent:
    doc = {**recorded.envelope.to_dict(), **changes}
    if rehash:
        body = {k: v for k, v in doc.items() if k not in ("hash", "signature")}
        doc["hash"] = envelope_hash(body)
    return RecordedEvent(seq=recorded.seq, envelope=Envelope.from_dict(doc), event=None)


def _verify(events: list[RecordedEvent]) -> ChainVerifier:
    verifier = ChainVerifier(POLICY)
    verifier.feed(events)
    return verifier


def test_a_signed_event_is_stored_as_canonical_json_and_its_hash_covers_the_signer() -> None:
    enc = _signed(GENESIS)
    doc = enc.envelope.to_dict()
    assert enc.data == canonical_event_json(doc)
    assert Envelope.from_json(enc.data) == enc.envelope
    assert enc.envelope.signer == "intake" and enc.envelope.key_id == INTAKE.key_id
    assert enc.envelope.verifies()
    for field, value in [("signer", "hashmatch"), ("key_id", HASHMATCH.key_id)]:
        assert not Envelope.from_dict({**doc, field: value}).verifies(), field
    # the signature is made from the hash, so the hash cannot cover it
    assert Envelope.from_dict({**doc, "signature": "x"}).verifies()
    check = KEYS.check("NCII", "intake", INTAKE.key_id, enc.envelope.hash, doc["signature"])
    assert check is None
    # bound to its stream: a copy in the reference stream does not verify there
    assert KEYS.check("NCII_REF", "intake", INTAKE.key_id, enc.envelope.hash, doc["signature"])


def test_the_byte_splicing_holds_when_the_payload_has_fields_named_like_the_envelopes() -> None:
    body = {"a": 1, "hash": "x", "signer": "y", "key_id": "z", "nested": {"signer": "q"}}
    enc = codec.encode(
        REF,
        _submitted(),
        body,
        event_id="e1",
        prev_hash=GENESIS,
        cause=CAUSE,
        actor_doc=ACTOR_DOC,
        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        signing=INTAKE,
        stream="NCII",
    )
    assert enc.data == canonical_event_json(enc.envelope.to_dict())
    assert enc.envelope.verifies()


def test_an_unsigned_event_written_before_signing_still_hashes_as_it_did() -> None:
    enc = _signed(GENESIS, signing=None)
    assert b'"signer"' not in enc.data and b'"signature"' not in enc.data
    legacy = json.loads(enc.data)
    assert legacy["hash"] == envelope_hash({k: v for k, v in legacy.items() if k != "hash"})
    env = Envelope.from_json(enc.data)
    assert env.verifies() and env.to_dict() == legacy


def test_unsigned_events_before_the_first_signed_one_are_counted_after_it_they_are_bad() -> None:
    verifier = _verify(_chain(None, None, INTAKE, INTAKE, None))
    assert (verifier.verified, verifier.unsigned, verifier.bad) == (2, 2, 1)
    assert verifier.first_break is not None and verifier.first_break.seq == 5
    assert verifier.first_break.reason == "unsigned, though events are signed since seq 3"
    assert verifier.first_break.type == "HashesSubmitted"


def test_a_payload_changed_after_signing_is_named_whether_or_not_the_hash_was_redone() -> None:
    events = _chain(INTAKE, INTAKE, INTAKE)
    changed = {"payload": _submitted("cd" * 32).model_dump(mode="json")}
    stale = _verify([events[0], _replaced(events[1], rehash=False, **changed), events[2]])
    assert stale.first_break is not None and stale.first_break.seq == 2
    assert stale.first_break.reason == "content altered: hash does not match"
    assert stale.verified == 2 and stale.bad == 1  # the next event links to what was stored
    redone = _verify([events[0], _replaced(events[1], rehash=True, **changed)])
    assert redone.first_break is not None and redone.first_break.seq == 2
    assert redone.first_break.reason.startswith("signature does not verify with intake's key")


def test_the_wrong_signer_an_unknown_key_and_an_unknown_signer_are_each_named() -> None:
    [by_hashmatch] = _chain(HASHMATCH)
    why = _verify([by_hashmatch]).first_break
    assert why is not None
    assert why.reason == "wrong signer: hashmatch may not write HashesSubmitted (only intake)"

    [event] = _chain(INTAKE)
    other = SigningKey.generate("intake")
    unknown_key = _replaced(event, rehash=True, key_id=other.key_id)
    why = _verify([unknown_key]).first_break
    assert why is not None and why.reason.startswith(f"key '{other.key_id}' is not one of intake's")

    stranger = SigningKey.generate("takedown")
    [by_stranger] = _chain(stranger)
    why = _verify([by_stranger]).first_break
    assert why is not None
    assert why.reason == "signer 'takedown' has no public key in the configuration"


def test_principal_events_may_be_signed_by_the_operator_only() -> None:
    allowed = allowed_signers({"intake": [HashesSubmitted], "hashmatch": []})
    assert allowed[PrincipalCreated.event_type] == {OPERATOR}
    assert allowed[HashesSubmitted.event_type] == {"intake"}


def test_keys_are_created_once_owner_only_with_every_public_key_listed(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    assert provision(folder, ["intake", OPERATOR]) == ["intake", OPERATOR]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for signer in ("intake", OPERATOR):
        assert stat.S_IMODE(key_path(folder, signer).stat().st_mode) == 0o600
    intake = load_signing_key(key_path(folder, "intake"), "intake")
    assert provision(folder, ["intake", OPERATOR, "hashmatch"]) == ["hashmatch"]
    assert load_signing_key(key_path(folder, "intake"), "intake").key_id == intake.key_id
    listed = PublicKeys.from_file(folder / PUBLIC_KEYS_FILE)
    assert listed.signers == ["hashmatch", "intake", OPERATOR] and listed.lists(intake)
    # a rotated key: the old public key stays listed, so the events it signed still verify
    key_path(folder, "intake").unlink()
    provision(folder, ["intake"])
    rotated = json.loads((folder / PUBLIC_KEYS_FILE).read_text())
    assert len(rotated["intake"]) == 2 and public_b64(intake.public_key) in rotated["intake"]


def test_a_missing_or_someone_elses_key_is_refused_with_what_to_do(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    with pytest.raises(SigningKeyError, match="ncii signing-keys create") as missing:
        own_signing_key(settings, "intake")
    assert str(tmp_path / "keys" / "intake.ed25519") in str(missing.value)
    provision(tmp_path / "keys", ["intake", "hashmatch"])
    given = Settings(var_dir=tmp_path, signing_key_file=tmp_path / "keys" / "hashmatch.ed25519")
    with pytest.raises(SigningKeyError, match="holds the signing key of hashmatch, not of intake"):
        own_signing_key(given, "intake")
    assert own_signing_key(settings, "intake").signer == "intake"
    # the public keys in configuration list another key for intake: its events would all fail
    elsewhere = {"intake": public_b64(SigningKey.generate("intake").public_key)}
    with pytest.raises(SigningKeyError, match="do not list intake's signing key"):
        own_signing_key(Settings(var_dir=tmp_path, signing_public_keys=elsewhere), "intake")
