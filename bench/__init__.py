"""Benchmarks (`make bench`): figures are printed and written to bench/results, never asserted."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A work directory under the system's temporary folder, removed when the bench process
    exits: a full run leaves gigabytes of logs and databases otherwise."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
