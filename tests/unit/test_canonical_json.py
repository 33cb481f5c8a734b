"""Canonical JSON (orjson) against sorted, compact ``json.dumps``."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from ncii_events.envelope import NotCanonicalError, canonical_event_json, canonical_json

CHARS = list(
    'aZ09 "\\/\x00\x01\x08\x0c\n\r\t\x1f\x7f\x80é台北\u2028\u2029\ufeff\ue000\uffff😀\U0010ffff'
)
INTS = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63 - 1), -(2**63), 2**64 - 1]
BIG_INTS = [2**64, 2**64 + 5, -(2**63) - 1, -(2**64 + 5), 10**40]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        if rng.random() < 0.03:
            return rng.choice(BIG_INTS)
        return rng.choice([*INTS, rng.randint(-(2**63), 2**64 - 1), rng.randint(-999, 999)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4):
        return rng.choice(["", "Ab", "b", "B", "é", "台", "😀", "\ufeff", "a b"])
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _fits_64_bits(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_fits_64_bits(v) for v in value.values())
    if isinstance(value, list):
        return all(_fits_64_bits(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value <= 2**64 - 1
    return True


def test_canonical_json_is_byte_identical_to_sorted_compact_json_dumps() -> None:
    through_orjson = 0
    for seed in range(3000):
        value = _value(random.Random(seed))
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_json(value) == expected.encode(), value
        if _fits_64_bits(value):
            through_orjson += 1
            assert canonical_event_json(value) == expected.encode()
        else:
            with pytest.raises(NotCanonicalError):
                canonical_event_json(value)
    assert 2000 < through_orjson < 3000  # both paths were exercised


@pytest.mark.parametrize("big", [2**64, -(2**63) - 1, 2**64 + 5])
def test_canonical_event_json_refuses_integers_beyond_64_bits(big: int) -> None:
    value = {"b": [1, {"n": big}], "a": "x"}
    with pytest.raises(NotCanonicalError):
        canonical_event_json(value)
    assert canonical_json(value) == b'{"a":"x","b":[1,{"n":%d}]}' % big
    assert canonical_event_json({"n": 2**64 - 1}) == canonical_json({"n": 2**64 - 1})
