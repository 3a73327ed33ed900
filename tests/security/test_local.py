"""Attacks on the local backend, where a job runs as the server's own account: deploying there without being
an admin, reading the server's secrets from the job's environment, serving server files through a job's
results (hard links, symlinks, FIFOs), and reading the data dir as another account of the machine."""

from __future__ import annotations

import os
import shlex
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import Attacked, attacked_server

SECRET = "s3cret-value"
OPT_IN = {"HPGC_LOCAL__ALLOW_USER_DEPLOY": "true", "HPGC_CALLBACKS__SECRET": SECRET}
PKG = {"Content-Type": "application/ogcapppkg+json"}


def command_package(pid: str, script: str, outputs: tuple[str, ...] = ("out",)) -> dict:
    """A command package running `sh -c script` on this machine; its outputs' paths are $1, $2..."""
    return {
        "processDescription": {
            "id": pid, "version": "1.0.0", "inputs": {},
            "outputs": {o: {"schema": {"type": "string", "contentMediaType": "text/plain"},
                            "additionalParameters": [{"name": "pattern", "value": "value"}]} for o in outputs},
            "additionalParameters": [{"name": "entry-point", "value": shlex.join(["sh", "-c", script, "sh"])}],
        },
        "executionUnit": {"type": "SLURM"},
    }


def run(client: httpx.Client, pid: str, inputs: dict | None = None, timeout: float = 60) -> dict:
    resp = client.post(f"/processes/{pid}/execution", json={"inputs": inputs or {}},
                       headers={"Prefer": "respond-async"})
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["jobID"]
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/jobs/{job_id}").json())["status"] not in ("successful", "failed", "dismissed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    return resp.json()


@pytest.fixture
def opted_in(tmp_path: Path) -> Iterator[Attacked]:
    """The administrator let every deployer deploy on the local backend; the server holds a callback secret."""
    yield from attacked_server(tmp_path, env=OPT_IN)


def test_a_deployer_who_is_no_admin_cannot_deploy_on_the_local_backend(target: Attacked) -> None:
    resp = target.alice.post("/processes", json=command_package("mine", "cat ../../hpgc.sqlite > \"$1\""),
                             headers=PKG)
    body = assert_problem(resp, 403)
    assert "local.allow_user_deploy" in body["detail"] and "admin" in body["detail"]
    assert target.alice.get("/processes/mine").status_code == 404
    # an administrator may, and the deployer still cannot replace it
    assert target.admin.post("/processes", json=command_package("theirs", "true"), headers=PKG).status_code == 201
    assert_problem(target.alice.put("/processes/theirs", json=command_package("theirs", "env"), headers=PKG), 403)


def test_a_job_sees_none_of_the_servers_settings(opted_in: Attacked) -> None:
    assert opted_in.alice.post("/processes", json=command_package("envdump", 'env; env > "$1"'),
                               headers=PKG).status_code == 201
    job = run(opted_in.alice, "envdump")
    assert job["status"] == "successful", job
    job_id = job["jobID"]
    stdout = opted_in.alice.get(f"/jobs/{job_id}/logs").json()["stdout"]
    result = opted_in.alice.get(f"/jobs/{job_id}/results/out")
    assert result.status_code == 200 and "PATH=" in result.text and "PATH=" in stdout
    for text in (stdout, result.text, opted_in.alice.get(f"/jobs/{job_id}/results").text):
        assert SECRET not in text
        leaked = [line for line in text.splitlines() if line.startswith("HPGC_") and
                  not line.startswith("HPGC_JOB_DIR=")]
        assert not leaked, leaked


ENVIRON_OF_CWLTOOL = """cwlVersion: v1.2
class: CommandLineTool
id: cwltool-environ
baseCommand: [sh, -c, 'tr "\\\\0" "\\\\n" < /proc/$PPID/environ; ls -l /proc/$PPID/fd']
inputs: {}
stdout: out.txt
outputs:
  out: {type: File, outputBinding: {glob: out.txt}}
"""


