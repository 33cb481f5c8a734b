"""What ``ncii audit verify``'s worker processes run (decision 51): a module of its own so that
a spawned worker imports only this, the envelope and the signing keys (a tenth of the start-up
of ``ncii_audit.verify``, which brings the store and NATS).

A worker reads a signed envelope as the parsed document itself: no ``Envelope`` object, the
hash recomputed from the document without ``hash`` and ``signature`` (the fields
``Envelope.computed_hash`` encodes, when every envelope field is there and the signature
fields are strings), and plain tuples back to the reading process (cheap to pickle). Anything
else (unsigned, a field missing or extra, values of other types, bytes that do not parse)
takes the ``Envelope`` path, whose verdicts are ``ChainVerifier``'s by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, NamedTuple

import orjson
from ncii_events.envelope import Envelope
from ncii_events.signing import PublicKeys

_UNSIGNED = "\0unsigned"
_INCOMPLETE = "signature incomplete: signer, key_id and signature go together"
_SIGNED_FIELDS = frozenset(f.name for f in fields(Envelope))
_ACTOR_FIELDS = frozenset(("organisation", "principal", "role"))
_SORTED = orjson.OPT_SORT_KEYS

_keys: PublicKeys | None = None
_allowed: Mapping[str, frozenset[str]] = {}
_stream = ""


class Checked(NamedTuple):
    """What a worker found in one stored message (workers send it as a plain tuple)."""

    seq: int
    event_id: str
    type: str
    link: tuple[str, str, str] | None
    """(case, aggregate, aggregate id); ``None``: not an envelope at all."""
    hash: str
    prev_hash: str
    content_ok: bool
    verdict: str | None
    """``None``: signed and valid; ``_UNSIGNED``; else why the signature is bad."""


Row = tuple[int, str, str, "tuple[str, str, str] | None", str, str, bool, "str | None"]
"""``Checked`` as a plain tuple, as it crosses from a worker (pickled in a fifth the time)."""


def _init(stream: str, keys: Mapping[str, list[str]], allowed: Mapping[str, list[str]]) -> None:
    global _keys, _allowed, _stream
    _keys = PublicKeys(keys)
    _allowed = {t: frozenset(s) for t, s in allowed.items()}
    _stream = stream


def _signer_verdict(
    signer: str, kid: str, digest: str, signature: str, event_type: Any
) -> str | None:
    assert _keys is not None
    verdict = _keys.check(_stream, signer, kid, digest, signature)
    if verdict is None:
        allowed = _allowed.get(event_type)
        if allowed is None:
            verdict = f"no signer may write {event_type}: no service emits it"
        elif signer not in allowed:
            only = ", ".join(sorted(allowed))
            verdict = f"wrong signer: {signer} may not write {event_type} (only {only})"
    return verdict


def check_one(seq: int, data: bytes) -> Row:
    """One stored message: the lean path for a well-formed signed envelope, else
    ``check_envelope``."""
    try:
        doc = orjson.loads(data)
        actor = doc["actor"]
        digest = doc["hash"]
        signer = doc["signer"]
        kid = doc["key_id"]
        signature = doc["signature"]
        lean = (
            doc.keys() == _SIGNED_FIELDS
            and type(actor) is dict
            and actor.keys() == _ACTOR_FIELDS
            and type(digest) is str
            and type(signer) is str
            and type(kid) is str
            and type(signature) is str
            and type(doc["event_id"]) is str
            and type(doc["type"]) is str
            and type(doc["prev_hash"]) is str
            and type(doc["case_id"]) is str
            and type(doc["aggregate"]) is str
            and type(doc["aggregate_id"]) is str
            and type(doc["payload"]) is dict
            and type(doc["schema_version"]) is int
        )
    except Exception:  # not even a document with those fields: the Envelope path names it
        lean = False
    if not lean:
        return check_envelope(seq, data)
    del doc["hash"], doc["signature"]
    try:
        content_ok = hashlib.sha256(orjson.dumps(doc, option=_SORTED)).hexdigest() == digest
        link = (doc["case_id"], doc["aggregate"], doc["aggregate_id"])
        hash(link)  # a link that is not three strings cannot key the aggregate's chain
    except Exception:
        return check_envelope(seq, data)
    event_type = doc["type"]
    verdict = _signer_verdict(signer, kid, digest, signature, event_type)
    return (seq, doc["event_id"], event_type, link, digest, doc["prev_hash"], content_ok, verdict)


def check_envelope(seq: int, data: bytes) -> Row:
    """One stored message through ``Envelope``: unsigned, incomplete, odd or unreadable."""
    try:
        env = Envelope.from_json(data)
    except Exception:  # whatever the bytes are, the auditor is told where they are
        return (seq, "?", "", None, "", "", False, "unreadable: not an event envelope")
    mistyped = env.mistyped_field()
    if mistyped is not None:  # tampered bytes of the right shape: named, not a crash
        return (seq, "?", "", None, "", "", False, f"unreadable: {mistyped} is not of its type")
    link = (env.case_id, env.aggregate, env.aggregate_id)
    content_ok = env.computed_hash() == env.hash
    verdict: str | None
    if env.signature is None and env.signer is None and env.key_id is None:
        verdict = _UNSIGNED
    elif env.signature is None or env.signer is None or env.key_id is None:
        verdict = _INCOMPLETE
    else:
        verdict = _signer_verdict(env.signer, env.key_id, env.hash, env.signature, env.type)
    return (seq, env.event_id, env.type, link, env.hash, env.prev_hash, content_ok, verdict)


def check_batch(batch: Sequence[tuple[int, bytes]]) -> list[Row]:
    return [check_one(seq, data) for seq, data in batch]
