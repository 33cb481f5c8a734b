"""The auditor's application service: a case's history from the log, verified; personal fields
only after the read is recorded. The HTTP routes and ``ncii audit`` both use it."""

from __future__ import annotations

import gc
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ncii_contracts import ALL_EVENTS
from ncii_contracts.audit import AuditorReadPersonalData
from ncii_contracts.intake import PersonalDataRead, RevealReason
from ncii_events.audit import SignaturePolicy
from ncii_events.envelope import Actor
from ncii_events.ids import uuid7
from ncii_events.model import NEW, TOKEN, AggregateRef, Cause, RecordedEvent
from ncii_events.registry import EventRegistry
from ncii_events.service import ServiceRuntime
from ncii_events.settings import Settings
from ncii_events.signing import PublicKeys, SigningKey
from ncii_events.store import EventStore
from ncii_events.stream import CASES

from ncii_audit.bundle import bundle_body, sign_bundle
from ncii_audit.folds import domain_states, published_folds
from ncii_audit.history import CaseHistory, build_history, occurred_by

AUDIT = "audit"
"""The audit service's signer: its reveals and its case bundles."""
REGISTRY = EventRegistry(*ALL_EVENTS)
"""The auditor reads every service's events."""
PERSONAL_FIELDS: dict[str, frozenset[str]] = {
    e.event_type: REGISTRY.personal_fields(e.event_type) for e in ALL_EVENTS
}
#: Every personal field a case's events carry: what a reveal reads.
REVEALED_FIELDS = sorted({n for names in PERSONAL_FIELDS.values() for n in names})[:20]


class CaseNotFoundError(LookupError):
    pass


def settle_heap() -> None:
    """Move every object alive now (modules, contracts, the application) out of the garbage
    collector's reach: a replay makes thousands of objects, each batch of them starts a
    collection, and the oldest generation's would walk everything loaded at start-up: ~40% of
    reading a 1,000-event case (decision 51). Called once start-up is done."""
    gc.collect()
    gc.freeze()


@contextmanager
def settled_heap() -> Iterator[None]:
    """``settle_heap`` for the span of one command (``ncii audit replay``), then the frozen
    objects are handed back to the collector: the command's process may be a longer-lived
    one's (a test's) that should not keep them for good."""
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()


class CachedPublicKeys(PublicKeys):
    """``PublicKeys`` that remembers signatures it verified. Sound: a signature's verdict
    depends only on (stream, signer, key id, hash, signature), all in the cache key, and the
    hash is recomputed from the bytes on every replay, so altered content still fails there.
    A replay of a 1,000-event case would spend ~94 ms on Ed25519 alone otherwise."""

    def __init__(self, keys: Mapping[str, Sequence[str] | str], size: int = 200_000) -> None:
        super().__init__(keys)
        self._verdicts: OrderedDict[tuple[str, str, str, str, str], str | None] = OrderedDict()
        self._size = size

    def check(self, stream: str, signer: str, kid: str, digest: str, signature: str) -> str | None:
        key = (stream, signer, kid, digest, signature)
        if key in self._verdicts:
            self._verdicts.move_to_end(key)
            return self._verdicts[key]
        verdict = super().check(stream, signer, kid, digest, signature)
        self._verdicts[key] = verdict
        if len(self._verdicts) > self._size:
            self._verdicts.popitem(last=False)
        return verdict


@dataclass(frozen=True)
class Reveal:
    """An auditor's stated reason to read a case's personal fields (decision 27's codes)."""

    reason: RevealReason
    ticket: str | None
    endpoint: str


def check_case_id(case_id: str) -> None:
    if not TOKEN.fullmatch(case_id) or len(case_id) > 64:
        raise CaseNotFoundError(case_id)


def public_keys_doc(settings: Settings) -> dict[str, list[str]] | None:
    """The configured public keys as listed (signer -> base64 keys): what a bundle carries.
    Same sources, same order, as ``ncii_events.signing.configured_public_keys``."""
    if settings.signing_public_keys is not None:
        return {
            k: [v] if isinstance(v, str) else list(v)
            for k, v in settings.signing_public_keys.items()
        }
    path = settings.signing_public_keys_path()
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    return {str(k): [v] if isinstance(v, str) else list(v) for k, v in doc.items()}


