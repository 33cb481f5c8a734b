"""Failed-auth throttles over HTTP against real intake processes (security review F7, F8;
decision 25): a valid key is served whatever its address did, `X-Forwarded-For` is believed
only from a configured proxy, and whoever knows a victim's reference cannot lock her out; her
case worker can restore her access.

Each test calls from its own loopback address (127.0.0.x) or, through the "proxy", from its own
forwarded addresses, so the throttles one test fills do not touch another's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from ncii_events.auth import new_api_key

from tests.conftest import SuiteNats
from tests.e2e.conftest import RunningService, caught_up, start_service, stop_service
from tests.e2e.test_intake_api import case_body

MakeKey = Callable[[str, str], Awaitable[str]]
PROXY = "127.0.0.1"
"""The only trusted proxy of the ``proxied`` intake: the tests' own connections from it."""


@pytest.fixture(scope="module")
def direct(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    """Intake with the default settings: no proxy is trusted."""
    service = start_service(
        "intake", nats_server, tmp_path_factory.mktemp("intake-direct"), master_key_file
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
def proxied(
    nats_server: SuiteNats, tmp_path_factory: pytest.TempPathFactory, master_key_file: Path
) -> Iterator[RunningService]:
    """Intake behind a reverse proxy at 127.0.0.1 (NCII_TRUSTED_PROXIES)."""
    service = start_service(
        "intake",
        nats_server,
        tmp_path_factory.mktemp("intake-proxied"),
        master_key_file,
        extra_env={"NCII_TRUSTED_PROXIES": PROXY},
    )
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
async def keys(
    direct: RunningService, proxied: RunningService, make_key: MakeKey
) -> dict[str, str]:
    org = f"ngo-{uuid.uuid4().hex[:6]}"
    made = {
        "partner": await make_key(org, "partner"),
        "other_partner": await make_key(f"ngo-{uuid.uuid4().hex[:6]}", "partner"),
        "caseworker": await make_key("centre", "caseworker"),
    }
    await caught_up(direct)
    await caught_up(proxied)
    return made


@asynccontextmanager
async def client_from(
    service: RunningService, peer: str, key: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections come from ``peer`` (a loopback address of its own)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.AsyncHTTPTransport(local_address=peer)
    async with httpx.AsyncClient(
        base_url=service.url, headers=headers, transport=transport, timeout=30
    ) as client:
        yield client


def bogus() -> dict[str, str]:
    return {"Authorization": f"Bearer {new_api_key()}"}


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


# -- F7: API keys -----------------------------------------------------------------------------


async def test_twenty_bogus_keys_from_an_address_do_not_lock_out_a_valid_key_from_it(
    proxied: RunningService, keys: dict[str, str]
) -> None:
    async with client_from(proxied, "127.0.0.2") as client:
        for _ in range(20):
            assert (await client.get("/v1/cases", headers=bogus())).status_code == 401
        refused = await client.get("/v1/cases", headers=bogus())
        assert refused.status_code == 429
        assert refused.json()["detail"].startswith(
            "too many failed attempts from this address; retry after "
        )
        assert int(refused.headers["Retry-After"]) > 0
        valid = {"Authorization": f"Bearer {keys['partner']}"}
        assert (await client.get("/v1/cases", headers=valid)).status_code == 200
        # and the bogus ones are still refused after it
        assert (await client.get("/v1/cases", headers=bogus())).status_code == 429


async def test_rotating_x_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_throttle(
    direct: RunningService,
) -> None:
    # from 127.0.0.1, which uvicorn trusted by default: no longer
    async with client_from(direct, "127.0.0.1") as client:
        answers = [
            (await client.get("/v1/cases", headers={**bogus(), **forwarded(f"10.9.0.{i}")}))
            for i in range(21)
        ]
    assert [a.status_code for a in answers] == [401] * 20 + [429]


async def test_rotating_x_forwarded_for_from_a_peer_not_in_the_trusted_list_is_ignored(
    proxied: RunningService,
) -> None:
    async with client_from(proxied, "127.0.0.3") as client:
        answers = [
            (await client.get("/v1/cases", headers={**bogus(), **forwarded(f"10.8.0.{i}")}))
            for i in range(21)
        ]
    assert [a.status_code for a in answers] == [401] * 20 + [429]


async def test_x_forwarded_for_from_the_configured_proxy_names_the_client(
    proxied: RunningService,
) -> None:
    async with client_from(proxied, PROXY) as client:
        # distinct clients behind the proxy: each has its own budget
        for i in range(25):
            response = await client.get(
                "/v1/cases", headers={**bogus(), **forwarded(f"10.7.0.{i}")}
            )
            assert response.status_code == 401
        # one client behind the proxy: throttled as itself
        one = forwarded("10.7.1.1")
        answers = [(await client.get("/v1/cases", headers={**bogus(), **one})) for _ in range(21)]
        assert [a.status_code for a in answers] == [401] * 20 + [429]


# -- F8: the victim's reference and PIN ---------------------------------------------------------


async def open_case(service: RunningService, key: str) -> dict[str, Any]:
    async with client_from(service, "127.0.0.4", key) as client:
        response = await client.post(
            "/v1/cases", json=case_body(), headers={"Idempotency-Key": uuid.uuid4().hex}
        )
    assert response.status_code == 201, response.text
    await caught_up(service)
    return dict(response.json())


def other_pin(pin: str) -> str:
    return f"{(int(pin) + 1) % 100_000_000:08d}"


async def victim_status(
    client: httpx.AsyncClient, reference: str, pin: str, address: str
) -> httpx.Response:
    return await client.post(
        "/v1/victim/status",
        json={"reference": reference, "pin": pin},
        headers=forwarded(address),
    )


async def test_wrong_pins_from_rotating_addresses_do_not_lock_out_the_correct_pin_from_a_fresh_one(
    proxied: RunningService, keys: dict[str, str]
) -> None:
    case = await open_case(proxied, keys["partner"])
    reference, pin = case["victim_access"]["reference"], case["victim_access"]["pin"]
    wrong = other_pin(pin)
    # the attacker: ten addresses in five networks, one wrong PIN from each
    attacker = [f"203.0.{n}.{a}" for n in range(5) for a in (1, 2)]
    async with client_from(proxied, PROXY) as client:
        for address in attacker:
            assert (await victim_status(client, reference, wrong, address)).status_code == 401
        # the victim, from her own address
        mine = await victim_status(client, reference, pin, "198.51.100.20")
        assert mine.status_code == 200, mine.text
        assert mine.json()["reference"] == reference
        # the attacker's addresses are throttled, with words a victim understands
        again = await victim_status(client, reference, wrong, "203.0.0.1")
        assert again.status_code == 429
        assert again.json()["detail"].startswith("too many wrong PINs for this reference; try ")
        assert "ask your case worker to restore access" in again.json()["detail"]
        assert int(again.headers["Retry-After"]) > 0
        # rotating to another address in his networks gains nothing
        nearby = await victim_status(client, reference, wrong, "203.0.3.99")
        assert nearby.status_code == 429


async def test_the_case_worker_restores_access_with_a_new_pin_and_the_reset_is_an_event(
    proxied: RunningService, keys: dict[str, str]
) -> None:
    case = await open_case(proxied, keys["partner"])
    case_id = case["case_id"]
    reference, old_pin = case["victim_access"]["reference"], case["victim_access"]["pin"]
    async with client_from(proxied, PROXY) as client:
        # a hundred wrong PINs, each from a network of its own: the daily cap
        for n in range(100):
            answer = await victim_status(client, reference, other_pin(old_pin), f"10.1.{n}.1")
            assert answer.status_code == 401, (n, answer.text)
        capped = await victim_status(client, reference, old_pin, "198.51.100.30")
        assert capped.status_code == 429
        assert "ask your case worker to restore access" in capped.json()["detail"]

    path = f"/v1/cases/{case_id}/victim-access/reset"
    async with client_from(proxied, "127.0.0.4", keys["other_partner"]) as stranger:
        keyed = {"Idempotency-Key": uuid.uuid4().hex}
        assert (await stranger.post(path, headers=keyed)).status_code == 404
    async with client_from(proxied, "127.0.0.4", keys["caseworker"]) as worker:
        idempotency = {"Idempotency-Key": f"reset-{uuid.uuid4()}"}
        reset = await worker.post(path, json={"new_pin": True}, headers=idempotency)
        assert reset.status_code == 200, reset.text
        access = reset.json()["victim_access"]
        new_pin = access["pin"]
        assert new_pin != old_pin and access["reference"] == reference
        retried = await worker.post(path, json={"new_pin": True}, headers=idempotency)
        assert retried.json()["victim_access"]["pin"] == new_pin
        await caught_up(proxied)
        timeline = (await worker.get(f"/v1/cases/{case_id}")).json()["timeline"]
    resets = [e for e in timeline if e["type"] == "VictimAccessReset"]
    assert len(resets) == 1 and resets[0]["actor_role"] == "caseworker"

    async with client_from(proxied, PROXY) as client:
        # the victim is checked again, with her new PIN only
        assert (await victim_status(client, reference, old_pin, "198.51.100.30")).status_code == 401
        restored = await victim_status(client, reference, new_pin, "198.51.100.30")
        assert restored.status_code == 200, restored.text
        steps = [s["what"] for s in restored.json()["steps"]]
        assert "your case worker restored your access to this page" in steps


async def test_the_owning_partner_may_reset_keeping_the_pin(
    proxied: RunningService, keys: dict[str, str]
) -> None:
    case = await open_case(proxied, keys["partner"])
    path = f"/v1/cases/{case['case_id']}/victim-access/reset"
    async with client_from(proxied, "127.0.0.4", keys["partner"]) as partner:
        keyed = {"Idempotency-Key": uuid.uuid4().hex}
        reset = await partner.post(path, json={"new_pin": False}, headers=keyed)
        assert reset.status_code == 200, reset.text
        assert "pin" not in reset.json()["victim_access"]
        refused = await partner.post(path, json={"new_pin": "yes please"}, headers=keyed)
        assert refused.status_code == 422
    await caught_up(proxied)
    async with client_from(proxied, PROXY) as client:
        access = case["victim_access"]
        same = await victim_status(client, access["reference"], access["pin"], "198.51.100.40")
        assert same.status_code == 200
