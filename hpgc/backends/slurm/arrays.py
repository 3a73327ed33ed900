"""A sweep (hpgc:sweep) as Slurm job arrays: every task's files staged once under the sweep's job directory
(`tasks/<i>/`, each with its own script, as a job's), then ONE `sbatch --array=0-(N-1)%maxParallel` whose
script runs `tasks/$SLURM_ARRAY_TASK_ID/job.sbatch`. Above the cluster's MaxArraySize (`max_array_size`) the
tasks are split into several arrays of at most that many: array k (k ≥ 1) has its own directory
`arrays/<k>/` (script and Slurm id), the name `hpgc-<job id>.<k>`, and adds its first task's index to
SLURM_ARRAY_TASK_ID. Each array goes through the submit command like a job, so a restart finds it again by
its name and never submits it twice.
"""

from __future__ import annotations

import dataclasses
import shlex

from hpgc.backends.files import PROGRESS_HELPER
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobdir import SCRIPT_FILE, STDERR_FILE, STDOUT_FILE, job_name, staged_path
from hpgc.backends.slurm.script import render, sbatch_options
from hpgc.models.run import Resources, RunSpec
from hpgc.models.sweep import TASKS_DIR

ARRAYS_DIR = "arrays"
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
    """Every task's staged files, progress helper and script under `tasks/<i>/` (paths relative to `jd`)."""
    files: Files = {}
    helper = PROGRESS_HELPER.encode()
    for i, spec in enumerate(specs):
        tdir = f"{TASKS_DIR}/{i}"
        for f in spec.files:
            staged_path(f.path)
            if f.content is not None:
                files[f"{tdir}/{f.path}"] = (f.content, 0o644)
        files[f"{tdir}/bin/hpgc-progress"] = (helper, 0o755)
        files[f"{tdir}/{SCRIPT_FILE}"] = (render(spec, settings, f"{jd}/{tdir}").encode(), 0o644)
    return files


def array_script(job_id: str, specs: list[RunSpec], settings: ClusterSettings, jd: str, first: int, count: int,
                 index: int, max_parallel: int | None) -> str:
    """The script of array `index` (tasks first .. first+count-1): #SBATCH lines with the widest resources."""
    base = specs[0].model_copy(update={"job_id": job_id, "resources": widest(specs)})
    throttle = f"%{min(max_parallel, count)}" if max_parallel else ""
    opts = sbatch_options(base, settings, jd)
    name = job_name(job_id) + (f".{index}" if index else "")
    if first == 0:  # Slurm writes each task's output straight into its directory
        out, err = f"{jd}/{TASKS_DIR}/%a/{STDOUT_FILE}", f"{jd}/{TASKS_DIR}/%a/{STDERR_FILE}"
        task = '"$SLURM_ARRAY_TASK_ID"'
        run = f'exec bash "{TASKS_DIR}/$i/{SCRIPT_FILE}"'
    else:
        out = err = f"{jd}/{ARRAYS_DIR}/{index}/slurm-%a.log"
        task = f'$((SLURM_ARRAY_TASK_ID + {int(first)}))'
        run = (f'exec bash "{TASKS_DIR}/$i/{SCRIPT_FILE}" >> "{TASKS_DIR}/$i/{STDOUT_FILE}" '
               f'2>> "{TASKS_DIR}/$i/{STDERR_FILE}"')
    opts = dataclasses.replace(opts, job_name=name, output=out, error=err,
                               extra=(*opts.extra, f"--array=0-{count - 1}{throttle}"))
    lines = ["#!/bin/bash", *opts.lines(),
             f"# hpgc sweep {job_id}: tasks {first}..{first + count - 1} of {len(specs)}; each task runs its own",
             f"# script, {TASKS_DIR}/<task>/{SCRIPT_FILE}, in its own directory.",
             f"cd {shlex.quote(jd)} || exit 1", f"i={task}", run, ""]
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