def test_a_cwl_job_finds_no_server_secret_in_its_cwltool_process(opted_in: Attacked) -> None:
    """cwltool runs forked from the CWL zygote: what /proc shows of its process (its environment as started,
    its open files) holds nothing of the server's: the zygote is a fresh process with the jobs' minimal
    environment, and a child keeps only stdin, stdout and stderr."""
    resp = opted_in.admin.post("/processes", content=ENVIRON_OF_CWLTOOL,
                               headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status_code == 201, resp.text
    job = run(opted_in.alice, "cwltool-environ")
    assert job["status"] == "successful", job
    text = opted_in.alice.get(f"/jobs/{job['jobID']}/results/out").text
    assert "PATH=" in text and SECRET not in text, text
    assert not [line for line in text.splitlines() if line.startswith("HPGC_")], text
    assert "hpgc.sqlite" not in text and "socket:" not in text, "a descriptor of the server's leaked into the job"


@pytest.mark.parametrize("how", ["ln", "ln -s"])
def test_a_link_to_a_server_file_is_not_served(opted_in: Attacked, how: str) -> None:
    script = f'{how} "$HPGC_JOB_DIR/../../hpgc.sqlite" "$1"; {how} "$HPGC_JOB_DIR/../../auth/dev-issuer-keys.json" "$2"'
    assert opted_in.alice.post("/processes", json=command_package("linker", script, ("db", "key")),
                               headers=PKG).status_code == 201
    job = run(opted_in.alice, "linker")
    assert job["status"] == "successful", job
    job_id = job["jobID"]
    by_value = opted_in.alice.post(  # a sync execute answers with the file's content
        "/processes/linker/execution", json={"inputs": {}, "outputs": {"db": {"transmissionMode": "value"}}})
    assert "not served" in assert_problem(by_value, 404)["detail"]
    for oid in ("db", "key"):
        body = assert_problem(opted_in.alice.get(f"/jobs/{job_id}/results/{oid}"), 404)
        assert "not served" in body["detail"], body
    for resp in (by_value, opted_in.alice.get(f"/jobs/{job_id}/results"), opted_in.alice.get(f"/jobs/{job_id}/logs")):
        assert "SQLite format 3" not in resp.text and '"d":' not in resp.text


def test_a_fifo_output_or_log_does_not_hang_the_server(opted_in: Attacked) -> None:
    assert opted_in.alice.post("/processes", json=command_package(
        "fifo", 'rm -f "$1"; mkfifo "$1"; rm stdout.log; mkfifo stdout.log'), headers=PKG).status_code == 201
    job = run(opted_in.alice, "fifo")
    assert job["status"] == "successful", job
    quick = httpx.Client(base_url=opted_in.url, headers=opted_in.alice.headers, timeout=10)
    with quick:
        assert_problem(quick.get(f"/jobs/{job['jobID']}/results/out"), 404)
        assert quick.get(f"/jobs/{job['jobID']}/logs").status_code == 200
        assert quick.get("/conformance").status_code == 200


def test_the_data_dir_is_private_even_with_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the server process inherits it
    try:
        servers = attacked_server(tmp_path)
        attacked = next(servers)
    finally:
        os.umask(old)
    try:
        job = run(attacked.alice, "echo", {"stringInput": "hi"})
        assert job["status"] == "successful", job
        data = attacked.server.data_dir

        def mode(p: Path) -> int:
            return stat.S_IMODE(p.stat().st_mode)

        assert mode(data) == 0o700
        for name in ("hpgc.sqlite", "hpgc.sqlite-wal", "auth/dev-issuer-keys.json"):
            if (data / name).exists() or name == "hpgc.sqlite":
                assert mode(data / name) == 0o600, name
        assert mode(data / "jobs") == 0o700 and mode(data / "jobs" / job["jobID"]) == 0o700
    finally:
        next(servers, None)
