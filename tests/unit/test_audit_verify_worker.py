"""``ncii audit verify``'s worker (decision 51) reads a signed envelope as the parsed document,
without an ``Envelope``: its verdicts must be ``ChainVerifier``'s for every kind of damage, and
the lean path must be the one a well-formed signed event takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from ncii_audit import verify_worker
from ncii_audit.verify import OrderedChecks
from ncii_audit.verify_worker import check_batch
from ncii_contracts.intake import HashesSubmitted, SubmittedHash
from ncii_events import codec
from ncii_events.audit import ChainReport, ChainVerifier, SignaturePolicy
from ncii_events.envelope import GENESIS, Envelope, envelope_hash
from ncii_events.signing import PublicKeys, SigningKey, allowed_signers, public_b64
from ncii_events.store import AggregateRef

from tests.support.factories import CAUSE

INTAKE = SigningKey.generate("intake")
HASHMATCH = SigningKey.generate("hashmatch")
KEYS = {s.signer: [public_b64(s.public_key)] for s in (INTAKE, HASHMATCH)}
ALLOWED = allowed_signers({"intake": [HashesSubmitted], "hashmatch": []})
CASE = "0196a3c2-0000-7000-8000-000000000002"
ACTOR_DOC = {name: getattr(CAUSE.actor, name) for name in codec.ACTOR_FIELDS}


def _event(n: int, prev: str, signing: SigningKey | None = INTAKE) -> codec.Encoded:
    event = HashesSubmitted(
        submission_id=f"s{n}",
        organisation="ngo",
        age_group="adult",
        hashes=[SubmittedHash(algorithm="pdq", value=f"{n:064x}", media="image", quality=90)],
    )
    return codec.encode(
        AggregateRef(CASE, "case", CASE),
        event,
        event.model_dump(mode="json"),
        event_id=f"e{n}",
        prev_hash=prev,
        cause=CAUSE,
        actor_doc=ACTOR_DOC,
        traceparent=None,
        signing=signing,
        stream="NCII",
    )


def _log(middle: Callable[[bytes], bytes] | None = None) -> list[tuple[int, bytes]]:
    """Three signed events of one aggregate; ``middle`` changes the second one's bytes."""
    stored: list[tuple[int, bytes]] = []
    prev = GENESIS
    for n in (1, 2, 3):
        encoded = _event(n, prev)
        data = encoded.data
        if n == 2 and middle is not None:
            data = middle(data)
        stored.append((n, data))
        prev = encoded.envelope.hash
    return stored


def _doc_change(**changes: Any) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        doc = orjson.loads(data)
        for name, value in changes.items():
            if value is _DROP:
                doc.pop(name, None)
            else:
                doc[name] = value
        return orjson.dumps(doc)

    return change


_DROP = object()


def _rehashed(**changes: Any) -> Callable[[bytes], bytes]:
    """Changed and hashed again (a forger without the key): only the signature can tell."""

    def change(data: bytes) -> bytes:
        doc = {**orjson.loads(data), **changes}
        body = {k: v for k, v in doc.items() if k not in ("hash", "signature")}
        doc["hash"] = envelope_hash(body)
        return orjson.dumps(doc)

    return change


def _by_workers(stored: list[tuple[int, bytes]]) -> ChainReport:
    verify_worker._init("NCII", KEYS, {t: sorted(s) for t, s in ALLOWED.items()})
    ordered = OrderedChecks()
    ordered.feed(check_batch(stored))
    return ordered.report()


def _by_chain_verifier(stored: list[tuple[int, bytes]]) -> ChainReport:
    def envelope(data: bytes) -> Envelope | None:
        try:
            return Envelope.from_json(data)
        except Exception:
            return None

    verifier = ChainVerifier(SignaturePolicy("NCII", PublicKeys(KEYS), ALLOWED))
    verifier.feed_envelopes((seq, envelope(data)) for seq, data in stored)
    return verifier.report()


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "payload changed, hash kept": _doc_change(payload={"submission_id": "other"}),
    "payload changed and hashed again": _rehashed(payload={"submission_id": "other"}),
    "hash replaced": _doc_change(hash="f" * 64),
    "signature of another event": lambda data: _doc_change(
        signature=orjson.loads(_event(9, GENESIS).data)["signature"]
    )(data),
    "signature not base64": _doc_change(signature="not base64!"),
    "signature too short": _doc_change(signature="AAAA"),
    "signature not a string": _doc_change(signature=12345),
    "unknown key id": _rehashed(key_id="0" * 16),
    "unknown signer": _rehashed(signer="nobody"),
    "a signer that may not write the type": _rehashed(signer="hashmatch"),
    "signer left out": _doc_change(signer=_DROP),
    "signer null": _doc_change(signer=None),
    "unsigned after signing began": _rehashed(signer=None, key_id=None, signature=None),
    "a field the envelope does not have": _doc_change(extra="x"),
    "a field missing": _doc_change(causation_id=_DROP),
    "actor with a field more": _doc_change(
        actor={"organisation": "o", "principal": "p", "role": "r", "x": "y"}
    ),
    "actor not an object": _doc_change(actor="someone"),
    "link to another hash": _rehashed(prev_hash="e" * 64),
    "case id not a string": _doc_change(case_id=[1]),
    "case id not a string, hashed again": _rehashed(case_id=[1]),
    "aggregate id a number, not a string, hashed again": _rehashed(aggregate_id=7),
    "key id not a string, hashed again": _rehashed(key_id=[1]),
    "type not a string, hashed again": _rehashed(type=7),
    "event id null": _doc_change(event_id=None),
    "payload not an object, hashed again": _rehashed(payload=[1]),
    "not JSON": lambda data: data[:40],
    "JSON, not an object": lambda data: b"[1, 2, 3]",
    "white space added, content the same": lambda data: orjson.dumps(
        orjson.loads(data), option=orjson.OPT_INDENT_2
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_the_workers_verdict_on_a_damaged_event_is_the_chain_verifiers(damage: str) -> None:
    stored = _log(DAMAGE[damage])
    assert _by_workers(stored) == _by_chain_verifier(stored)


@pytest.mark.parametrize(
    "damage",
    sorted(
        d
        for d in DAMAGE
        if "not a string" in d or "not an object, hashed" in d or d == "event id null"
    ),
)
def test_a_field_of_the_wrong_type_is_named_unreadable_not_a_crash(damage: str) -> None:
    for report in (_by_workers(_log(DAMAGE[damage])), _by_chain_verifier(_log(DAMAGE[damage]))):
        assert report.first_break is not None
        assert report.first_break.seq == 2
        assert "unreadable" in report.first_break.reason


def test_a_log_without_damage_verifies_on_the_lean_path_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def envelope_path(seq: int, data: bytes) -> Any:
        raise AssertionError(f"event {seq} left the lean path")

    monkeypatch.setattr(verify_worker, "check_envelope", envelope_path)
    report = _by_workers(_log())
    assert (report.checked, report.verified, report.bad) == (3, 3, 0)
    assert report == _by_chain_verifier(_log())
