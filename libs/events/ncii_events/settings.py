"""Settings from ``NCII_*`` environment variables, with embedded defaults that need nothing."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Embedded ports stay clear of the standard ones development machines already use (4222, 8222).
EMBEDDED_NATS_PORT = 14222
EMBEDDED_NATS_MONITOR_PORT = 18222


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NCII_", extra="ignore")
    #: With NCII_BASE_PORT, services take base+1.. and NATS monitoring this far above the base.
    BASE_PORT_MONITOR_OFFSET: ClassVar[int] = 100

    var_dir: Path = Field(
        default=Path("var"), description="embedded data: NATS store, SQLite, keys"
    )
    nats_url: str | None = Field(default=None, description="unset: use the embedded server")
    nats_user: str | None = None
    nats_password: str | None = None
    nats_ca_file: Path | None = Field(
        default=None,
        description="the CA that signed the NATS servers' certificates (with a tls:// URL)",
    )
    database_url: str | None = Field(
        default=None, description="unset: SQLite file var/<service>.db for each service"
    )
    master_key: str | None = Field(default=None, description="base64 of 32 bytes")
    master_key_file: Path | None = None
    signing_keys_dir: Path | None = Field(
        default=None,
        description="where `ncii signing-keys create` and `ncii run` keep every signer's private "
        "key (<signer>.ed25519) and public-keys.json; unset: var/keys",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="this process's private signing key (a service's own, or the operator's for "
        "the CLI); unset: <signing keys folder>/<service or operator>.ed25519",
    )
    signing_public_keys: dict[str, str | list[str]] | None = Field(
        default=None,
        description='every signer\'s public key(s), as JSON: {"intake": "<base64>", ...}; '
        "unset: the signing keys folder's public-keys.json",
    )
    signing_public_keys_file: Path | None = Field(
        default=None, description="a public-keys.json to read instead of the folder's"
    )
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, description="unset: the service's embedded port")
    base_port: int | None = Field(
        default=None,
        description="one setting for every port of `ncii run`: the embedded NATS at it, the "
        "services at base+1, base+2, ... in the order of their default ports, NATS monitoring "
        "at base+100; unset: the embedded defaults",
    )
    nats_port: int | None = Field(default=None, description="the embedded NATS server's port")
    nats_monitor_port: int | None = Field(default=None, description="its monitoring port")
    service_ports: dict[str, int] = Field(
        default_factory=dict,
        description='one service\'s port under `ncii run`, as JSON: {"intake": 19101}',
    )
    log_format: str = Field(default="text", description="text (development) or json")
    otel_exporter: Literal["console", "otlp"] | None = Field(
        default=None,
        description="console: print spans and metrics (development); otlp: send them and the "
        "log records over OTLP/HTTP to NCII_OTLP_ENDPOINT (or the standard "
        "OTEL_EXPORTER_OTLP_ENDPOINT); unset: otlp when one of those is set, else spans carry "
        "ids but nothing is recorded",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="an OTLP/HTTP collector's base URL (http://127.0.0.1:4318): spans go to "
        "/v1/traces, metrics to /v1/metrics, log records to /v1/logs",
    )
    otel_export_interval: float = Field(
        default=5.0,
        gt=0,
        description="seconds between exports of spans (at most) and of metrics",
    )
    stream_replicas: int = 1
    http_header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a client has to send a request's headers before it is cut off",
    )
    http_max_connections: int = Field(
        default=4096,
        ge=1,
        description="open connections above which new requests get 503 (keep it below the "
        "process's open-file limit)",
    )
    http_backlog: int = Field(default=2048, ge=1, description="connections waiting to be accepted")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="addresses or networks (CIDR) of the reverse proxies whose "
        "X-Forwarded-For is believed, comma-separated (10.0.0.0/8,192.0.2.7); unset: none, "
        "not even 127.0.0.1, and every caller is its own peer address",
    )
    # Per-principal rate limits (decision 24): a token bucket per key and route class, refilled
    # at *_per_minute up to *_burst. 429 with Retry-After beyond it.
    rate_lookup_per_minute: int = Field(
        default=100_000,
        ge=1,
        description="hashes and frames one key may look up a minute (an image hash with its 8 "
        "rotations counts 8, a video its frames)",
    )
    rate_lookup_burst: int = Field(
        default=100_000, ge=1, description="hashes and frames one key may look up at once"
    )
    rate_sightings_per_minute: int = Field(
        default=120, ge=1, description="sightings one key may report a minute"
    )
    rate_sightings_burst: int = Field(default=300, ge=1)
    rate_feedback_per_minute: int = Field(
        default=120, ge=1, description="match verdicts one key may send a minute"
    )
    rate_feedback_burst: int = Field(default=200, ge=1)
    rate_case_writes_per_minute: int = Field(
        default=120, ge=1, description="writes to cases (every POST that changes one) a minute"
    )
    rate_case_writes_burst: int = Field(default=300, ge=1)
    nats_transport: Literal["stock", "fast"] = Field(
        default="fast",
        description="stock: nats-py's public API only; fast: the private-API client (decision 13)",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        # a typo would otherwise be taken as a literal host name by uvicorn and silently match
        # nothing; "*" would let every client choose its address (security review F7)
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"NCII_TRUSTED_PROXIES: {item!r} is not an address or network (CIDR); "
                    "list your reverse proxies, e.g. 10.0.0.0/8,192.0.2.7"
                ) from None
        return value

    def embedded_nats_port(self) -> int:
        if self.nats_port is not None:
            return self.nats_port
        return self.base_port if self.base_port is not None else EMBEDDED_NATS_PORT

    def embedded_nats_monitor_port(self) -> int:
        if self.nats_monitor_port is not None:
            return self.nats_monitor_port
        if self.base_port is not None:
            return self.base_port + self.BASE_PORT_MONITOR_OFFSET
        return EMBEDDED_NATS_MONITOR_PORT

    def service_port(self, name: str, *, default: int, offset: int) -> int:
        """Where service ``name`` listens under ``ncii run``: its own setting, else
        ``base_port + offset``, else its ``default``."""
        if name in self.service_ports:
            return self.service_ports[name]
        return self.base_port + offset if self.base_port is not None else default

    def embedded_nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.embedded_nats_port()}"

    def effective_nats_url(self) -> str:
        return self.nats_url or self.embedded_nats_url()

    def telemetry_exporter(self) -> Literal["console", "otlp"] | None:
        """Where spans and metrics go: as set, else OTLP when an endpoint is configured."""
        if self.otel_exporter is not None:
            return self.otel_exporter
        if self.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return "otlp"
        return None

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / f'{service}.db').resolve()}"

    def master_key_path(self) -> Path:
        return self.master_key_file or self.var_dir / "master.key"

    def signing_keys_path(self) -> Path:
        return self.signing_keys_dir or self.var_dir / "keys"

    def signing_key_path(self, signer: str) -> Path:
        return self.signing_key_file or self.signing_keys_path() / f"{signer}.ed25519"

    def signing_public_keys_path(self) -> Path:
        return self.signing_public_keys_file or self.signing_keys_path() / "public-keys.json"
