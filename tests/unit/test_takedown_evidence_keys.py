"""An evidence record's personal values are sealed with the record's own key (decision 0032):
bound to its case, record and field, so that destroying that key erases this record alone."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from ncii_takedown.evidence_keys import key_name, seal, unseal


def test_an_evidence_seal_opens_only_with_its_own_key_for_its_own_record_and_field() -> None:
    key, other = AESGCM.generate_key(256), AESGCM.generate_key(256)
    token = seal(key, "case", "ev1", "url", "https://x.example/p/1")
    assert "x.example" not in token
    assert unseal(key, "case", "ev1", "url", token) == "https://x.example/p/1"
    for args in ((other, "ev1", "url"), (key, "ev2", "url"), (key, "ev1", "offender_account")):
        with pytest.raises(InvalidTag):
            unseal(args[0], "case", args[1], args[2], token)


def test_a_records_key_lives_below_its_case_in_the_evidence_space() -> None:
    assert key_name("c1", "e1") == "c1.evidence.e1"
