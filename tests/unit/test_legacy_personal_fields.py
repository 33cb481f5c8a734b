"""Events written before a field was marked personal stay in the log as they are (it is never
rewritten): the reader upcasts them, keeps the clear value while the case's key lives, and hides
it like any personal field once the key is destroyed or when it does not decrypt."""

from __future__ import annotations

import os
from typing import Any

from ncii_contracts.intake import HashesSubmitted, LocationReported
from ncii_events.codec import decode
from ncii_events.crypto import NO_KEY, encrypt_field
from ncii_events.envelope import GENESIS, Actor, Envelope

from tests.support.events import REGISTRY

CASE = "0193a5a0-0000-7000-8000-000000000001"
PDQ = "f" * 64
V1_HASHES: dict[str, Any] = {
    "submission_id": "s-1",
    "organisation": "ngo-a",
    "age_group": "adult",
    "hashes": [
        {"algorithm": "pdq", "value": PDQ, "media": "image", "quality": 90},
        {"algorithm": "md5", "value": "a" * 32, "media": "video"},
    ],
}


def envelope(event_type: str, version: int, payload: dict[str, Any]) -> Envelope:
    return Envelope(
        event_id="e-1",
        type=event_type,
        schema_version=version,
        case_id=CASE,
        aggregate="case",
        aggregate_id=CASE,
        occurred_at="2026-11-01T00:00:00.000000Z",
        actor=Actor(organisation="ngo-a", principal="p", role="partner"),
        correlation_id="c",
        causation_id="c",
        traceparent=None,
        payload=payload,
        prev_hash=GENESIS,
        hash="0" * 64,
    )


def test_a_v1_submission_in_clear_reads_while_the_key_lives_and_reads_as_erased_after() -> None:
    env = envelope("HashesSubmitted", 1, V1_HASHES)
    live = decode(REGISTRY, 1, env, decrypt=True, keys={CASE: os.urandom(32)})
    assert live is not None and isinstance(live.event, HashesSubmitted)
    assert live.event.count == 2 and live.event.hashes is not None
    assert live.event.hashes[0].value == PDQ and live.erased_fields == frozenset()

    erased = decode(REGISTRY, 1, env, decrypt=True, keys={CASE: None})
    assert erased is not None and isinstance(erased.event, HashesSubmitted)
    assert erased.event.hashes is None and erased.erased_fields == {"hashes"}
    assert erased.event.count == 2  # counted by the upcaster before the value was hidden

    # a case that never had a key (nothing personal in it then): its clear hashes still read,
    # so a rebuild of the bank banks them
    keyless = decode(REGISTRY, 1, env, decrypt=True, keys={CASE: NO_KEY})
    assert keyless is not None and isinstance(keyless.event, HashesSubmitted)
    assert keyless.event.hashes is not None and keyless.erased_fields == frozenset()

    withheld = decode(REGISTRY, 1, env, decrypt=False, keys=None)
    assert withheld is not None and isinstance(withheld.event, HashesSubmitted)
    assert withheld.event.hashes is None and withheld.withheld_fields == {"hashes"}
    assert withheld.event.count == 2


def test_a_v2_submission_is_ciphertext_and_a_clear_one_at_v2_is_refused() -> None:
    key = os.urandom(32)
    hashes = V1_HASHES["hashes"]
    token = encrypt_field(key, CASE, "e-1", "hashes", hashes)
    env = envelope("HashesSubmitted", 2, {**V1_HASHES, "count": 2, "hashes": token})
    read = decode(REGISTRY, 1, env, decrypt=True, keys={CASE: key})
    assert read is not None and isinstance(read.event, HashesSubmitted)
    assert read.event.hashes is not None and read.event.hashes[0].value == PDQ
    assert PDQ not in token
    clear = envelope("HashesSubmitted", 2, {**V1_HASHES, "count": 2})
    try:
        decode(REGISTRY, 1, clear, decrypt=True, keys={CASE: key})
    except ValueError as exc:
        assert "not encrypted" in str(exc)
    else:
        raise AssertionError("a v2 event must carry its hashes encrypted")


def test_a_v1_location_keeps_its_platform_until_erasure() -> None:
    payload = {
        "location_id": "l-1",
        "platform": "Forum ERASEME",
        "channel_kind": "forum",
        "url": None,
    }
    env = envelope("LocationReported", 1, payload)
    live = decode(REGISTRY, 1, env, decrypt=True, keys={CASE: os.urandom(32)})
    assert live is not None and isinstance(live.event, LocationReported)
    assert live.event.platform == "Forum ERASEME"
    erased = decode(REGISTRY, 1, env, decrypt=True, keys={CASE: None})
    assert erased is not None and isinstance(erased.event, LocationReported)
    assert erased.event.platform is None and erased.erased_fields == {"platform"}