class AuditApp:
    def __init__(
        self,
        store: EventStore,
        public_keys: Mapping[str, list[str]] | None,
        allowed: Mapping[str, frozenset[str]],
        signing: SigningKey | None,
    ) -> None:
        self.store = store
        self.public_keys = dict(public_keys or {})
        self.allowed = allowed
        self.signing = signing
        self.policy = (
            SignaturePolicy(CASES.name, CachedPublicKeys(public_keys), allowed)
            if public_keys is not None
            else None
        )

    async def bundle(self, case_id: str, actor: Actor) -> dict[str, Any]:
        """The signed case bundle (personal fields withheld; envelopes as stored)."""
        if self.signing is None:
            raise RuntimeError("a bundle needs the audit signer's key")
        check_case_id(case_id)
        events = await self.store.read_case(case_id, decrypt=False)
        if not events:
            raise CaseNotFoundError(case_id)
        history = build_history(
            case_id, events, self.policy, personal_fields=PERSONAL_FIELDS, shown=False
        )
        body = bundle_body(
            {"summary": history.summary(), "events": [e.to_json() for e in history.entries]},
            events,
            CASES.name,
            self.public_keys,
            self.allowed,
        )
        return sign_bundle(body, self.signing)

    async def replay(
        self,
        case_id: str,
        actor: Actor,
        *,
        reveal: Reveal | None = None,
        as_of: datetime | None = None,
    ) -> CaseHistory:
        """The case's verified history. With ``reveal``: the read is appended (signed by the
        audit service) before anything is decrypted, and the history then includes it."""
        check_case_id(case_id)
        events = await self.store.read_case(case_id, decrypt=False)
        if not events:
            raise CaseNotFoundError(case_id)
        if reveal is not None:
            await self.record_read(case_id, actor, reveal)
            events = await self.store.read_case(case_id, decrypt=True)
        history = build_history(
            case_id,
            events,
            self.policy,
            personal_fields=PERSONAL_FIELDS,
            shown=reveal is not None,
            as_of=as_of,
        )
        if as_of is None:
            return history
        domain = domain_states(case_id, occurred_by(events, as_of), published_folds())
        return replace(history, domain=domain)

    async def record_read(self, case_id: str, actor: Actor, reveal: Reveal) -> RecordedEvent:
        read_id = str(uuid7())
        written = await self.store.append(
            AggregateRef(case_id, "personal_data_read", read_id),
            [
                AuditorReadPersonalData(
                    reason=reveal.reason,
                    ticket=reveal.ticket,
                    endpoint=reveal.endpoint,
                    fields=list(REVEALED_FIELDS),
                )
            ],
            expected=NEW,
            cause=Cause(actor=actor, correlation_id=read_id, causation_id=read_id),
        )
        return written[0]

    async def access_log(self, case_id: str) -> list[dict[str, Any]]:
        """Who read the case's personal data, when, why and through which endpoint: the
        reveals of every reader: intake's ``PersonalDataRead`` (an admin's) and this service's
        ``AuditorReadPersonalData``."""
        check_case_id(case_id)
        reads = await self.store.read_from(
            1,
            limit=10_000,
            subject=CASES.subject(case_id, "personal_data_read", "*", "*"),
        )
        out: list[dict[str, Any]] = []
        for recorded in reads:
            event = recorded.event
            if not isinstance(event, PersonalDataRead):
                continue
            env = recorded.envelope
            out.append(
                {
                    "event_id": env.event_id,
                    "occurred_at": env.occurred_at,
                    "actor": {
                        "organisation": env.actor.organisation,
                        "principal": env.actor.principal,
                        "role": env.actor.role,
                    },
                    "type": env.type,
                    "signer": env.signer,
                    "reason": event.reason,
                    "ticket": event.ticket,
                    "endpoint": event.endpoint,
                    "fields": event.fields,
                }
            )
        return out


async def build_audit_app(runtime: ServiceRuntime[AuditApp]) -> AuditApp:
    from ncii_events.signing import allowed_signers

    from ncii_audit.emitters import emitters

    # Its own store over the runtime's connection and keys: the runtime's registry holds only
    # the events the service emits and consumes, and an auditor decodes every service's.
    assert runtime.nc is not None  # the runtime connected before it builds the application
    store = EventStore(
        runtime.nc, runtime.keys, registry=REGISTRY, spec=CASES, signing=runtime.signing
    )
    app = AuditApp(
        store,
        public_keys_doc(runtime.settings),
        allowed_signers(emitters()),
        runtime.signing,
    )
    settle_heap()
    return app
