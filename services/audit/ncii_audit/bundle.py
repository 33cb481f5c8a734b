"""A case bundle for the police or a court: one JSON file that a third party verifies offline.

``bundle``: the case's history (personal fields withheld), every event's stored envelope
(personal fields as the log stores them: encrypted), so each hash, link and service signature
can be recomputed, the evidence hashes' events named, and the public keys of the signers. The
``signature`` beside it is the ``audit`` signer's Ed25519 signature over the canonical encoding
of ``bundle`` (decision 38). ``verify_bundle`` needs nothing but the file and the audit key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from ncii_events.audit import ChainVerifier, SignaturePolicy
from ncii_events.envelope import Envelope, canonical_json, utc_now
from ncii_events.signing import PublicKeys, SigningKey, key_id, signed_message
from ncii_events.store import RecordedEvent

FORMAT = "ncii-case-bundle-v1"
BUNDLE_DOMAIN = "ncii-case-bundle-v1"
"""Signed as ``signing.signed_message(BUNDLE_DOMAIN, sha256 of the bundle's canonical JSON)``:
no stream has this name, so a bundle signature is never an event's, nor the reverse."""
EVIDENCE_TYPES = (
    "HashesSubmitted",
    "HashesBanked",
    "MatchFound",
    "SightingsCounted",
    "EvidencePreserved",
)


def bundle_body(
    history_json: dict[str, Any],
    events: Sequence[RecordedEvent],
    stream: str,
    public_keys: Mapping[str, list[str]],
    allowed: Mapping[str, frozenset[str]],
) -> dict[str, Any]:
    signers = sorted({e.envelope.signer for e in events if e.envelope.signer})
    return {
        "format": FORMAT,
        "created_at": utc_now(),
        "stream": stream,
        "case_id": history_json["summary"]["case_id"],
        "summary": history_json["summary"],
        "history": history_json["events"],
        "evidence": [
            {
                "position": e["position"],
                "type": e["type"],
                "event_id": e["event_id"],
                "hash": e["hash"],
                # the evidence capture's own SHA-256 (not personal); content hashes are
                "capture_sha256": e["payload"].get("capture_sha256"),
            }
            for e in history_json["events"]
            if e["type"] in EVIDENCE_TYPES
        ],
        "envelopes": [{"seq": e.seq, **e.envelope.to_dict()} for e in events],
        "public_keys": {s: list(public_keys.get(s, [])) for s in signers},
        "allowed_signers": {
            t: sorted(allowed.get(t, frozenset())) for t in sorted({e.type for e in events})
        },
    }


def digest_of(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()


def sign_bundle(body: dict[str, Any], signing: SigningKey) -> dict[str, Any]:
    return {
        "bundle": body,
        "signature": {
            "signer": signing.signer,
            "key_id": signing.key_id,
            "algorithm": "Ed25519",
            "signed": "'ncii-event-signature-v1\\n' + 'ncii-case-bundle-v1\\n' + "
            "SHA-256 hex of the canonical JSON of bundle",
            "value": signing.sign(BUNDLE_DOMAIN, digest_of(body)),
        },
    }


def verify_bundle(document: Mapping[str, Any], audit_public_key: str) -> list[str]:
    """Problems found (empty: the bundle is the audit signer's and its chain holds): the
    bundle's signature with ``audit_public_key`` (base64), then every envelope's hash, link
    and signature with the public keys the bundle lists."""
    try:
        body = document["bundle"]
        signature = document["signature"]
        raw_key = base64.b64decode(audit_public_key, validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw_key)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return [f"not a case bundle, or not a public key: {exc}"]
    problems: list[str] = []
    if signature.get("key_id") != key_id(public):
        problems.append("the bundle is signed with another key than the one given")
    try:
        public.verify(
            base64.b64decode(signature.get("value", ""), validate=True),
            signed_message(BUNDLE_DOMAIN, digest_of(body)),
        )
    except (InvalidSignature, ValueError, binascii.Error):
        problems.append("the bundle's signature does not verify: altered, or another signer's")
        return problems
    try:
        keys = PublicKeys(body.get("public_keys", {}))
        allowed = {t: frozenset(s) for t, s in body["allowed_signers"].items()}
        verifier = ChainVerifier(SignaturePolicy(body["stream"], keys, allowed))
        verifier.feed_envelopes(
            (e["seq"], Envelope.from_dict({k: v for k, v in e.items() if k != "seq"}))
            for e in body["envelopes"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        return [*problems, f"the bundle's envelopes are not readable: {exc}"]
    if verifier.first_break is not None:
        problems.append(f"chain: {verifier.first_break}")
    listed = {e["event_id"] for e in body["envelopes"]}
    missing = [h["event_id"] for h in body.get("history", []) if h["event_id"] not in listed]
    if missing:
        problems.append(f"history names events the bundle has no envelope of: {missing[:3]}")
    return problems


def render_html(document: Mapping[str, Any]) -> str:
    """A printable page of the bundle (the JSON stays what is verified)."""
    body = document["bundle"]
    esc = html.escape
    rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{esc(str(v))}</td>"
            for v in (
                e["position"],
                e["occurred_at"],
                e["type"],
                f"{e['actor']['role']} {e['actor']['principal']} ({e['actor']['organisation']})",
                e["signer"],
                e["check"],
                e["hash"][:16],
            )
        )
        + "</tr>"
        for e in body["history"]
    )
    evidence = "\n".join(
        f"<li>{esc(e['type'])} (event {e['position']}): event hash <code>{esc(e['hash'])}</code>"
        + (
            f", capture SHA-256 <code>{esc(e['capture_sha256'])}</code>"
            if e.get("capture_sha256")
            else ""
        )
        + "</li>"
        for e in body["evidence"]
    )
    sig = document["signature"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Case bundle {esc(body["case_id"])}</title>
<style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:2px 6px;font-size:12px}}</style></head><body>
<h1>Case bundle</h1>
<p>Case <code>{esc(body["case_id"])}</code>, made {esc(body["created_at"])}.
{body["summary"]["events"]} events, {body["summary"]["verified"]} verified,
first break: {esc(str(body["summary"]["first_break"]))}.</p>
<p>Signed by <code>{esc(sig["signer"])}</code> key <code>{esc(sig["key_id"])}</code>.
Verify the JSON file offline: <code>ncii audit verify-bundle FILE.json --public-key KEY</code>.</p>
<h2>Evidence</h2><ul>{evidence}</ul>
<h2>History</h2>
<table><tr><th>#</th><th>when</th><th>event</th><th>who</th><th>signer</th><th>check</th>
<th>hash</th></tr>
{rows}
</table></body></html>
"""
