"""A sweep (hpgc:sweep) as Slurm job arrays: every task's files staged once in the sweep's job directory,
as ONE archive (`tasks.tar`, members `tasks/<i>/...`, each task with its own script as a job's), then ONE
`sbatch --array=0-(N-1)%maxParallel` whose tasks each unpack their own part (`SLURM_ARRAY_TASK_ID`) and run
their script. Above the cluster's MaxArraySize (`max_array_size`) the tasks are split into several arrays of
at most that many: array k (k >= 1) has its own directory `arrays/<k>/` (script and Slurm id), the name
`hpgc-<job id>.<k>`, and adds its first task's index to SLURM_ARRAY_TASK_ID. Each array goes through the
submit command like a job, so a restart finds it again by its name and never submits it twice.
"""

from __future__ import annotations

import dataclasses
import shlex

from hpgc.backends.files import PROGRESS_HELPER
from hpgc.backends.slurm.commands.submit import tar_files
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobdir import SCRIPT_FILE, STDERR_FILE, STDOUT_FILE, job_name, staged_path
from hpgc.backends.slurm.script import render, sbatch_options
from hpgc.models.run import Resources, RunSpec
from hpgc.models.sweep import TASKS_DIR

ARRAYS_DIR = "arrays"
TASKS_TAR = "tasks.tar"
Files = dict[str, tuple[bytes, int]]


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """(first task, number of tasks) of each array: at most `size` tasks each, in task order."""
    return [(first, min(size, n - first)) for first in range(0, n, size)]


def widest(specs: list[RunSpec]) -> Resources:
    """One array asks once for every task: the most any task asks for (tasks of one sweep rarely differ)."""
    merged = specs[0].resources.model_copy()
    for spec in specs[1:]:
        for name in ("cpus", "memory_mb", "time_limit_s", "tmp_mb", "nodes", "gpus"):
            mine, theirs = getattr(merged, name), getattr(spec.resources, name)
            if theirs is not None and (mine is None or theirs > mine):
                setattr(merged, name, theirs)
    return merged


def task_files(specs: list[RunSpec], settings: ClusterSettings, jd: str) -> Files:
    """Every task's staged files and script, as ONE archive `tasks.tar` (members `tasks/<i>/...`) that each task
    unpacks its own part of when it starts, and the progress helper once (`bin/`, copied into each task's):
    a thousand tasks are three files to submit, not thousands to create on a shared file system."""
    files: Files = {}
    for i, spec in enumerate(specs):
        tdir = f"{TASKS_DIR}/{i}"
        for f in spec.files:
            staged_path(f.path)
            if f.content is not None:
                files[f"{tdir}/{f.path}"] = (f.content, 0o644)
        files[f"{tdir}/{SCRIPT_FILE}"] = (render(spec, settings, f"{jd}/{tdir}").encode(), 0o644)
    return {TASKS_TAR: (tar_files(files), 0o644), "bin/hpgc-progress": (PROGRESS_HELPER.encode(), 0o755)}


def array_script(job_id: str, specs: list[RunSpec], settings: ClusterSettings, jd: str, first: int, count: int,
                 index: int, max_parallel: int | None) -> str:
    """The script of array `index` (tasks first .. first+count-1): #SBATCH lines with the widest resources;
    each task unpacks its files, then runs its own script with its output in its own directory (Slurm's own
    messages about a task, e.g. a time limit, go to `slurm-<array>-<task>.log` beside them)."""
    base = specs[0].model_copy(update={"job_id": job_id, "resources": widest(specs)})
    throttle = f"%{min(max_parallel, count)}" if max_parallel else ""
    opts = sbatch_options(base, settings, jd)
    log = f"{jd}/slurm-{index}-%a.log"
    opts = dataclasses.replace(opts, job_name=job_name(job_id) + (f".{index}" if index else ""), output=log,
                               error=log, extra=(*opts.extra, f"--array=0-{count - 1}{throttle}"))
    tdir = f'"{TASKS_DIR}/$i"'
    lines = ["#!/bin/bash", *opts.lines(),
             f"# hpgc sweep {job_id}: tasks {first}..{first + count - 1} of {len(specs)}; each task unpacks its own",
             f"# files from {TASKS_TAR} and runs its own script, {TASKS_DIR}/<task>/{SCRIPT_FILE}.",
             f"cd {shlex.quote(jd)} || exit 1", f"i=$((SLURM_ARRAY_TASK_ID + {int(first)}))",
             f'tar -xf {TASKS_TAR} {tdir} || exit 1',
             f'mkdir -p {tdir}/bin && cp bin/hpgc-progress {tdir}/bin/ || exit 1',
             f'exec bash {tdir}/{SCRIPT_FILE} > {tdir}/{STDOUT_FILE} 2> {tdir}/{STDERR_FILE}', ""]
    return "\n".join(lines)


def array_jobs(job_id: str, specs: list[RunSpec], settings: ClusterSettings, jd: str, max_parallel: int | None
               ) -> list[tuple[str, str, Files, int]]:
    """(dir relative to `jd` ('' for the first), Slurm job name, files, first task) of each array; the first
    array carries every task's files."""
    out = []
    for index, (first, count) in enumerate(chunks(len(specs), settings.max_array_size)):
        script = array_script(job_id, specs, settings, jd, first, count, index, max_parallel).encode()
        rel = f"{ARRAYS_DIR}/{index}" if index else ""
        files = task_files(specs, settings, jd) if index == 0 else {}
        files[SCRIPT_FILE] = (script, 0o644)  # last: its presence means "sbatch may have run"
        out.append((rel, job_name(job_id) + (f".{index}" if index else ""), files, first))
    return out
