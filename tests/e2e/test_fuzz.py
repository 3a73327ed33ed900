"""Schemathesis against the server's own OpenAPI document: whatever it generates, never a 5xx."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed (pip install -e '.[test]')")
def test_no_generated_request_gets_a_server_error(server: Server) -> None:
    out = subprocess.run(
        [SCHEMATHESIS, "run", f"{server.url}/api", "--checks", "not_a_server_error", "--max-examples", "12",
         "--seed", "20261124", "--no-color"],
        capture_output=True, text=True, timeout=600,
    )
    tail = out.stdout[-4000:]
    assert out.returncode == 0, tail
    counts = re.search(r"(\d+) generated, (\d+) passed", tail)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 100, tail
