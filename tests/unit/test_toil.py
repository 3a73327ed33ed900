"""CWL under Toil on Slurm: which runner a job gets, the leader's script, the dismiss command (run by /bin/sh
against stub Slurm commands), the watcher's readings of Toil's and Slurm's output, and the steps listing."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from hpgc.backends.base import BackendError
from hpgc.backends.runner import choose_runner
from hpgc.backends.slurm import toil, toil_watch
from hpgc.backends.slurm.commands.cancel import cancelled
from hpgc.backends.slurm.commands.toil_cancel import toil_cancel_command
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobid import SlurmJobId
from hpgc.backends.slurm.script import render
from hpgc.models.ogc import ProcessDescription
from hpgc.models.run import Resources, RunSpec
from hpgc.packages.cwl_runner import asked_runner, is_parallel_workflow

DATA = Path(__file__).resolve().parents[1] / "data" / "toil"
JD = "/data/hpgc/alice/0b7c-12"


def _cluster(**kw: object) -> ClusterSettings:
    base: dict[str, object] = {"host": "login", "known_hosts": "/etc/ssh/known", "user": "alice",
                               "work_root": "/data/hpgc", "toil_cwl_runner": "/opt/toil/bin/toil-cwl-runner",
                               "container_runtime": "apptainer", "image_cache": "/data/images"}
    return ClusterSettings(**{**base, **kw})


def _spec(**kw: object) -> RunSpec:
    base: dict[str, object] = {"job_id": "0b7c-12", "process_id": "wf", "kind": "cwl", "cwl_workflow": True}
    return RunSpec(**{**base, **kw})


def _description(value: object) -> ProcessDescription:
    return ProcessDescription.model_validate({"id": "wf", "version": "1", "additionalParameters": {
        "parameters": [{"name": "cwl-runner", "value": [value]}]}})


# --- which runner ---------------------------------------------------------------------------------------------
def test_a_package_asks_with_the_additional_parameter() -> None:
    assert asked_runner(_description("toil")) == "toil"
    assert asked_runner(_description("cwltool")) == "cwltool"
    assert asked_runner(ProcessDescription.model_validate({"id": "wf", "version": "1"})) is None


@pytest.mark.parametrize("value", ["toil; rm -rf /", "Toil", "toil\n", "../toil", "", 3, {"a": 1}, "x" * 5000])
def test_a_runner_that_does_not_exist_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="cwl-runner") as exc:
        asked_runner(_description(value))
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 300


def test_parallel_workflow_is_scatter_or_several_steps() -> None:
    tool = {"class": "CommandLineTool", "id": "#main"}
    one = {"class": "Workflow", "id": "#main", "steps": [{"id": "a", "run": "#t"}]}
    scattered = {"class": "Workflow", "id": "#main", "steps": [{"id": "a", "run": "#t", "scatter": "x"}]}
    two = {"class": "Workflow", "id": "#main", "steps": {"a": {"run": "#t"}, "b": {"run": "#t"}}}
    assert not is_parallel_workflow(tool) and not is_parallel_workflow(one)
    assert is_parallel_workflow(scattered) and is_parallel_workflow(two)
    assert is_parallel_workflow({"$graph": [tool | {"id": "#t"}, two]})


@pytest.mark.parametrize(("asked", "workflow", "default", "has_toil", "expected"), [
    (None, False, "cwltool", True, "cwltool"), (None, True, "cwltool", True, "toil"),
    (None, True, "cwltool", False, "cwltool"), (None, False, "toil", True, "toil"),
    (None, False, "toil", False, "cwltool"), ("cwltool", True, "toil", True, "cwltool"),
    ("toil", False, "cwltool", True, "toil")])
def test_choose_runner(asked: str | None, workflow: bool, default: str, has_toil: bool, expected: str) -> None:
    spec = _spec(cwl_runner=asked, cwl_workflow=workflow)
    assert choose_runner(spec, default, has_toil) == expected  # type: ignore[arg-type]


def test_asking_for_toil_where_there_is_none_fails_clearly() -> None:
    with pytest.raises(BackendError, match="no Toil"):
        render(_spec(cwl_runner="toil"), _cluster(toil_cwl_runner=None), JD)


# --- the leader's script ----------------------------------------------------------------------------------------
def test_leader_script_is_a_small_job_running_toil() -> None:
    c = _cluster(partition="debug", account="hpgc", qos="normal", sbatch_options=["--exclusive", "--mem=1G"])
    text = render(_spec(resources=Resources(cpus=8, memory_mb=64000, nodes=2, partition="big")), c, JD)
    sb = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --cpus-per-task=1" in sb and "#SBATCH --mem=2048M" in sb and "#SBATCH --nodes=1" in sb
    assert "#SBATCH --partition=big" in sb and "#SBATCH --account=hpgc" in sb
    line = next(x for x in text.splitlines() if "toil-cwl-runner" in x)
    argv = shlex.split(line.split(" > ")[0])
    assert argv[:3] == ["/opt/toil/bin/toil-cwl-runner", "--batchSystem", "slurm"]
    assert argv[argv.index("--jobStore") + 1] == f"{JD}/toil/jobstore"
    assert argv[argv.index("--batchLogsDir") + 1] == f"{JD}/toil/logs"
    assert argv[argv.index("--slurmPartition") + 1] == "big" and argv[argv.index("--slurmQoS") + 1] == "normal"
    assert "--singularity" in argv and argv[-2:] == ["tool.cwl", "job.json"]
    assert line.endswith("> outputs.json")
    assert "export CWL_SINGULARITY_CACHE=/data/images" in text
    args = shlex.split(next(x for x in text.splitlines() if x.startswith("export TOIL_SLURM_ARGS=")).split("=", 1)[1])
    # Toil refuses CPU and memory options there (they are each step's own); the name tags the steps
    assert shlex.split(args[0]) == ["--job-name=hpgc-0b7c-12.step", "--account=hpgc", "--exclusive"]


def test_a_single_tool_stays_with_cwltool() -> None:
    text = render(_spec(cwl_workflow=False), _cluster(), JD)
    assert "toil" not in text.lower() and "cwltool --quiet" in text
    assert toil.job_files(_spec(cwl_workflow=False), _cluster()) == {}
    assert list(toil.job_files(_spec(), _cluster())) == ["bin/hpgc-toil-watch"]


def test_leader_keeps_toils_exit_code_and_runs_the_watcher(tmp_path: Path) -> None:
    # the command section, run for real with stand-ins for python3 and toil-cwl-runner
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "python3").write_text("#!/bin/sh\necho \"watch $*\" >> calls\n")
    (bin_ / "toil").write_text("#!/bin/sh\necho 'Toil failed: boom' > toil/leader.log\nexit 7\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    lines = toil.command_lines(_spec(), _cluster(toil_cwl_runner=str(bin_ / "toil")), JD)
    script = "\n".join([f"export PATH={bin_}:$PATH", *lines, "code=$?", 'echo "code=$code"'])
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert "code=7" in out.stdout and "Toil failed: boom" in out.stderr
    # the watcher runs beside Toil (it may not have started before the stand-in ended) and once after it
    assert any(line.startswith("python3 bin/hpgc-toil-watch hpgc-0b7c-12.step ") for line in lines)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[-1].startswith("watch bin/hpgc-toil-watch --once hpgc-0b7c-12.step ")


# --- dismiss -----------------------------------------------------------------------------------------------------
def _stubs(tmp_path: Path, leader_gone_after: int) -> Path:
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "scancel").write_text(f"#!/bin/sh\necho \"scancel $*\" >> {tmp_path}/calls\n")
    (bin_ / "squeue").write_text(
        f"#!/bin/sh\nn=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n+1)) > {tmp_path}/n\n"
        f"[ $n -lt {leader_gone_after} ] && echo 42\nexit 0\n")
    (bin_ / "sleep").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    return bin_


def _run(command: str, bin_: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PATH": f"{bin_}:/usr/bin:/bin"})


def test_dismiss_cancels_the_leader_then_its_steps_twice(tmp_path: Path) -> None:
    jd = tmp_path / "job"
    (jd / "toil").mkdir(parents=True)
    bin_ = _stubs(tmp_path, leader_gone_after=3)
    out = _run(toil_cancel_command(SlurmJobId.parse("42"), "hpgc-x", str(jd)), bin_)
    assert out.returncode == 0 and cancelled(out.returncode, out.stderr)
    calls = (tmp_path / "calls").read_text().splitlines()
    me = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert calls == ["scancel 42", f"scancel -u {me} --name=hpgc-x.step", f"scancel -u {me} --name=hpgc-x.step"]
    assert (tmp_path / "n").read_text().strip() == "4"  # it waited until the leader was gone


def test_dismiss_of_a_plain_job_is_one_scancel(tmp_path: Path) -> None:
    bin_ = _stubs(tmp_path, leader_gone_after=0)
    out = _run(toil_cancel_command(None, "hpgc-'$(touch pwned)'", str(tmp_path / "job")), bin_)
    assert out.returncode == 0
    assert (tmp_path / "calls").read_text().splitlines() == ["scancel --name=hpgc-'$(touch pwned)'"]
    assert not (tmp_path / "pwned").exists()


# --- the watcher -------------------------------------------------------------------------------------------------
def test_watcher_reads_the_recorded_leader_log_and_logs_folder() -> None:
    # Toil 9.6.0 on the test cluster: the 8-tile dNBR (24 step jobs on node1 and node2), sacct as the watcher asks
    log = (DATA / "leader.log").read_text()
    issued = toil_watch.issued_steps(log)
    names = (DATA / "logs.txt").read_text().split()
    logs = toil_watch.step_logs(names)
    states = toil_watch.slurm_states((DATA / "sacct.txt").read_text(), (DATA / "squeue.txt").read_text())
    tasks = toil_watch.tasks_of(issued, logs, states)
    expected = json.loads((DATA / "expected_tasks.json").read_text())
    assert tasks == expected
    assert toil_watch.progress_line(tasks) == (DATA / "expected_progress.txt").read_text().strip()


def test_progress_line() -> None:
    mk = lambda step, state: {"step": step, "state": state}  # noqa: E731
    assert toil_watch.progress_line([]) == "0 Toil leader started; no step submitted yet"
    line = toil_watch.progress_line([mk("a.0", "COMPLETED"), mk("a.1", "RUNNING"), mk("b", "PENDING"),
                                     mk("c", "FAILED")])
    assert line == "25 1/4 steps finished; running: a.1; failed: c"
    assert toil_watch.progress_line([mk("a", "COMPLETED")]).startswith("99 1/1")


def test_hostile_step_names_cannot_break_a_line() -> None:
    log = "Issued job 'CWLJob' evil\nname|x kind-CWLJob/instance-1 v1 with job batch system ID: 3 and cores: 1\n"
    log += "Issued job 'CWLJob' a\x1b[2Jb kind-CWLJob/instance-2 v1 with job batch system ID: 4 and cores: 1\n"
    issued = toil_watch.issued_steps(log)
    assert all(toil_watch.clean(n) == n and "\n" not in n and "|" not in n for n in issued.values())


# --- the listing hpgc serves -------------------------------------------------------------------------------------
def test_parse_tasks_checks_every_field_again() -> None:
    doc = {"tasks": [
        {"step": "nbr_pre.0", "slurm_id": "101", "state": "COMPLETED", "exit_code": "0:0", "node": "node1",
         "stderr": "toil/logs/toil_abc.1.101.err.log"},
        {"step": "x\n\x00y" * 100, "slurm_id": "1; rm -rf /", "state": "RUNNING\n", "node": "n" * 999,
         "stdout": "../../../etc/passwd"},
        "not a task", {"step": ["list"], "slurm_id": 7, "state": None}]}
    tasks = toil.parse_tasks(json.dumps(doc), JD)
    assert tasks[0] == {"index": 0, "name": "nbr_pre.0", "status": "successful", "slurmJobId": "101",
                        "slurmState": "COMPLETED", "node": "node1",
                        "stderr": f"{JD}/toil/logs/toil_abc.1.101.err.log"}
    evil = tasks[1]
    assert evil["slurmJobId"] is None and "stdout" not in evil and evil["status"] == "running"
    assert "\n" not in evil["name"] and "\x00" not in evil["name"] and len(evil["name"]) <= 200
    assert len(evil["node"]) <= 200
    assert tasks[2]["name"] == "" and tasks[2]["slurmJobId"] == "7"
    assert toil.parse_tasks(None, JD) is None and toil.parse_tasks("", JD) == []
    with pytest.raises(BackendError):
        toil.parse_tasks("{not json", JD)
    with pytest.raises(BackendError):
        toil.parse_tasks(" " * (toil.MAX_TASKS_BYTES + 1), JD)
