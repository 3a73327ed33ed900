"""The published HPGC client, `gmu-hpgc-api==0.1.0`, makes the HPGC notebooks' calls against a real hpgc,
without and with authentication (tests/e2e/gmu_client_script.py; what the client itself gets wrong:
docs/clients.md).

The client needs pydantic<2, so it lives in a venv of its own, kept between runs (HPGC_TEST_VENVS, default
/var/cache/hpgc-test-venvs) and rebuilt only when its marker file is missing or names another version.
Without PyPI and without that venv the tests are skipped, except in CI, where they must run.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Server, start_server

pytestmark = pytest.mark.e2e

CLIENT = "gmu-hpgc-api==0.1.0"
SCRIPT = Path(__file__).with_name("gmu_client_script.py")
OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
                     r"Max retries exceeded|Network is unreachable|No matching distribution found")


def _venv_root() -> Path:
    if "HPGC_TEST_VENVS" in os.environ:
        return Path(os.environ["HPGC_TEST_VENVS"])
    system = Path("/var/cache/hpgc-test-venvs")
    try:
        system.mkdir(parents=True, exist_ok=True)
        if os.access(system, os.W_OK):
            return system
    except OSError:
        pass
    return Path.home() / ".cache" / "hpgc-test-venvs"


def _build(venv: Path) -> str:
    """Create the venv and install the client; '' on success, else pip's complaint."""
    shutil.rmtree(venv, ignore_errors=True)
    python3 = shutil.which("python3") or sys.executable
    subprocess.run([python3, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          CLIENT], capture_output=True, text=True, timeout=300)
    return "" if pip.returncode == 0 else (pip.stdout + pip.stderr)[-3000:]


@pytest.fixture(scope="module")
def client_python() -> Path:
    venv = _venv_root() / CLIENT.replace("==", "-")
    marker = venv / ".hpgc-test-venv"
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        if marker.is_file() and marker.read_text().strip() == CLIENT and python.exists():
            check = subprocess.run([str(python), "-c", "import openapi_client"], capture_output=True, timeout=60)
            if check.returncode == 0:
                return python
        t0 = time.monotonic()
        problem = _build(venv)
        if problem:
            shutil.rmtree(venv, ignore_errors=True)
            if OFFLINE.search(problem) and not os.environ.get("CI"):
                pytest.skip(f"PyPI unreachable and no cached venv for {CLIENT}: {problem.strip()[-300:]}")
            pytest.fail(f"could not install {CLIENT} into {venv}:\n{problem}")
        marker.write_text(CLIENT + "\n")
        print(f"built the {CLIENT} venv in {time.monotonic() - t0:.1f} s")
    return python


def _run(python: Path, *args: str) -> str:
    t0 = time.monotonic()
    out = subprocess.run([str(python), str(SCRIPT), *args], capture_output=True, text=True, timeout=180, cwd=REPO)
    print(out.stdout)
    print(f"client script: {time.monotonic() - t0:.1f} s")
    assert out.returncode == 0 and out.stdout.rstrip().endswith("ALL OK"), (
        f"the client script failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr[-6000:]}")
    return out.stdout


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("gmu-open") / "data")
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # the notebooks' users deploy with an ordinary token: on the local backend that takes the administrator's
    # opt-in (a deployed package runs as the server's account; on Slurm it runs as the user)
    server = start_server(tmp_path_factory.mktemp("gmu-auth") / "data",
                          env={"HPGC_AUTH__ENABLED": "true", "HPGC_LOCAL__ALLOW_USER_DEPLOY": "true"})
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_notebook_calls(client_python: Path, open_server: Server) -> None:
    out = _run(client_python, open_server.url)
    assert "ok   results (typed)" in out and "ok   replace BandMath" in out


def test_notebook_calls_with_a_bearer_token(client_python: Path, auth_server: Server) -> None:
    token = subprocess.run(
        [sys.executable, "-m", "hpgc.cli", "token", "--user", "alice", "--scope", "hpgc:execute hpgc:deploy",
         "--data-dir", str(auth_server.data_dir)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    ).stdout.strip()
    out = _run(client_python, auth_server.url, token)
    assert "ok   auth" in out and "ok   undeploy BandMath" in out
