"""Attacks through what issue 14 added: a package naming a CWL runner that does not exist (or a shell command),
and the steps listing of someone else's job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import Attacked, attacked_server

PKG = {"Content-Type": "application/ogcapppkg+json"}
HOSTILE = ["toil; touch /tmp/hpgc-pwned", "$(touch /tmp/hpgc-pwned)", "toil\nX-Evil: 1", "../../bin/sh",
           "TOIL", "", ["toil", "cwltool"], {"cmd": "toil"}, 7, "x" * 10000]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Attacked]:
    yield from attacked_server(tmp_path, {"HPGC_LOCAL__ALLOW_USER_DEPLOY": "true"})


def _package(pid: str, runner: object) -> dict:
    tool = {"cwlVersion": "v1.2", "class": "CommandLineTool", "id": pid, "baseCommand": "echo",
            "inputs": {"msg": "string"}, "outputs": {}}
    return {"processDescription": {"id": pid, "version": "1", "additionalParameters": {
                "parameters": [{"name": "cwl-runner", "value": [runner]}]}},
            "executionUnit": {"type": "application/cwl", "unit": tool}}


def test_hostile_runner_names_are_a_400_and_nothing_is_deployed(target: Attacked) -> None:
    for i, runner in enumerate(HOSTILE):
        resp = target.alice.post("/processes", json=_package(f"evil{i}", runner), headers=PKG)
        assert resp.status_code == 400, (runner, resp.text)
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert "cwl-runner" in resp.json()["detail"] and "\n" not in resp.json()["detail"]
        assert target.alice.get(f"/processes/evil{i}").status_code == 404
    assert not Path("/tmp/hpgc-pwned").exists()
    ok = target.alice.post("/processes", json=_package("fine", "toil"), headers=PKG)
    assert ok.status_code == 201, ok.text


def test_steps_of_another_users_job_are_not_found(target: Attacked) -> None:
    resp = target.alice.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}})
    assert resp.status_code in (200, 201), resp.text
    job_id = resp.headers["Location"].rsplit("/", 1)[1] if "Location" in resp.headers else resp.json()["jobID"]
    assert target.bob.get(f"/jobs/{job_id}/tasks").status_code == 404
    own = target.alice.get(f"/jobs/{job_id}/tasks")  # a local job: its steps run inside it
    assert own.status_code == 404 and own.headers["Content-Type"].startswith("application/problem+json")
    assert target.alice.get("/jobs/..%2f..%2fetc/tasks").status_code == 404
