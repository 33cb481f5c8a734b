"""The log's streams: one append-only stream for cases, one for reference data, one KV for keys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client as NATS

# The streams are part of the contracts (readers and the AsyncAPI document need them, NATS not).
from ncii_contracts.streams import CASES as CASES
from ncii_contracts.streams import REFERENCE as REFERENCE
from ncii_contracts.streams import REFERENCE_CASE as REFERENCE_CASE
from ncii_contracts.streams import StreamSpec as StreamSpec

NANOS = 1_000_000_000
DUPLICATE_WINDOW_S = 2 * 60 * 60  # explicit: the server silently uses 2 minutes for 0

KEYS_BUCKET = "ncii_case_keys"
IDEMPOTENCY_BUCKET = "ncii_idempotency"
IDEMPOTENCY_TTL_S = 24 * 60 * 60
KV_STREAMS = (f"KV_{KEYS_BUCKET}", f"KV_{IDEMPOTENCY_BUCKET}")
"""The buckets' streams: every service uses both."""


def stream_config(spec: StreamSpec, *, replicas: int = 1) -> dict[str, Any]:
    """Append-only: deny delete and purge, keep forever, atomic batches for multi-event appends."""
    return {
        "name": spec.name,
        "subjects": [spec.all_subjects],
        "retention": "limits",
        "storage": "file",
        "discard": "old",
        "max_age": 0,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_msgs_per_subject": -1,
        "num_replicas": replicas,
        "duplicate_window": DUPLICATE_WINDOW_S * NANOS,
        "deny_delete": True,
        "deny_purge": True,
        "allow_rollup_hdrs": False,
        "allow_direct": True,
        "allow_atomic": True,
    }


class StreamSetupError(RuntimeError):
    pass


class StreamsMissingError(StreamSetupError):
    """A stream or bucket a service needs does not exist: the operator creates them."""


STREAM_NOT_FOUND = 10059


async def require_streams(nc: NATS, names: Sequence[str]) -> None:
    """Check that the streams and buckets ``names`` exist (a service's start: services never
    create or change them, decision 22); raise ``StreamsMissingError`` saying what to run."""
    missing: list[str] = []
    for name in names:
        try:
            reply = await nc.request(f"$JS.API.STREAM.INFO.{name}", b"", timeout=5)
        except TimeoutError:
            raise StreamSetupError(
                f"NATS did not answer about stream {name}: check that this NATS user may read "
                f"it (deploy/nats/accounts.conf) and that JetStream is enabled"
            ) from None
        error = json.loads(reply.data).get("error")
        if error is not None and error.get("err_code") == STREAM_NOT_FOUND:
            missing.append(name)
        elif error is not None:
            raise StreamSetupError(f"stream {name}: {error}")
    if missing:
        raise StreamsMissingError(
            f"the log's streams {', '.join(missing)} do not exist: run `ncii log init` "
            f"(or start the system with `ncii run`), as the NATS operator user"
        )


async def ensure_streams(nc: NATS, *, replicas: int = 1) -> None:
    """Create or update the streams and the KV buckets: the operator's job (``ncii log init``,
    ``ncii run``); services only check them (``require_streams``). Safe to call again.

    The buckets are created as plain streams rather than through the KV API: NATS creates KV
    streams with deny_delete, and erasure must overwrite an old key record on disk.
    """
    configs = [
        stream_config(CASES, replicas=replicas),
        stream_config(REFERENCE, replicas=replicas),
        key_bucket_config(replicas),
        idempotency_bucket_config(replicas),
    ]
    for config in configs:
        name = config["name"]
        reply = await nc.request(f"$JS.API.STREAM.INFO.{name}", b"", timeout=5)
        verb = "UPDATE" if "error" not in json.loads(reply.data) else "CREATE"
        reply = await nc.request(
            f"$JS.API.STREAM.{verb}.{name}", json.dumps(config).encode(), timeout=10
        )
        body = json.loads(reply.data)
        if "error" in body:
            raise StreamSetupError(f"{verb.lower()} stream {name}: {body['error']}")


def idempotency_bucket_config(replicas: int) -> dict[str, Any]:
    """First responses to requests sent with an Idempotency-Key, kept for 24 hours."""
    return {
        "name": f"KV_{IDEMPOTENCY_BUCKET}",
        "description": "ncii first responses per Idempotency-Key (no personal data)",
        "subjects": [f"$KV.{IDEMPOTENCY_BUCKET}.>"],
        "retention": "limits",
        "storage": "file",
        "discard": "new",
        "max_msgs_per_subject": 1,
        "max_age": IDEMPOTENCY_TTL_S * NANOS,
        "num_replicas": replicas,
        "duplicate_window": 120 * NANOS,
        "allow_rollup_hdrs": True,
        "deny_delete": True,
        "deny_purge": False,
        "allow_direct": True,
    }


def key_bucket_config(replicas: int) -> dict[str, Any]:
    return {
        "name": f"KV_{KEYS_BUCKET}",
        "description": "ncii case data keys, wrapped by the master key",
        "subjects": [f"$KV.{KEYS_BUCKET}.>"],
        "retention": "limits",
        "storage": "file",
        "discard": "new",
        "max_msgs_per_subject": 4,  # the key, then its tombstone: erasure overwrites the key
        "max_age": 0,
        "num_replicas": replicas,
        "duplicate_window": 120 * NANOS,
        "allow_rollup_hdrs": True,
        "deny_delete": False,
        "deny_purge": False,
        "allow_direct": True,
    }
