"""Where `ncii run` puts NATS and each service: today's defaults, one base port, or one setting
per service."""

from __future__ import annotations

import pytest
from ncii_cli.runner import plan_ports
from ncii_cli.services import all_services
from ncii_events.settings import Settings


def test_without_settings_ncii_run_keeps_the_embedded_default_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "NCII_BASE_PORT",
        "NCII_SERVICE_PORTS",
        "NCII_NATS_PORT",
        "NCII_NATS_MONITOR_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    ports = plan_ports(Settings(), all_services())
    assert (ports.nats, ports.nats_monitor) == (14222, 18222)
    assert ports.services == {
        "intake": 18101,
        "takedown": 18102,
        "hashmatch": 18103,
        "referral": 18104,
        "audit": 18105,
        "dashboard": 18106,
    }


def test_one_base_port_moves_nats_and_every_service_in_the_order_of_their_defaults() -> None:
    ports = plan_ports(Settings(base_port=20000), all_services())
    assert (ports.nats, ports.nats_monitor) == (20000, 20100)
    assert ports.services == {
        "intake": 20001,
        "takedown": 20002,
        "hashmatch": 20003,
        "referral": 20004,
        "audit": 20005,
        "dashboard": 20006,
    }


def test_a_port_set_for_one_service_or_for_nats_wins_over_the_base() -> None:
    settings = Settings(
        base_port=20000, service_ports={"hashmatch": 21003}, nats_port=21000, nats_monitor_port=1
    )
    ports = plan_ports(settings, all_services())
    assert (ports.nats, ports.nats_monitor) == (21000, 1)
    assert ports.services["hashmatch"] == 21003 and ports.services["intake"] == 20001


def test_ports_are_read_from_ncii_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCII_BASE_PORT", "20000")
    monkeypatch.setenv("NCII_SERVICE_PORTS", '{"intake": 19101}')
    ports = plan_ports(Settings(), all_services())
    assert ports.services["intake"] == 19101 and ports.services["takedown"] == 20002
    assert ports.nats == 20000
