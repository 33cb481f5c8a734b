"""What importing a module pulls in, seen from a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

IO_PACKAGES = ("nats", "sqlalchemy", "fastapi", "starlette", "opentelemetry", "orjson")
"""What a pure domain must not load: the store, NATS, SQL, HTTP, telemetry."""


def top_level_packages_loaded(module: str, among: tuple[str, ...] = IO_PACKAGES) -> list[str]:
    """The packages of ``among`` that ``import module`` loads, sorted."""
    probe = (
        f"import json, sys, {module}; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(among)!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    result: list[str] = json.loads(loaded)
    return result
