"""The whole log verified on every core: worker processes parse each stored message, recompute
its hash and check its signature (Ed25519 verify, ~50 µs with libsodium, is most of the cost);
this process reads the log and checks what needs log order (each aggregate's links, unsigned
after signing began, sequences missing from the store). Same verdicts as ``ChainVerifier``.

A worker reads a signed envelope as the parsed document itself (decision 51): no ``Envelope``
object, the hash recomputed from the document without ``hash`` and ``signature`` (the fields
``Envelope.computed_hash`` encodes, when every envelope field is there and the signature
fields are strings), and plain tuples back to this process (cheap to pickle). Anything else
(unsigned, a field missing or extra, values of other types, bytes that do not parse) takes the
``Envelope`` path, whose verdicts are ``ChainVerifier``'s by construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from typing import Any, NamedTuple

import orjson
from ncii_events.audit import ChainBreak, ChainReport
from ncii_events.envelope import GENESIS, Envelope
from ncii_events.signing import PublicKeys
from ncii_events.store import EventStore

BATCH = 2000
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


class OrderedChecks:
    """The log-order half of verification, fed the workers' results in log order."""

    def __init__(self, first_seq: int = 1) -> None:
        self.last: dict[tuple[str, str, str], str] = {}
        self.checked = self.verified = self.unsigned = self.bad = 0
        self.signed_from: int | None = None
        self.first_break: ChainBreak | None = None
        self.expected_seq = first_seq

    def _bad(self, seq: int, event_id: str, event_type: str, reason: str) -> None:
        self.bad += 1
        if self.first_break is None:
            self.first_break = ChainBreak(seq, event_id, reason, event_type)

    def feed(self, results: Sequence[Row]) -> None:
        last = self.last
        for seq, event_id, event_type, link, digest, prev_hash, content_ok, verdict in results:
            if seq > self.expected_seq:
                # events are never deleted (erasure destroys keys): a hole is lost or unreadable
                gap = f"{self.expected_seq}" + (
                    f"-{seq - 1}" if seq - 1 > self.expected_seq else ""
                )
                self._bad(self.expected_seq, "?", "", f"missing from the store: seq {gap}")
            self.expected_seq = seq + 1
            self.checked += 1
            if link is None:
                self._bad(seq, event_id, event_type, verdict or "unreadable")
                continue
            why: str | None = None
            if not content_ok:
                why = "content altered: hash does not match"
            elif prev_hash != last.get(link, GENESIS):
                why = (
                    "link broken: prev_hash is not the hash of the aggregate's previous event"
                    if link in last
                    else "link broken: first event of the aggregate does not start from genesis"
                )
            elif verdict == _UNSIGNED:
                if self.signed_from is not None:
                    why = f"unsigned, though events are signed since seq {self.signed_from}"
                else:
                    self.unsigned += 1
            else:
                if self.signed_from is None:
                    self.signed_from = seq
                why = verdict
                if why is None:
                    self.verified += 1
            if why is not None:
                self._bad(seq, event_id, event_type, why)
            last[link] = digest

    def report(self) -> ChainReport:
        return ChainReport(
            self.checked, len(self.last), self.first_break, self.verified, self.unsigned, self.bad
        )


def worker_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


async def verify_store(
    store: EventStore,
    keys: Mapping[str, list[str]],
    allowed: Mapping[str, frozenset[str]],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ChainReport:
    """Every event of ``store``'s stream, verified by ``workers`` processes (default: one per
    core); ``progress(checked, last_seq)`` after each batch."""
    last_seq = await store.last_sequence()
    ordered = OrderedChecks()
    n = workers or worker_count()
    allowed_lists = {t: sorted(s) for t, s in allowed.items()}
    loop = asyncio.get_running_loop()
    # spawn: a fork would copy this process's event loop and NATS connection's threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        n, mp_context=context, initializer=_init, initargs=(store.spec.name, keys, allowed_lists)
    ) as pool:
        pending: deque[asyncio.Future[list[Row]]] = deque()
        seq = 1
        while seq <= last_seq:
            batch = await store.read_stored(seq, limit=BATCH)
            if not batch:
                break
            seq = batch[-1][0] + 1
            pending.append(loop.run_in_executor(pool, check_batch, batch))
            while len(pending) > 2 * n:  # bounded: a whole log never sits in memory
                ordered.feed(await pending.popleft())
                if progress is not None:
                    progress(ordered.checked, last_seq)
        while pending:
            ordered.feed(await pending.popleft())
            if progress is not None:
                progress(ordered.checked, last_seq)
    if ordered.expected_seq <= last_seq:
        ordered._bad(
            ordered.expected_seq, "?", "", f"missing from the store: seq {ordered.expected_seq}-"
        )
    return ordered.report()
