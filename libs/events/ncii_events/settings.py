"""Settings from ``NCII_*`` environment variables, with embedded defaults that need nothing."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Embedded ports stay clear of the standard ones development machines already use (4222, 8222).
EMBEDDED_NATS_PORT = 14222
EMBEDDED_NATS_MONITOR_PORT = 18222


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NCII_", extra="ignore")

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
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, description="unset: the service's embedded port")
    log_format: str = Field(default="text", description="text (development) or json")
    otel_exporter: str | None = Field(
        default=None,
        description="console: print spans; unset: spans carry ids but are not recorded",
    )
    stream_replicas: int = 1

    def embedded_nats_url(self) -> str:
        return f"nats://127.0.0.1:{EMBEDDED_NATS_PORT}"

    def effective_nats_url(self) -> str:
        return self.nats_url or self.embedded_nats_url()

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.var_dir / f'{service}.db').resolve()}"

    def master_key_path(self) -> Path:
        return self.master_key_file or self.var_dir / "master.key"
