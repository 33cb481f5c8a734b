"""Benchmarks (`make bench`): figures are printed and written to bench/results, never asserted."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from pathlib import Path

import httpx


def scratch_dir(prefix: str) -> Path:
    """A work directory under the system's temporary folder, removed when the bench process
    exits: a full run leaves gigabytes of logs and databases otherwise."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


async def wait_ready(url: str, service: str, *, seconds: float = 60.0) -> None:
    """Wait until the service at ``url`` says it is ready (``/readyz`` 200), polling every
    0.1 s for at most ``seconds``."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as probe:
        for _ in range(int(seconds * 10)):
            try:
                if (await probe.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{service} did not become ready")
