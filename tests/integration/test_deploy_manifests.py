"""The Kubernetes manifests (deploy/k8s/services.yaml) against the code: every service has a
Deployment, and every variable a Deployment sets is one that service's settings read (a typo or
a renamed setting would otherwise be ignored without a word: pydantic-settings ignores unknown
variables). Its own NATS user, database, signing key (decision 23), port, and the OTLP endpoint
(decision 55); every file a variable names is on a mounted volume.

The manifests are read as the plain, regular text they are (the suite has no YAML parser):
one document per ``---``, one ``name:`` per variable."""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from ncii_cli.services import all_services
from ncii_events.service import ServiceSpec
from ncii_events.settings import Settings
from pydantic_settings import BaseSettings

from tests.conftest import ROOT

MANIFESTS = ROOT / "deploy" / "k8s" / "services.yaml"
STANDARD = re.compile(r"OTEL_[A-Z0-9_]+")
"""The OpenTelemetry SDK's own variables (headers, certificates, compression): read by it."""


@dataclass(frozen=True)
class Deployment:
    name: str
    command: str
    env: dict[str, str]
    """Each variable and its value (``secret:<name>/<key>`` for one from a secret)."""
    ports: list[int]
    mounts: list[str]


def deployments() -> dict[str, Deployment]:
    found: dict[str, Deployment] = {}
    for doc in re.split(r"(?m)^---$", MANIFESTS.read_text()):
        if not re.search(r"(?m)^kind: Deployment$", doc):
            continue
        name = re.search(r"(?m)^metadata: \{name: ([\w-]+)\}", doc)
        command = re.search(r'command: \["([\w-]+)"', doc)
        assert name is not None and command is not None, doc
        env: dict[str, str] = {}
        for match in re.finditer(
            r"- (?:\{name: (?P<inline>[A-Z][A-Z0-9_]*), value: (?P<value>[^}]*)\}"
            r"|name: (?P<named>[A-Z][A-Z0-9_]*)\n\s+valueFrom: \{secretKeyRef: "
            r"\{name: (?P<secret>[\w-]+), key: (?P<key>[\w.-]+))",
            doc,
        ):
            if match["inline"]:
                env[match["inline"]] = match["value"].strip().strip('"')
            else:
                env[match["named"]] = f"secret:{match['secret']}/{match['key']}"
        ports = [int(p) for p in re.findall(r"containerPort: (\d+)", doc)]
        mounts = re.findall(r"mountPath: ([^,}]+)", doc)
        found[command[1]] = Deployment(name[1], command[1], env, ports, mounts)
    return found


def settings_classes(package: str) -> list[type[BaseSettings]]:
    """``Settings`` and every settings class a service's package defines (its own prefix)."""
    classes: list[type[BaseSettings]] = [Settings]
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.__module__ == info.name
            ):
                classes.append(value)
    return classes


@cache
def variables_read(package: str) -> frozenset[str]:
    names = set()
    for cls in settings_classes(package):
        prefix = str(cls.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{field}".upper() for field in cls.model_fields}
    return frozenset(names)


def package_of(spec: ServiceSpec[Any]) -> str:
    return f"ncii_{spec.name}"


SPECS = all_services()


def test_every_service_has_a_deployment_and_every_deployment_is_a_service() -> None:
    commands = set(deployments())
    assert commands == {f"ncii-{name}" for name in SPECS}, (
        "deploy/k8s/services.yaml: one Deployment per service in services/ (command ncii-<name>)"
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_variable_a_deployment_sets_is_read_by_its_service(name: str) -> None:
    deployment = deployments()[f"ncii-{name}"]
    read = variables_read(package_of(SPECS[name]))
    unread = sorted(v for v in deployment.env if v not in read and not STANDARD.fullmatch(v))
    assert not unread, f"{deployment.name} sets variables {name} never reads: {unread}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_deployment_runs_as_its_service_with_its_own_keys_and_exports_over_otlp(
    name: str,
) -> None:
    deployment = deployments()[f"ncii-{name}"]
    env = deployment.env
    assert env["NCII_NATS_USER"] == name
    assert (
        env["NCII_NATS_PASSWORD"] == f"secret:ncii-nats-passwords/NCII_NATS_PASSWORD_{name.upper()}"
    )
    assert env["NCII_DATABASE_URL"] == f"secret:ncii-db/{name.upper()}_DATABASE_URL"
    if SPECS[name].reads_case_keys:
        assert env["NCII_MASTER_KEY"].startswith("secret:ncii-master-key/")
    else:  # it opens no case key, so it is given no master key (decision 57)
        assert "NCII_MASTER_KEY" not in env
    # a service without its own signing key cannot start (decision 23)
    assert env["NCII_SIGNING_KEY_FILE"].endswith(f"/{name}.ed25519")
    assert "NCII_SIGNING_PUBLIC_KEYS_FILE" in env
    assert env["NCII_OTLP_ENDPOINT"].startswith("http")
    assert deployment.ports == [SPECS[name].port]
    for variable, value in env.items():
        if variable.endswith("_FILE"):
            assert any(value.startswith(f"{mount.rstrip('/')}/") for mount in deployment.mounts), (
                f"{deployment.name}: {variable}={value} is on no mounted volume"
            )
