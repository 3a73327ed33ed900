"""CWL jobs forked from the zygote (hpgc/backends/local/cwl_zygote.py): the same process, environment,
cancellation and failure rules as a cwltool subprocess, and what happens when the zygote itself dies."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from hpgc.backends.local.backend import LocalBackend
from hpgc.backends.local.settings import LocalBackendSettings
from hpgc.backends.local.zygote_client import LOST, zygote_environment
from hpgc.models.ogc import StatusCode
from hpgc.models.run import JobRef
from tests.unit.test_local_backend import REPO, _cwl_spec, _exited, _read_fifo, _start, _until, _until_final

SECRET = "zygote-test-secret"
SH_TOOL = """cwlVersion: v1.2
class: CommandLineTool
requirements: {{EnvVarRequirement: {{envDef: {{}}}}}}
baseCommand: [sh, -c, {script}]
inputs: {{}}
stdout: out.txt
outputs:
  out: {{type: File, outputBinding: {{glob: out.txt}}}}
"""


def sh_tool(tmp_path: Path, name: str, script: str) -> Path:
    tool = tmp_path / f"{name}.cwl"
    tool.write_text(SH_TOOL.format(script=json.dumps(script)))
    return tool


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalBackend:
    monkeypatch.setenv("HPGC_CALLBACKS__SECRET", SECRET)  # in the server's environment, never in a job's
    return LocalBackend(LocalBackendSettings(), tmp_path / "jobs")


async def test_a_cwl_job_is_forked_by_the_zygote_with_the_jobs_environment(backend: LocalBackend,
                                                                          tmp_path: Path) -> None:
    changed = await _start(backend)
    # the tool's parent is the cwltool process: its working directory, its environment as /proc shows it
    tool = sh_tool(tmp_path, "who", 'echo "$HPGC_JOB_DIR"; readlink /proc/$PPID/cwd; '
                                    'tr "\\0" "\\n" < /proc/$PPID/environ; echo; ps -o sid= -p $PPID')
    ref = JobRef(job_id="z1", external_id=await backend.submit(_cwl_spec("z1", tool, {})))
    st = await _until_final(backend, ref, changed)
    assert st.status == StatusCode.successful, (await backend.logs(ref)).stderr
    assert backend._zygote is not None and backend._zygote._proc is not None, "the zygote ran it"
    out = Path((await backend.outputs(ref))["out"]["path"]).read_text().splitlines()
    jd = str(backend.job_dir("z1"))
    assert out[0] == jd and out[1] == jd  # the job's environment (os.environ) and working directory
    assert SECRET not in "\n".join(out) and not [line for line in out if line.startswith("HPGC_")]
    pid = int((backend.job_dir("z1") / "pid").read_text())
    assert int(out[-1]) == pid, "the cwltool process leads its own session"
    assert pid != backend._zygote._proc.pid
    await backend.close()


async def test_the_zygote_starts_with_the_minimal_environment() -> None:
    env = zygote_environment(LocalBackendSettings(pass_env=["KEEP_*"]),
                             {"PATH": "/usr/bin", "HOME": "/h", "HPGC_AUTH__X": "s", "AWS_SECRET": "s",
                              "KEEP_ME": "1"})
    assert env == {"PATH": "/usr/bin", "HOME": "/h", "KEEP_ME": "1"}


async def test_a_dismissed_cwl_job_loses_its_whole_process_group(backend: LocalBackend, tmp_path: Path) -> None:
    changed = await _start(backend)
    tool = sh_tool(tmp_path, "sleeper", 'sleep 60 & echo $! > "$HPGC_JOB_DIR/child.pid"; wait')
    backend.job_dir("z2").mkdir(parents=True)
    os.mkfifo(backend.job_dir("z2") / "child.pid")
    ref = JobRef(job_id="z2", external_id=await backend.submit(_cwl_spec("z2", tool, {})))
    child = int(await _read_fifo(backend.job_dir("z2") / "child.pid"))
    await backend.cancel(ref)
    assert (await _until_final(backend, ref, changed)).status == StatusCode.dismissed
    assert await _exited(child), "the tool survived the dismiss"
    await backend.close()


async def test_a_failing_cwl_job_fails_with_cwltools_code(backend: LocalBackend, tmp_path: Path) -> None:
    changed = await _start(backend)
    tool = sh_tool(tmp_path, "broken", "echo broken >&2; exit 3")
    ref = JobRef(job_id="z3", external_id=await backend.submit(_cwl_spec("z3", tool, {})))
    st = await _until_final(backend, ref, changed)
    assert st.status == StatusCode.failed and st.exit_code == 1  # cwltool's permanentFail, as a subprocess's
    assert "permanentFail" in (st.message or "")
    await backend.close()


async def test_when_the_zygote_dies_its_jobs_fail_and_the_next_job_starts_a_new_one(backend: LocalBackend,
                                                                                   tmp_path: Path) -> None:
    changed = await _start(backend)
    tool = sh_tool(tmp_path, "sleeper", 'sleep 60 & echo $! > "$HPGC_JOB_DIR/child.pid"; wait')
    backend.job_dir("z4").mkdir(parents=True)
    os.mkfifo(backend.job_dir("z4") / "child.pid")
    ref = JobRef(job_id="z4", external_id=await backend.submit(_cwl_spec("z4", tool, {})))
    child = int(await _read_fifo(backend.job_dir("z4") / "child.pid"))
    assert backend._zygote is not None and backend._zygote._proc is not None
    first = backend._zygote._proc.pid
    os.kill(first, signal.SIGKILL)
    st = await _until_final(backend, ref, changed)
    assert st.status == StatusCode.failed and st.exit_code == LOST
    assert await _exited(child), "a job nobody can wait for any more is killed"
    spec = _cwl_spec("z5", REPO / "appkgs/echo/echo.cwl", {"stringInput": "again"})
    ref = JobRef(job_id="z5", external_id=await backend.submit(spec))
    assert (await _until_final(backend, ref, changed)).status == StatusCode.successful
    assert backend._zygote._proc is not None and backend._zygote._proc.pid != first
    await backend.close()


async def test_without_the_zygote_cwltool_is_a_subprocess(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(cwl_zygote=False), tmp_path)
    changed = await _start(backend)
    ref = JobRef(job_id="z6", external_id=await backend.submit(
        _cwl_spec("z6", REPO / "appkgs/echo/echo.cwl", {"stringInput": "x"})))
    assert (await _until(backend, ref, changed, lambda st: st.status.terminal)).status == StatusCode.successful
    assert backend._zygote is None
    await backend.close()
