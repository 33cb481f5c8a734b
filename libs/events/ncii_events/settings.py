"""Settings from ``NCII_*`` environment variables, with embedded defaults that need nothing."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    otel_exporter: str | None = Field(
        default=None,
        description="console: print spans; unset: spans carry ids but are not recorded",
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
    nats_transport: Literal["stock", "fast"] = Field(
        default="fast",
        description="stock: nats-py's public API only; fast: the private-API client (decision 13)",
    )

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
