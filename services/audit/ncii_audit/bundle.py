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
import json
import re
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


PDF_NOTE = (
    "This PDF is a printable rendering of a case bundle; it is not signed and proves nothing "
    "by itself. The verifiable artefact is the JSON file it was made from: the audit "
    "service's Ed25519 signature covers that file's bundle, and every event in it carries its "
    "hash, its link to the previous event of its aggregate and its writer's signature. Check "
    "the JSON file offline with: ncii audit verify-bundle FILE.json --public-key KEY (the "
    "audit service's published public key). That file is also attached to this PDF ("
    "ncii audit verify-bundle FILE.pdf verifies the attached one). The bundle digest below "
    "ties this page to that file."
)


def bundle_file_name(document: Mapping[str, Any]) -> str:
    return f"case-bundle-{document['bundle']['case_id']}.json"


def bundle_json(document: Mapping[str, Any]) -> str:
    """The signed bundle as its file holds it (any layout verifies: decision 38)."""
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def _latin(text: object) -> str:
    """The PDF's built-in fonts hold Latin-1 only: anything else is shown as '?' (names, ids
    and hashes are ASCII; the JSON keeps every character)."""
    return str(text).encode("latin-1", "replace").decode("latin-1")


def render_pdf(document: Mapping[str, Any]) -> bytes:
    """A printable PDF of the bundle: summary, how to verify, the bundle's signature and digest,
    the evidence hashes, the history, and the chain proof (every event's hash, previous hash,
    signer and key). The JSON stays what is verified (decision 52)."""
    from fpdf import FPDF

    body = document["bundle"]
    signature = document["signature"]
    summary = body["summary"]
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(_latin(f"Case bundle {body['case_id']}"))
    pdf.set_creator("ncii audit bundle")
    pdf.add_page()

    def heading(text: str) -> None:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(0, 6, _latin(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)

    def line(text: str, *, mono: bool = False) -> None:
        pdf.set_font("Courier" if mono else "Helvetica", "", 7 if mono else 9)
        pdf.multi_cell(0, 3.6 if mono else 4.5, _latin(text), new_x="LMARGIN", new_y="NEXT")

    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, "Case bundle", new_x="LMARGIN", new_y="NEXT")
    line(f"Case {body['case_id']}, stream {body['stream']}, made {body['created_at']}.")
    line(
        f"{summary['events']} events, {summary['verified']} verified, {summary['bad']} bad; "
        f"first break: {summary['first_break'] or 'none'}."
    )
    heading("How to verify")
    line(PDF_NOTE)
    heading("Bundle signature")
    line(f"signer {signature['signer']}, key id {signature['key_id']}, {signature['algorithm']}")
    line(f"bundle digest (SHA-256 of its canonical JSON): {digest_of(body)}", mono=True)
    line(f"signature: {signature['value']}", mono=True)
    for signer, keys in sorted(body["public_keys"].items()):
        for key in keys:
            line(f"public key of {signer}: {key}", mono=True)
    heading(f"Evidence ({len(body['evidence'])})")
    if not body["evidence"]:
        line("No event of this case carries or points to evidence.")
    for item in body["evidence"]:
        line(f"event {item['position']}: {item['type']}, id {item['event_id']}")
        line(f"  event hash      {item['hash']}", mono=True)
        if item.get("capture_sha256"):
            line(f"  capture SHA-256 {item['capture_sha256']}", mono=True)
    heading(f"History ({len(body['history'])} events, log order)")
    for entry in body["history"]:
        actor = entry["actor"]
        line(
            f"{entry['position']}. {entry['occurred_at']}  {entry['type']} "
            f"(v{entry['schema_version']}, {entry['aggregate']})  by {actor['role']} "
            f"{actor['principal']} of {actor['organisation']}; written by {entry['signer']}; "
            f"check: {entry['check']}"
        )
    heading("Chain proof (every event as stored: hash, link, signer)")
    for envelope in body["envelopes"]:
        line(
            f"seq {envelope['seq']}  {envelope['type']}  event {envelope['event_id']}  "
            f"{envelope['aggregate']} {envelope['aggregate_id']}"
        )
        line(f"  prev  {envelope['prev_hash']}", mono=True)
        line(f"  hash  {envelope['hash']}", mono=True)
        signer = envelope.get("signer")
        line(
            f"  signed by {signer} key {envelope.get('key_id')}" if signer else "  unsigned",
            mono=True,
        )
    # the signed JSON rides along as the PDF's attachment (uncompressed: any reader or a byte
    # search gets it out), so the printout and the file it renders are never apart
    pdf.embed_file(
        bytes=bundle_json(document).encode(),
        basename=bundle_file_name(document),
        mime_type="application/json",
        desc="the signed case bundle this PDF renders: verify it with ncii audit verify-bundle",
    )
    return bytes(pdf.output())


_EMBEDDED = re.compile(rb"/Type /EmbeddedFile\b")
_LENGTH = re.compile(rb"/Length (\d+)")


def attached_bundle(pdf: bytes) -> dict[str, Any] | None:
    """The signed bundle attached to a PDF ``render_pdf`` made, or None. Only finds the bytes:
    what they are worth is ``verify_bundle``'s to say."""
    for found in _EMBEDDED.finditer(pdf):
        start = pdf.rfind(b" obj", 0, found.start())  # the object's dictionary opens after it
        head_end = pdf.find(b"stream", found.end())
        length = _LENGTH.search(pdf, start, head_end) if start >= 0 and head_end > 0 else None
        if length is None:
            continue
        body_at = head_end + len(b"stream")
        body_at += 2 if pdf[body_at : body_at + 2] == b"\r\n" else 1
        try:
            doc = json.loads(pdf[body_at : body_at + int(length.group(1))])
        except ValueError:
            continue
        if isinstance(doc, dict) and "bundle" in doc:
            return doc
    return None
