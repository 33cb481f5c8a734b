"""Intake refuses a case of another organisation before it reads the case's history, unwraps its
key or decrypts a field (security review F13): the same work as for a case that does not exist."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from ncii_contracts.intake import Channel, Consents, Contact
from ncii_events import codec
from ncii_events.auth import Principal
from ncii_events.crypto import MasterKey
from ncii_events.keys import NatsCaseKeys
from ncii_events.store import EventStore
from ncii_intake.app import CaseNotFoundError, IntakeApp
from ncii_intake.domain import Case

from tests.conftest import signing_key


class CountingKeys:
    """The case keys, counting the reads (an unwrap of the case's key each)."""

    def __init__(self, keys: NatsCaseKeys) -> None:
        self.keys = keys
        self.reads = 0

    async def key_for_write(self, case_id: str) -> bytes:
        return await self.keys.key_for_write(case_id)

    async def key_for_read(self, case_id: str) -> bytes | None:
        self.reads += 1
        return await self.keys.key_for_read(case_id)

    async def erase(self, case_id: str) -> bool:
        return await self.keys.erase(case_id)

    async def is_erased(self, case_id: str) -> bool:
        return await self.keys.is_erased(case_id)


def partner(organisation: str) -> Principal:
    return Principal(principal_id=f"p-{organisation}", organisation=organisation, role="partner")


async def test_a_foreign_case_is_refused_without_loading_its_key_or_decrypting_anything(
    nc: NATS,
    store: EventStore,
    case_keys: NatsCaseKeys,
    master_key: MasterKey,
    keys_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = CountingKeys(case_keys)
    signed = EventStore(nc, keys, registry=store.registry, signing=signing_key(keys_dir, "intake"))
    app = IntakeApp(signed, keys, master_key)
    owner, other = partner(f"ngo-{uuid.uuid4().hex[:6]}"), partner(f"ngo-{uuid.uuid4().hex[:6]}")

    def decide(reference: str) -> Any:
        return Case.open(
            organisation=owner.organisation,
            reference=reference,
            age_group="adult",
            harm_categories=["distribution_without_consent_319_3"],
            spread_status="spread",
            channels=[Channel(kind="forum", platform="Some forum")],
            intake_channel="partner_api",
            learned_at=datetime.now(UTC) - timedelta(hours=1),
            consents=Consents(takedown=True, share_hashes=True, referral=False),
            pseudonym="Wren",
            contact=Contact(email="wren@example.org", preferred="email"),
        )

    case_id = (await app.open_case(owner, None, decide)).case.case_id
    decrypted: list[str] = []
    real_decrypt = codec.decrypt_field

    def counting_decrypt(*args: Any) -> Any:
        decrypted.append(args[3])
        return real_decrypt(*args)

    monkeypatch.setattr(codec, "decrypt_field", counting_decrypt)

    keys.reads = 0
    with pytest.raises(CaseNotFoundError):
        await app.load_with_history(case_id, other, decrypt=True)
    assert (keys.reads, decrypted) == (0, [])
    with pytest.raises(CaseNotFoundError):  # a missing case: the same answer, the same work
        await app.load_with_history(str(uuid.uuid4()), other, decrypt=True)
    assert (keys.reads, decrypted) == (0, [])

    loaded, _history = await app.load_with_history(case_id, owner, decrypt=True)
    assert loaded.case.organisation == owner.organisation
    assert keys.reads == 1 and "pseudonym" in decrypted
