"""The CLI's start-up budget, held without a clock: `ncii --help` and `ncii hash` must not import
the service runtime, SQL, FastAPI or NATS (decision 18). Each case runs in a fresh interpreter,
since this test process has imported all of them already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

SERVER_SIDE = ("sqlalchemy", "fastapi", "nats", "uvicorn", "alembic", "faststream")
SERVER_SIDE_OURS = ("ncii_events.service", "ncii_events.store", "ncii_events.db")
HASHING = ("numpy", "PIL", "pdqhash", "httpx")

_PROBE = """
import json, sys
sys.argv = ["ncii", *json.loads(sys.argv[1])]
try:
    if sys.argv[1:] == ["--import-only"]:
        import ncii_cli.main
    else:
        from ncii_cli.main import app
        app()
except SystemExit as exit:
    assert not exit.code, exit.code
with open({out!r}, "w") as f:
    json.dump(sorted(sys.modules), f)
"""


def _modules_after(args: list[str], tmp_path: Path) -> set[str]:
    out = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", _PROBE.format(out=str(out)), json.dumps(args)],
        check=True,
        capture_output=True,
    )
    return set(json.loads(out.read_text()))


def _loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(
        m for m in modules if m in packages or m.startswith(tuple(p + "." for p in packages))
    )


@pytest.mark.parametrize("args", [["--import-only"], ["--help"], ["keys", "--help"]])
def test_importing_the_cli_and_its_help_load_nothing_of_the_server_side_nor_the_hashers(
    args: list[str], tmp_path: Path
) -> None:
    modules = _modules_after(args, tmp_path)
    assert _loaded(modules, SERVER_SIDE + SERVER_SIDE_OURS + HASHING) == []
    assert "ncii_intake" not in modules and "ncii_hashmatch" not in modules


def test_hashing_a_file_loads_the_hashers_but_nothing_of_the_server_side(tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (120, 30, 200)).save(image)
    modules = _modules_after(["hash", str(image)], tmp_path)
    assert _loaded(modules, SERVER_SIDE + SERVER_SIDE_OURS) == []
    assert "pdqhash" in modules  # the probe did hash
