"""The `hpgc` client commands against a real `hpgc serve` with auth on and its development issuer: the device
login, every command, a `run --wait` in a pseudo-terminal, `logs --follow`, `results --download`."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Server, start_server

WRITER = r"""cwlVersion: v1.2
class: CommandLineTool
id: writer
label: Writes two files, reporting progress and a line to stderr each second
baseCommand: [sh, -c]
arguments:
  - position: 0
    valueFrom: |
      i=1
      while [ "$i" -le "$0" ]; do
        echo "step $i of $0" >&2
        hpgc-progress `expr $i \* 100 / $0` "step $i"
        sleep 1; i=`expr $i + 1`
      done
      head -c 3000 /dev/urandom > data.bin
      printf 'hello' > note.txt
inputs:
  steps: {type: int, default: 3, inputBinding: {position: 1}}
outputs:
  data: {type: File, outputBinding: {glob: data.bin}}
  note: {type: File, outputBinding: {glob: note.txt}}
"""


def hpgc(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hpgc.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def client_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPGC_")}
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}


def login(server: Server, env: dict[str, str], scope: str) -> subprocess.CompletedProcess[str]:
    """`hpgc login` as a user does it, the administrator approving the code on the server machine."""
    proc = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "login", server.url], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    shown = proc.stderr.readline() + proc.stderr.readline()
    match = re.search(r"confirm the code: ([A-Z]{4}-[A-Z]{4})", shown)
    assert match, shown
    approve = hpgc(env, "device-approve", match.group(1), "--user", "alice", "--scope", scope,
                   "--data-dir", str(server.data_dir))
    assert approve.returncode == 0, approve.stderr
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, shown + err)


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data", env={"HPGC_AUTH__ENABLED": "true"})
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def test_device_login_and_every_command(auth_server: Server, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    done = login(auth_server, env, "hpgc:execute hpgc:deploy hpgc:admin")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"logged in to {auth_server.url} as alice (hpgc:execute hpgc:deploy hpgc:admin)"
    cached = list((tmp_path / "cfg/hpgc/tokens").glob("*.json"))
    assert len(cached) == 1 and stat.S_IMODE(cached[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(cached[0].parent.stat().st_mode) == 0o700
    token = json.loads(cached[0].read_text())["access_token"]
    assert token not in done.stdout + done.stderr, "the token is never printed"

    procs = hpgc(env, "processes", "--json")  # no --url: the server of the last login
    assert procs.returncode == 0, procs.stderr
    assert {"echo", "sleep"} <= {p["id"] for p in json.loads(procs.stdout)}
    assert "stringInput: string [1..1]" in hpgc(env, "describe", "echo").stdout

    (tmp_path / "writer.cwl").write_text(WRITER)
    deployed = hpgc(env, "deploy", str(tmp_path / "writer.cwl"))
    assert (deployed.returncode, deployed.stdout.strip()) == (0, "deployed writer"), deployed.stderr
    assert hpgc(env, "deploy", str(tmp_path / "writer.cwl"), "--replace").stdout.strip() == "replaced writer"

    started = hpgc(env, "run", "writer", "-i", "steps=3", "--async")
    assert started.returncode == 0, started.stderr
    job = started.stdout.strip()
    follow = hpgc(env, "logs", job, "--follow")
    assert follow.returncode == 0, follow.stderr
    assert [f"step {i} of 3" for i in (1, 2, 3)] == re.findall(r"step \d of 3", follow.stderr)
    assert re.search(r"^== \S+ successful 100% finished$", follow.stdout, re.M), follow.stdout
    assert json.loads(hpgc(env, "status", job, "--json").stdout)["status"] == "successful"

    down = hpgc(env, "results", job, "--download", str(tmp_path / "dl"))
    assert down.returncode == 0, down.stderr
    job_dir = auth_server.data_dir / "jobs" / job
    for name, produced in (("data.bin", "data"), ("note.txt", "note.txt")):
        original = next(job_dir.rglob(name))
        assert (tmp_path / "dl" / produced).read_bytes() == original.read_bytes(), name
    results = json.loads(hpgc(env, "results", job, "--json").stdout)
    assert set(results) == {"data", "note"}
    assert results["data"]["href"].split("?")[0].endswith(f"/jobs/{job}/results/data")
    assert "sig=" in results["data"]["href"]  # with auth on, a signed link (it opens without the token)

    again = hpgc(env, "rerun", job, "-i", "steps=1", "--json")
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["job"]["processID"] == "writer" and rerun["job"]["jobID"] != job
    listed = json.loads(hpgc(env, "jobs", "--process", "writer", "--status", "successful", "--since", "1h",
                             "--json").stdout)
    assert [j["jobID"] for j in listed] == [rerun["job"]["jobID"], job]
    table = hpgc(env, "jobs").stdout.splitlines()
    assert table[0].split() == ["JOB", "PROCESS", "STATUS", "PROGRESS", "CREATED", "MESSAGE"] and len(table) == 3

    long = hpgc(env, "run", "sleep", "-i", "seconds=60", "--async").stdout.strip()
    dismissed = hpgc(env, "dismiss", long)
    assert (dismissed.returncode, dismissed.stdout.strip()) == (0, f"{long} dismissed")
    assert hpgc(env, "undeploy", "writer").stdout.strip() == "undeployed writer"

    # exit codes: 1 job failed, 2 usage, 3 auth, 4 unreachable; each error one line on stderr
    failed = hpgc(env, "run", "echo", "-i", "stringInput=x", "-i", "doubleInput=notanumber")
    assert (failed.returncode, failed.stderr.strip()) == (2, "hpgc: input 'doubleInput': 'notanumber' is not a number")
    missing = hpgc(env, "status", "no-such-job")
    assert (missing.returncode, missing.stderr.strip()) == (2, "hpgc: No such job: job 'no-such-job' does not exist")
    bad = hpgc({**env, "HPGC_TOKEN": "garbage"}, "jobs")
    assert bad.returncode == 3 and bad.stderr.startswith("hpgc: Unauthorized: ") and bad.stderr.count("\n") == 1
    down_url = hpgc(env, "jobs", "--url", "http://127.0.0.1:9")
    assert down_url.returncode == 4 and down_url.stderr.startswith("hpgc: cannot reach http://127.0.0.1:9/jobs")
    usage = hpgc(env, "run")
    assert usage.returncode == 2
    assert hpgc(env, "logout").stdout.strip() == f"logged out of {auth_server.url}"
    assert not cached[0].exists()
    assert hpgc(env, "jobs").returncode == 3


def test_a_failing_job_exits_1(auth_server: Server, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    assert login(auth_server, env, "hpgc:execute hpgc:deploy hpgc:admin").returncode == 0
    (tmp_path / "fails.cwl").write_text("cwlVersion: v1.2\nclass: CommandLineTool\nid: fails\n"
                                        "baseCommand: [sh, -c, 'echo broken >&2; exit 3']\ninputs: {}\noutputs: {}\n")
    assert hpgc(env, "deploy", str(tmp_path / "fails.cwl")).returncode == 0
    run = hpgc(env, "run", "fails")
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.search(r"^job \S+ failed: ", run.stdout, re.M), run.stdout


def test_run_wait_in_a_terminal_draws_a_live_progress_bar(auth_server: Server, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    assert login(auth_server, env, "hpgc:execute").returncode == 0
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hpgc.cli", "run", "sleep", "-i", "seconds=5"], env=env,
                            cwd=REPO, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            screen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=30) == 0, screen.decode(errors="replace")
    text = screen.decode(errors="replace")
    assert re.search(r"\r\x1b\[K\S+  \[", text), "the bar is redrawn in place"
    percents = {int(p) for p in re.findall(r"\]\s+(\d+)%\s+(?:running|successful)", text)}
    assert len(percents - {0, 5, 100}) >= 3, text  # sleep reports 0, 20, 40, 60, 80 of its own
    assert re.search(r"\[#{24}\]\s+100%\s+successful", text)
    assert "message: slept 5 s" in text
