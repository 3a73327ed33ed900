"""Attacks against the real server: `hpgc serve` as a subprocess with authentication on (the development
issuer), reached over real HTTP, with ordinary users' tokens minted by `hpgc token`.

Each module tries one kind of attack the way an outsider with an ordinary token would, and asserts that it
has no effect (and that the answer is a clear 4xx, never a 500)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO, Server, start_server

pytestmark = pytest.mark.e2e


def mint(data_dir: Path, user: str, scope: str = "hpgc:execute") -> str:
    """A development-issuer token, as `hpgc token` prints it."""
    out = subprocess.run([sys.executable, "-m", "hpgc.cli", "token", "--user", user, "--scope", scope,
                          "--data-dir", str(data_dir)], capture_output=True, text=True, cwd=REPO, timeout=60,
                         check=True)
    return out.stdout.strip()


@dataclass
class Attacked:
    """A running server and ready-made clients: `alice` and `bob` may execute and deploy, `admin` is one."""

    server: Server
    alice: httpx.Client = field(init=False)
    bob: httpx.Client = field(init=False)
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.alice = self.client("alice", "hpgc:execute hpgc:deploy")
        self.bob = self.client("bob", "hpgc:execute hpgc:deploy")
        self.admin = self.client("root-admin", "hpgc:admin")

    def client(self, user: str, scope: str = "hpgc:execute") -> httpx.Client:
        token = mint(self.server.data_dir, user, scope)
        return httpx.Client(base_url=self.server.url, timeout=60,
                            headers={"Authorization": f"Bearer {token}"})

    @property
    def url(self) -> str:
        return self.server.url

    def log(self) -> str:
        return (self.server.data_dir.parent / f"server-{self.server.port}.log").read_text(errors="replace")


def attacked_server(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[Attacked]:
    server = start_server(tmp_path / "data", env={"HPGC_AUTH__ENABLED": "true", **(env or {})})
    attacked = Attacked(server)
    try:
        yield attacked
    finally:
        for c in (attacked.alice, attacked.bob, attacked.admin):
            c.close()
        if server.proc.poll() is None:
            server.stop()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Attacked]:
    """The server on its embedded defaults, auth on: what a deployer would run."""
    yield from attacked_server(tmp_path)


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        body = b"internal secret\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class InternalService:
    """An HTTP service on loopback that the server must never be made to reach: `hits` lists every request."""

    url: str
    hits: list[str]


@pytest.fixture
def internal_service() -> Iterator[InternalService]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield InternalService(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.hits)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
