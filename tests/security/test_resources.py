"""Resources, attacked through the real server: `hpgc:resources` values that try to smuggle #SBATCH options or
shell commands into the job script, and CWL resource expressions that would make the server run JavaScript."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import Attacked

INJECTIONS: list[Any] = [
    {"partition": "x\n#SBATCH --uid=0"},
    {"partition": "gpu; rm -rf /"},
    {"partition": "$(touch /tmp/hpgc-pwned)"},
    {"partition": "--uid=0"},
    {"memory": "1G\n#SBATCH --uid=0"},
    {"memory": "1G --uid=0"},
    {"time": "1:00:00\n#SBATCH --uid=0"},
    {"time": "`reboot`"},
    {"cpus": "2 --uid=0"},
    {"cpus": 2, "sbatch": "--uid=0"},  # an unknown key is refused, not ignored
    {"gpus": "1\n"},
    {"account": "geo\n#SBATCH --uid=0"},
    {"account": "$(id)"},
    {"qos": "high --uid=0"},
    {"qos": "--uid=0"},
    {"qos": "normal;reboot"},
    "--uid=0",
]


@pytest.mark.parametrize("member", INJECTIONS)
def test_resource_values_cannot_reach_the_script(target: Attacked, member: Any) -> None:
    resp = target.alice.post("/processes/echo/execution", headers={"Prefer": "respond-async"},
                             json={"inputs": {"stringInput": "x"}, "hpgc:resources": member})
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert "hpgc:resources" in resp.json()["detail"]
    assert target.alice.get("/jobs").json()["jobs"] == []  # nothing stored, nothing submitted


TOOL = """
cwlVersion: v1.2
class: CommandLineTool
id: js-resources
requirements:
  InlineJavascriptRequirement: {}
  ResourceRequirement: {coresMin: %s}
baseCommand: "true"
inputs:
  n: {type: int, default: 1}
outputs: []
"""


@pytest.mark.parametrize("expression", [
    "${ require('fs').writeFileSync('%(mark)s', 'x'); return 1; }",
    "$(require('child_process').execSync('touch %(mark)s') && 1)",
    "${ while (true) {} }",
])
def test_javascript_resources_are_refused_without_running_it(target: Attacked, tmp_path: Path,
                                                              expression: str) -> None:
    mark = tmp_path / "pwned"
    started = time.monotonic()
    resp = target.admin.post("/processes", headers={"Content-Type": "application/cwl+yaml"},
                             content=(TOOL % json.dumps(expression % {"mark": mark})).encode())
    assert resp.status_code == 400, resp.text
    assert "not JavaScript" in resp.json()["detail"]
    assert not mark.exists()
    assert time.monotonic() - started < 30  # the endless loop was never started
    assert "js-resources" not in [p["id"] for p in target.admin.get("/processes").json()["processes"]]
