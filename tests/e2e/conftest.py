"""The whole server as a subprocess, reached over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    proc: subprocess.Popen
    env: dict[str, str]
    port: int

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def start_server(data_dir: Path, port: int | None = None, env: dict[str, str] | None = None) -> Server:
    port = port or free_port()
    full_env = {**os.environ, "HPGC_AUTH__ENABLED": "false", **(env or {})}
    log = (data_dir.parent / f"server-{port}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpgc.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(url + "/conformance", timeout=1).status_code == 200:
                return Server(url, data_dir, proc, full_env, port)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    yield srv
    if srv.proc.poll() is None:
        srv.stop()
