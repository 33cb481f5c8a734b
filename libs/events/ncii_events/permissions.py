"""What each NATS user may publish and subscribe, written once (decision 22).

Both the shipped ``deploy/nats/accounts.conf`` and the configuration ``ncii run`` writes for its
embedded server are rendered from these tables, so the two cannot drift. A service's rights are
derived from its ``ServiceSpec``: the events it emits, the streams it reads, the subjects its
projections wake on, and whether it owns the case keys. No service may manage streams, publish
another service's events, mint principals, or read or write another service's idempotency
records; only the operator (the ``ncii`` command line) creates streams and principals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ncii_contracts.base import DomainEvent
from ncii_contracts.principals import PRINCIPAL_EVENTS

from ncii_events.service import ServiceSpec, has_writes, projections_of, streams_of
from ncii_events.signing import OPERATOR as OPERATOR
from ncii_events.stream import CASES, IDEMPOTENCY_BUCKET, KEYS_BUCKET, KV_STREAMS, REFERENCE
from ncii_events.transport import inbox_prefix

KEYS_STREAM, IDEMPOTENCY_STREAM = KV_STREAMS
ALL_STREAMS = (CASES.name, REFERENCE.name, *KV_STREAMS)


@dataclass(frozen=True)
class Permissions:
    """One NATS user: the subjects it may publish to and subscribe to (allow lists)."""

    user: str
    why: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def event_subjects(events: Iterable[type[DomainEvent]]) -> list[str]:
    """The subjects these events are published on, one per event type and stream."""
    return [
        stream.subject("*", event.aggregate, "*", event.event_type)
        for event in events
        for stream in event.streams
    ]


def _reads(stream: str) -> list[str]:
    # Stream info: the stream's last sequence (readiness, runners). Direct get: reading events.
    return [f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.DIRECT.GET.{stream}"]


def service_permissions(spec: ServiceSpec[Any]) -> Permissions:
    """A service: its own events, reads of the streams it uses, replies on its own inbox and
    the doorbells of its projections; its own idempotency records only when it has write
    routes; the case keys (read-only, written only by the service that owns cases) only when
    it handles personal data (decision 0057: the dashboard gets neither)."""
    own_idempotency = f"$KV.{IDEMPOTENCY_BUCKET}.{spec.name}.>"
    publish = [*event_subjects(spec.emits)]
    for stream in streams_of(spec):
        publish += _reads(stream.name)
    if spec.reads_case_keys:
        publish += [
            # a key by case id (``kv.get`` asks for the last message of its subject)
            f"$JS.API.STREAM.INFO.{KEYS_STREAM}",
            f"$JS.API.DIRECT.GET.{KEYS_STREAM}.$KV.{KEYS_BUCKET}.>",
        ]
    if has_writes(spec):
        publish += [
            # the first responses to its own Idempotency-Keys, and only those
            f"$JS.API.STREAM.INFO.{IDEMPOTENCY_STREAM}",
            f"$JS.API.DIRECT.GET.{IDEMPOTENCY_STREAM}.{own_idempotency}",
            own_idempotency,
        ]
    if spec.owns_case_keys:
        # creates a case's key; erasure writes a tombstone, then deletes the old record
        publish += [f"$KV.{KEYS_BUCKET}.>", f"$JS.API.STREAM.MSG.DELETE.{KEYS_STREAM}"]
    for space in spec.key_spaces:
        # its own keys below a case (created, then purged by a subject roll-up: no message
        # delete, which would reach every case's key)
        publish.append(f"$KV.{KEYS_BUCKET}.*.{space}.*")
    doorbells = dict.fromkeys(s for p in projections_of(spec) for s in p.subjects)
    subscribe = [f"{inbox_prefix(spec.name)}.>", *doorbells]
    if spec.reads_case_keys:
        # an erasure must empty every process's cache of that key at once
        subscribe.append(f"$KV.{KEYS_BUCKET}.>")
    notes = [
        "owns cases: writes and erases case keys" * spec.owns_case_keys,
        "no case keys" * (not spec.reads_case_keys),
        "no write routes: no idempotency records" * (not has_writes(spec)),
    ]
    said = "; ".join(n for n in notes if n)
    why = f"the {spec.name} service" + f" ({said})" * bool(said)
    return Permissions(spec.name, why, tuple(publish), tuple(subscribe))


def operator_permissions() -> Permissions:
    """The operator's command line: creates and updates the streams and buckets (never deletes
    or purges them), issues and revokes API keys, reads the log, erases case keys."""
    publish = [*event_subjects(PRINCIPAL_EVENTS)]
    for stream in ALL_STREAMS:
        publish += [
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.STREAM.CREATE.{stream}",
            f"$JS.API.STREAM.UPDATE.{stream}",
        ]
    publish += [
        f"$JS.API.DIRECT.GET.{CASES.name}",
        f"$JS.API.DIRECT.GET.{REFERENCE.name}",
        f"$JS.API.DIRECT.GET.{KEYS_STREAM}.$KV.{KEYS_BUCKET}.>",
        f"$KV.{KEYS_BUCKET}.>",
        f"$JS.API.STREAM.MSG.DELETE.{KEYS_STREAM}",
    ]
    why = "the operator's command line: streams, API keys, case-key erasure"
    return Permissions(OPERATOR, why, tuple(publish), (f"{inbox_prefix(OPERATOR)}.>",))


def nats_users(specs: Iterable[ServiceSpec[Any]]) -> list[Permissions]:
    """Every user of the system: one per service, then the operator."""
    return [*(service_permissions(spec) for spec in specs), operator_permissions()]


def _strings(values: Sequence[str], indent: str) -> str:
    return "".join(f'{indent}"{v}"\n' for v in values)


def render_accounts(
    users: Sequence[Permissions], password: Callable[[str], str], *, header: str = ""
) -> str:
    """A NATS ``accounts`` block with these users. ``password(user)`` is what follows
    ``password:`` (an environment variable reference in the shipped file, a quoted secret in a
    generated one)."""
    lines = [header, "accounts {\n  NCII {\n    jetstream: enabled\n    users: [\n"]
    for perms in users:
        lines.append(
            f"      # {perms.why}\n"
            f"      {{\n"
            f"        user: {perms.user}\n"
            f"        password: {password(perms.user)}\n"
            f"        permissions: {{\n"
            f"          publish: {{ allow: [\n"
            f"{_strings(perms.publish, '            ')}"
            f"          ] }}\n"
            f"          subscribe: {{ allow: [\n"
            f"{_strings(perms.subscribe, '            ')}"
            f"          ] }}\n"
            f"        }}\n"
            f"      }}\n"
        )
    lines.append("    ]\n  }\n}\n")
    return "".join(lines)


def password_variable(user: str) -> str:
    """The environment variable the shipped file reads a user's password from."""
    return f"NCII_NATS_PASSWORD_{user.upper().replace('-', '_')}"
