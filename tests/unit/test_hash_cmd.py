"""``ncii hash`` through Typer: output, exit codes, and submission to a real HTTP server."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import typer
from ncii_cli.hash_cmd import canonical_body, hash_command, idempotency_key
from ncii_cli.hasher import HashSubmission
from PIL import Image
from typer.testing import CliRunner, Result

API_KEY = "test-key-123"
NO_ENV: dict[str, str | None] = {"NCII_API_KEY": None, "NCII_INTAKE_URL": None}


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """ncii"""

    app.command("hash")(hash_command)
    return app


def _run(args: list[str], env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(_app(), ["hash", *args], env={**NO_ENV, **(env or {})})


def _photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:120, 0:160]
    base = np.stack([x * 1.5, 128 + 100 * np.sin(y / 9.0), (x + y) % 255], axis=2)
    noise = rng.integers(0, 40, size=base.shape)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


# ------------------------------------------------------------------ a real intake stub


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class IntakeStub:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    status: int = 201
    reply: bytes = b'{"accepted": true}'
    content_type: str = "application/json"


@pytest.fixture
def intake() -> Iterator[IntakeStub]:
    stub = IntakeStub(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            stub.requests.append(
                Recorded(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            self.send_response(stub.status)
            self.send_header("Content-Type", stub.content_type)
            self.send_header("Content-Length", str(len(stub.reply)))
            self.end_headers()
            self.wfile.write(stub.reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ output


def test_stdout_is_a_valid_submission_and_names_stay_on_stderr(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "jane-doe-private.png")
    result = _run([str(photo)])
    assert result.exit_code == 0, result.output
    submission = HashSubmission.model_validate_json(result.stdout)
    assert [i.algorithm for i in submission.hashes] == ["pdq", "md5"]
    assert submission.hashes[1].value == hashlib.md5(photo.read_bytes()).hexdigest()  # noqa: S324
    assert "jane-doe" not in result.stdout
    assert "jane-doe-private.png: image 160x120" in result.stderr


def test_dihedral_flag_adds_the_eight_dihedral_hashes(tmp_path: Path) -> None:
    result = _run([str(_photo(tmp_path / "a.png")), "--dihedral"])
    assert result.exit_code == 0, result.output
    pdq = json.loads(result.stdout)["hashes"][0]
    assert len(pdq["dihedral"]) == 8
    assert pdq["dihedral"][0] == pdq["value"]


def test_without_dihedral_flag_there_is_no_dihedral_field(tmp_path: Path) -> None:
    result = _run([str(_photo(tmp_path / "a.png"))])
    assert "dihedral" not in json.loads(result.stdout)["hashes"][0]


def test_low_quality_pdq_is_printed_with_a_clear_warning_on_stderr(tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(flat)
    result = _run([str(flat)])
    assert result.exit_code == 0, result.output
    pdq = json.loads(result.stdout)["hashes"][0]
    assert pdq["algorithm"] == "pdq" and pdq["quality"] < 50
    assert (
        f"quality {pdq['quality']} is below 50: too low to match on; "
        "intake will refuse this PDQ hash"
    ) in result.stderr


def test_many_files_are_all_hashed_with_progress(tmp_path: Path) -> None:
    files = [str(_photo(tmp_path / f"p{i}.png", seed=i)) for i in range(6)]
    result = _run(files)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["hashes"]) == 12
    assert result.stderr.count(": image 160x120") == 6


def test_help_shows_an_example() -> None:
    result = _run(["--help"])
    assert result.exit_code == 0
    assert "ncii hash photo.jpg --dihedral" in result.stdout


# ------------------------------------------------------------------ exit codes


def test_text_file_exits_1_and_prints_no_json(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    result = _run([str(notes)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "notes.txt" in result.stderr and "not an image or video" in result.stderr


def test_one_bad_file_among_good_ones_exits_1_and_prints_nothing(tmp_path: Path) -> None:
    good = _photo(tmp_path / "a.png")
    result = _run([str(good), str(tmp_path / "missing.jpg")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "missing.jpg: no such file" in result.stderr


def test_no_files_is_a_usage_error_exit_2() -> None:
    assert _run([]).exit_code == 2


def test_submit_without_api_key_is_a_usage_error_exit_2(tmp_path: Path) -> None:
    result = _run([str(_photo(tmp_path / "a.png")), "--submit", "case-1"])
    assert result.exit_code == 2
    assert "NCII_API_KEY" in result.output


@pytest.mark.parametrize("case_id", ["..", "a/b", "", "case id"])
def test_submit_with_malformed_case_id_is_a_usage_error_exit_2(
    tmp_path: Path, case_id: str
) -> None:
    result = _run([str(_photo(tmp_path / "a.png")), "--submit", case_id, "--key", API_KEY])
    assert result.exit_code == 2


# ------------------------------------------------------------------ --submit


def test_submit_posts_hashes_only_with_bearer_and_idempotency_key(
    tmp_path: Path, intake: IntakeStub
) -> None:
    photo = _photo(tmp_path / "jane-doe-private.png")
    result = _run(
        [str(photo), "--dihedral", "--submit", "case-123", "--intake-url", intake.url],
        env={"NCII_API_KEY": API_KEY},
    )
    assert result.exit_code == 0, result.output
    assert len(intake.requests) == 1
    sent = intake.requests[0]
    assert sent.path == "/v1/cases/case-123/hashes"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"

    body = json.loads(sent.body)
    assert body == json.loads(result.stdout)
    assert set(body) == {"hashes"}
    submission = HashSubmission.model_validate(body)
    assert sent.body == canonical_body(submission)
    assert sent.headers["idempotency-key"] == idempotency_key("case-123", submission)
    assert len(sent.headers["idempotency-key"]) == 64
    assert b"jane" not in sent.body and str(tmp_path).encode() not in sent.body
    assert "submitted 2 hash(es) to case case-123 (HTTP 201)" in result.stderr


def test_retrying_the_same_submission_sends_the_same_idempotency_key(
    tmp_path: Path, intake: IntakeStub
) -> None:
    photo = str(_photo(tmp_path / "a.png"))
    args = [photo, "--submit", "case-123", "--intake-url", intake.url, "--key", API_KEY]
    assert _run(args).exit_code == 0
    assert _run(args).exit_code == 0
    other_case = [photo, "--submit", "case-999", "--intake-url", intake.url, "--key", API_KEY]
    assert _run(other_case).exit_code == 0
    keys = [r.headers["idempotency-key"] for r in intake.requests]
    assert keys[0] == keys[1] != keys[2]


def test_intake_url_and_key_come_from_the_environment(tmp_path: Path, intake: IntakeStub) -> None:
    result = _run(
        [str(_photo(tmp_path / "a.png")), "--submit", "c1"],
        env={"NCII_INTAKE_URL": intake.url + "/", "NCII_API_KEY": "from-env"},
    )
    assert result.exit_code == 0, result.output
    assert intake.requests[0].path == "/v1/cases/c1/hashes"
    assert intake.requests[0].headers["authorization"] == "Bearer from-env"


def test_http_error_exits_1_with_status_and_problem_detail(
    tmp_path: Path, intake: IntakeStub
) -> None:
    intake.status = 422
    intake.content_type = "application/problem+json"
    intake.reply = json.dumps(
        {"type": "about:blank", "title": "Unprocessable", "status": 422, "detail": "case closed"}
    ).encode()
    result = _run(
        [str(_photo(tmp_path / "a.png")), "--submit", "c1", "--intake-url", intake.url],
        env={"NCII_API_KEY": API_KEY},
    )
    assert result.exit_code == 1
    assert "HTTP 422: case closed" in result.stderr
    assert json.loads(result.stdout)["hashes"]  # the hashes were still printed


def test_non_json_http_error_shows_the_response_text(tmp_path: Path, intake: IntakeStub) -> None:
    intake.status = 503
    intake.content_type = "text/plain"
    intake.reply = b"maintenance"
    result = _run(
        [str(_photo(tmp_path / "a.png")), "--submit", "c1", "--intake-url", intake.url],
        env={"NCII_API_KEY": API_KEY},
    )
    assert result.exit_code == 1
    assert "HTTP 503: maintenance" in result.stderr


def test_unreachable_intake_exits_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = _run(
        [str(_photo(tmp_path / "a.png")), "--submit", "c1", "--intake-url", url],
        env={"NCII_API_KEY": API_KEY},
    )
    assert result.exit_code == 1
    assert "could not reach intake" in result.stderr
