"""Schemathesis against the server's own OpenAPI document: whatever it generates, never a 5xx, and every
answer's status code and content type documented."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Server

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed (pip install -e '.[test]')")
def test_no_generated_request_gets_a_server_error(server: Server) -> None:
    out = subprocess.run(
        [SCHEMATHESIS, "run", f"{server.url}/api", "--checks",
         "not_a_server_error,status_code_conformance,content_type_conformance", "--max-examples", "12",
         "--seed", "20261124", "--no-color"],
        capture_output=True, text=True, timeout=600,
    )
    tail = out.stdout[-4000:]
    assert out.returncode == 0, tail
    counts = re.search(r"(\d+) generated, (\d+) passed", tail)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 100, tail


# Schemathesis draws bodies from the OpenAPI schemas, which never nest deep or grow huge: hostile documents
# (deep JSON and YAML of any shape, alias bombs, bodies of many MiB) are drawn here and sent to every
# operation that reads a body.
BODY_TARGETS = [
    ("POST", "/processes/echo/execution", "application/json"),
    ("POST", "/processes", "application/ogcapppkg+json"),
    ("POST", "/processes", "application/cwl+yaml"),
    ("POST", "/processes", "application/cwl+json"),
    ("PUT", "/processes/fuzzed", "application/cwl+yaml"),
]


def _deep(depth: int, shape: str) -> str:
    opener, closer = {"list": ("[", "]"), "dict": ('{"a":', "}"), "yaml-flow": ("{a: [", "]}")}[shape]
    return opener * depth + "1" + closer * depth


def _bomb(levels: int, width: int) -> str:
    text = "a: &a [" + ",".join(['"lol"'] * width) + "]\n"
    for i in range(levels - 1):
        text += f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * width) + "]\n"
    return text


def _hostile_documents() -> st.SearchStrategy[str]:
    deep = st.builds(_deep, st.integers(50, 20_000), st.sampled_from(["list", "dict", "yaml-flow"]))
    deep_inputs = deep.map(lambda d: '{"inputs": {"x": ' + d + "}}")
    deep_block = st.integers(50, 5_000).map(lambda n: "".join("  " * i + "a:\n" for i in range(n)))
    bombs = st.builds(_bomb, st.integers(3, 12), st.integers(2, 12))
    huge = st.integers(1, 17).map(lambda mib: '{"inputs": {"x": [' + ",".join(["1"] * (mib << 18)) + "]}}")
    return st.one_of(deep, deep_inputs, deep_block, bombs, huge)


def test_deep_and_huge_documents_get_no_server_error(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:

        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(doc=_hostile_documents(), target=st.sampled_from(BODY_TARGETS))
        def send(doc: str, target: tuple[str, str, str]) -> None:
            method, path, content_type = target
            resp = client.request(method, path, content=doc.encode(), headers={"Content-Type": content_type})
            assert resp.status_code < 500, (method, path, resp.status_code, resp.text[:500])
            assert resp.headers["Content-Type"].startswith("application/problem+json")

        send()
    log = (server.data_dir.parent / f"server-{server.port}.log").read_text(errors="replace")
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]
