"""An event as the log stores it: canonical bytes and hash chain on the way in, decryption and
upcasting on the way out. No I/O: the store fetches case keys and talks to NATS."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any

from ncii_contracts.base import DomainEvent
from opentelemetry import trace

from ncii_events import tracing
from ncii_events.crypto import NO_KEY, decrypt_field
from ncii_events.envelope import Actor, Envelope, canonical_event_json, utc_now
from ncii_events.model import NO_FIELDS, AggregateRef, Cause, RecordedEvent
from ncii_events.registry import EventRegistry
from ncii_events.signing import SigningKey

ACTOR_FIELDS = tuple(f.name for f in fields(Actor))
_HASH_BEFORE = b',"occurred_at":'
_KEY_ID_BEFORE = b',"key_id":'
_SIGNATURE_BEFORE = b',"signer":'


@dataclass(frozen=True, slots=True)
class Encoded:
    """An envelope and its canonical bytes, as published."""

    envelope: Envelope
    data: bytes


def with_hash(
    unhashed: bytes, body: dict[str, Any], digest: str, signature: str | None = None
) -> bytes:
    """The canonical encoding of ``body`` plus ``hash`` (and ``signature``), from the encoding
    without them.

    Keys are sorted, so ``"hash"`` goes right before ``"key_id"`` (a signed event) or
    ``"occurred_at"``. Every top-level value before that key is a string or the actor's flat
    object of strings, in which a quote is always escaped: the first ``,"key_id":`` is the
    top-level key. ``"signature"`` goes right before ``"signer"``: only strings (``traceparent``,
    ``type``) follow that key, so its last occurrence is the top-level one. Same bytes as
    ``canonical_event_json({**body, "hash": digest, ...})``, without encoding the envelope again.
    """
    at = unhashed.find(_KEY_ID_BEFORE if "key_id" in body else _HASH_BEFORE)
    digest_field = (b',"hash":"', digest.encode(), b'"')
    if signature is None:
        if at < 0:  # not the envelope shape this relies on: encode it again
            return canonical_event_json({**body, "hash": digest})
        return b"".join((unhashed[:at], *digest_field, unhashed[at:]))
    signer_at = unhashed.rfind(_SIGNATURE_BEFORE)
    if at < 0 or signer_at < at:
        return canonical_event_json({**body, "hash": digest, "signature": signature})
    return b"".join(
        (
            unhashed[:at],
            *digest_field,
            unhashed[at:signer_at],
            b',"signature":"',
            signature.encode(),
            b'"',
            unhashed[signer_at:],
        )
    )


def encode(
    ref: AggregateRef,
    event: DomainEvent,
    payload: dict[str, Any],
    *,
    event_id: str,
    prev_hash: str,
    cause: Cause,
    actor_doc: dict[str, str],
    traceparent: str | None,
    signing: SigningKey | None,
    stream: str,
) -> Encoded:
    """One event's envelope and bytes; ``payload`` is the event's JSON form, personal fields
    already encrypted. With ``signing``, the hash covers the signer and key id, and the
    signature (of the hash, on ``stream``) is added beside it."""
    occurred_at = utc_now()
    body: dict[str, Any] = {
        "event_id": event_id,
        "type": event.event_type,
        "schema_version": event.version,
        "case_id": ref.case_id,
        "aggregate": ref.aggregate,
        "aggregate_id": ref.aggregate_id,
        "occurred_at": occurred_at,
        "actor": actor_doc,
        "correlation_id": cause.correlation_id,
        "causation_id": cause.causation_id,
        "traceparent": traceparent,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    signature: str | None = None
    if signing is not None:
        body["signer"] = signing.signer
        body["key_id"] = signing.key_id
    unhashed = canonical_event_json(body)
    digest = hashlib.sha256(unhashed).hexdigest()  # = envelope_hash(body)
    if signing is not None:
        signature = signing.sign(stream, digest)
    envelope = Envelope(
        event_id=event_id,
        type=event.event_type,
        schema_version=event.version,
        case_id=ref.case_id,
        aggregate=ref.aggregate,
        aggregate_id=ref.aggregate_id,
        occurred_at=occurred_at,
        actor=cause.actor,
        correlation_id=cause.correlation_id,
        causation_id=cause.causation_id,
        traceparent=traceparent,
        payload=payload,
        prev_hash=prev_hash,
        hash=digest,
        signer=None if signing is None else signing.signer,
        key_id=None if signing is None else signing.key_id,
        signature=signature,
    )
    return Encoded(envelope, with_hash(unhashed, body, digest, signature))


def decode(
    registry: EventRegistry,
    seq: int,
    env: Envelope,
    *,
    decrypt: bool,
    keys: dict[str, bytes | None] | None,
) -> RecordedEvent | None:
    """The event, or ``None`` when it needs a case key that is not in ``keys`` yet.

    ``keys`` maps case ids to their key (``None``: destroyed); ``keys=None`` means the reader has
    no case keys at all, so personal fields stay withheld.
    """
    if not registry.is_known(env.type):
        return RecordedEvent(seq=seq, envelope=env, event=None)
    payload = env.payload
    erased = withheld = NO_FIELDS
    personal = registry.personal_fields(env.type)
    # Personal values an older version stored in clear: hidden only after upcasting, since an
    # upcaster may derive a field from them (a count, say).
    hidden: list[str] = []
    if personal:
        payload = dict(payload)  # the envelope keeps what was stored
        clear_before = registry.clear_before(env.type)
        erased_names: set[str] = set()
        withheld_names: set[str] = set()
        for name in personal:
            token = payload.get(name)
            if token is None:
                continue
            in_clear = env.schema_version < clear_before.get(name, 0)
            if in_clear:
                hidden.append(name)
            else:
                payload[name] = None
            if not decrypt or keys is None:
                withheld_names.add(name)
                continue
            if env.case_id not in keys:
                return None
            key = keys[env.case_id]
            if in_clear and key is not None:
                hidden.remove(name)  # readable until the key is destroyed, as it always was
            elif key is None or key == NO_KEY:
                erased_names.add(name)  # destroyed (or, with no key, never readable)
            else:
                payload[name] = decrypt_field(key, env.case_id, env.event_id, name, token)
        if erased_names:
            erased = frozenset(erased_names)
        if withheld_names:
            withheld = frozenset(withheld_names)
    payload = registry.upcast(env.type, env.schema_version, payload)
    if hidden:
        payload = {**payload, **dict.fromkeys(hidden)}
    event = registry.event_class(env.type).model_validate(payload)
    return RecordedEvent(
        seq=seq, envelope=env, event=event, erased_fields=erased, withheld_fields=withheld
    )


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, as the propagator writes it (without the
    propagator's machinery: baggage is not stored in events)."""
    ctx = trace.get_current_span().get_span_context()
    return tracing.format_traceparent(ctx) if ctx.is_valid else None


def actual_seq(description: str | None) -> int | None:
    """The aggregate's last sequence from the server's wrong-last-sequence error text."""
    if description and ":" in description:
        tail = description.rsplit(":", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    return None
