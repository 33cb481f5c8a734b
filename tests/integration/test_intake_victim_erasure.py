"""The victim's own erasure request takes effect after its stated delay (decision 35), measured
with an injected clock: not a moment before, by itself after, and at once when her case worker
confirms it sooner."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from ncii_contracts.intake import CaseErased, Consents, ErasureRequested
from ncii_events.auth import Principal
from ncii_events.crypto import MasterKey
from ncii_events.keys import NatsCaseKeys
from ncii_events.store import EventStore
from ncii_intake.app import IntakeApp
from ncii_intake.domain import VICTIM_ERASURE_DELAY, Case

from tests.conftest import signing_key

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def _app(
    nc: NATS, store: EventStore, case_keys: NatsCaseKeys, master_key: MasterKey, keys_dir: Path
) -> tuple[IntakeApp, Clock, Principal]:
    clock = Clock()
    signed = EventStore(
        nc, case_keys, registry=store.registry, signing=signing_key(keys_dir, "intake")
    )
    app = IntakeApp(signed, case_keys, master_key, clock=clock)
    owner = Principal(f"p-{uuid.uuid4().hex[:6]}", f"ngo-{uuid.uuid4().hex[:6]}", "partner")
    return app, clock, owner


async def _open(app: IntakeApp, owner: Principal) -> str:
    def decide(reference: str) -> Any:
        return Case.open(
            organisation=owner.organisation,
            reference=reference,
            age_group="minor",
            harm_categories=["child_sexual_exploitation"],
            spread_status="spread",
            channels=[],
            intake_channel="phone",
            learned_at=T0 - timedelta(hours=1),
            consents=Consents(takedown=True, share_hashes=True, referral=False),
            pseudonym="Lark",
            contact=None,
        )

    return (await app.open_case(owner, None, decide)).case.case_id


async def test_the_victims_request_erases_only_once_its_delay_has_passed(
    nc: NATS,
    store: EventStore,
    case_keys: NatsCaseKeys,
    master_key: MasterKey,
    keys_dir: Path,
) -> None:
    app, clock, owner = await _app(nc, store, case_keys, master_key, keys_dir)
    case_id = await _open(app, owner)
    asked = await app.request_erasure_for_victim(case_id)
    assert asked.case.erasure_effective_after == "2026-12-07T09:00:00.000000Z"

    clock.now = T0 + VICTIM_ERASURE_DELAY - timedelta(seconds=1)
    assert await app.erase_if_due(case_id) is False
    assert not await case_keys.is_erased(case_id)

    clock.now = T0 + VICTIM_ERASURE_DELAY
    assert await app.erase_if_due(case_id) is True
    assert await case_keys.is_erased(case_id)
    assert await app.erase_if_due(case_id) is True  # a second sweep writes nothing more
    history = await store.read_case(case_id, decrypt=False)
    erasures = [r for r in history if isinstance(r.event, CaseErased)]
    assert [r.event for r in erasures] == [CaseErased(erased_by="victim", reason="victim_request")]
    assert erasures[0].envelope.actor.role == "service"


async def test_her_case_worker_confirms_the_request_sooner(
    nc: NATS,
    store: EventStore,
    case_keys: NatsCaseKeys,
    master_key: MasterKey,
    keys_dir: Path,
) -> None:
    app, clock, owner = await _app(nc, store, case_keys, master_key, keys_dir)
    case_id = await _open(app, owner)
    await app.request_erasure_for_victim(case_id)
    assert await app.request_erasure_for_victim(case_id)  # asking twice: one request
    worker = Principal("cw-1", "centre", "caseworker")
    clock.now = T0 + timedelta(hours=2)
    erased = await app.erase(case_id, worker, None, "victim_request")
    assert erased.case.erased_at is not None and await case_keys.is_erased(case_id)
    history = await store.read_case(case_id, decrypt=False)
    assert len([r for r in history if isinstance(r.event, ErasureRequested)]) == 1
    assert [r.envelope.actor.role for r in history if isinstance(r.event, CaseErased)] == [
        "caseworker"
    ]
