"""Sweeps as Slurm job arrays: the recorded answers of Slurm 24.11 about an array's tasks, the array's
script and files, the split above MaxArraySize, and the task ids submit_sweep hands back."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpgc.backends.slurm.arrays import array_jobs, chunks, widest
from hpgc.backends.slurm.commands.poll import parse_sacct, parse_squeue
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobdir import job_dir, job_name
from hpgc.backends.slurm.jobid import SlurmJobId
from hpgc.models.run import Resources, RunSpec, StagedFile
from hpgc.models.sweep import task_key

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm" / "24.11"


def test_a_running_arrays_pending_tasks_are_each_known_from_its_one_range_line() -> None:
    records = parse_sacct((DATA / "sacct-array.txt").read_text())
    assert (records["68_0"].state, records["68_0"].accounting["NodeList"]) == ("RUNNING", "node1")
    assert records["68_1"].state == "RUNNING"  # its own line wins over the stale range that still names it
    assert [records[f"68_{i}"].state for i in range(2, 10)] == ["PENDING"] * 8
    assert records["68_5"].name == "hpgc-array-demo" and records["68_5"].accounting == {}
    assert "68_10" not in records
    cancelled = parse_sacct((DATA / "sacct-array-cancelled.txt").read_text())
    assert [cancelled[f"68_{i}"].state for i in range(10)] == ["CANCELLED"] * 10
    assert parse_squeue((DATA / "squeue-array-task.txt").read_text()) == {
        "68_5": ("PENDING", "JobArrayTaskLimit", "hpgc-array-demo")}


def test_ranges_expand_to_their_tasks_and_nothing_else_does() -> None:
    assert [str(t) for t in SlurmJobId.parse("7_[0-2,5%2]").tasks()] == ["7_0", "7_1", "7_2", "7_5"]
    assert SlurmJobId.parse("7_3").tasks() == [] and SlurmJobId.parse("7").tasks() == []
    assert SlurmJobId.parse("7_[0-999999999]").tasks() == []  # more than any array: not expanded


def _settings(**extra: object) -> ClusterSettings:
    return ClusterSettings(host="h", known_hosts=Path("/k"), user="alice", work_root="/w", partition="debug",
                           **extra)  # type: ignore[arg-type]


def _specs(n: int, job: str = "sw") -> list[RunSpec]:
    return [RunSpec(job_id=task_key(job, i), process_id="p", kind="command", argv=["echo", f"$(rm -rf /) {i}"],
                    files=[StagedFile(path="inputs/x.txt", content=f"value {i}; `reboot`".encode())],
                    resources=Resources(cpus=1 + i % 3, memory_mb=100)) for i in range(n)]


def _members(files: dict[str, tuple[bytes, int]]) -> dict[str, bytes]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(files["tasks.tar"][0])) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_one_array_carries_every_tasks_files_and_runs_each_tasks_own_script() -> None:
    settings, specs = _settings(), _specs(5)
    jd = job_dir(settings, "sw", "alice")
    ((rel, name, files, first),) = array_jobs("sw", specs, settings, jd, 2)
    assert (rel, name, first) == ("", "hpgc-sw", 0)
    assert list(files) == ["tasks.tar", "bin/hpgc-progress", "job.sbatch"]  # three files for any number of tasks
    script = files["job.sbatch"][0].decode()
    assert "#SBATCH --array=0-4%2" in script and "#SBATCH --job-name=hpgc-sw" in script
    assert "#SBATCH --output=/w/alice/sw/slurm-0-%a.log" in script
    assert "#SBATCH --cpus-per-task=3" in script  # the most any task asks for
    assert "i=$((SLURM_ARRAY_TASK_ID + 0))" in script and 'tar -xf tasks.tar "tasks/$i" || exit 1' in script
    assert 'exec bash "tasks/$i"/job.sbatch > "tasks/$i"/stdout.log 2> "tasks/$i"/stderr.log' in script
    assert 'cp bin/hpgc-progress "tasks/$i"/bin/' in script  # each task's own copy, made when it starts
    members = _members(files)
    assert members["tasks/3/inputs/x.txt"] == b"value 3; `reboot`"  # data in a file, never in a script
    task3 = members["tasks/3/job.sbatch"].decode()
    assert "export HPGC_JOB_DIR=/w/alice/sw/tasks/3" in task3 and "echo '$(rm -rf /) 3'" in task3
    assert ">> /w/alice/.hpgc-events" in task3  # a task's end is a notice in its account's events file
    assert sorted(members) == sorted([f"tasks/{i}/{f}" for i in range(5) for f in ("inputs/x.txt", "job.sbatch")])
    assert files["bin/hpgc-progress"][1] == 0o755
    assert job_dir(settings, task_key("sw", 3), "alice") == "/w/alice/sw/tasks/3"
    assert job_name(task_key("sw", 3)) == "hpgc-sw"  # a task is polled under its array's name


def test_above_max_array_size_the_tasks_go_into_several_arrays_with_an_offset() -> None:
    assert chunks(5, 2) == [(0, 2), (2, 2), (4, 1)]
    assert chunks(1000, 1001) == [(0, 1000)]
    settings = _settings(max_array_size=2)
    jobs = array_jobs("sw", _specs(5), settings, "/w/alice/sw", None)
    assert [(rel, name, first) for rel, name, _, first in jobs] == [
        ("", "hpgc-sw", 0), ("arrays/1", "hpgc-sw.1", 2), ("arrays/2", "hpgc-sw.2", 4)]
    assert list(jobs[1][2]) == ["job.sbatch"]  # the first array staged every task's files
    second = jobs[1][2]["job.sbatch"][0].decode()
    assert "#SBATCH --array=0-1\n" in second and "i=$((SLURM_ARRAY_TASK_ID + 2))" in second
    assert "#SBATCH --job-name=hpgc-sw.1" in second
    assert "#SBATCH --array=0-0%1" in array_jobs("sw", _specs(5), settings, "/w/alice/sw", 3)[2][2][
        "job.sbatch"][0].decode()  # the throttle is never above the array's size


def test_widest_takes_the_largest_of_each_resource() -> None:
    specs = _specs(3)
    specs[1].resources = Resources(cpus=1, time_limit_s=60, gpus=1)
    assert widest(specs) == Resources(cpus=3, memory_mb=100, time_limit_s=60, gpus=1)


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "job.sbatch"])
def test_a_staged_path_that_leaves_its_task_directory_is_refused(bad: str) -> None:
    from hpgc.backends.base import BackendError

    specs = _specs(1)
    specs[0].files = [StagedFile(path=bad, content=b"x")]
    with pytest.raises(BackendError):
        array_jobs("sw", specs, _settings(), "/w/alice/sw", None)
