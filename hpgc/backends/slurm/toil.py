"""CWL under Toil on Slurm: the hpgc job is Toil's leader, a small Slurm job (one CPU, `toil_leader_memory_mb`)
that runs toil-cwl-runner --batchSystem slurm; Toil submits each step and scatter element as its own Slurm job,
with the step's ResourceRequirement as its sbatch options and the cluster's (and the request's) partition,
account and QOS. Its job store, the steps' logs and the leader's log lie in the job directory on the shared
file system, so a restart of hpgc loses nothing: the leader goes on in Slurm and is polled like any job.

Every step job is named `hpgc-<job id>.step` (TOIL_SLURM_ARGS --job-name, which Slurm takes over Toil's own
-J), which is how the dismiss command and the watcher (toil_watch.py, copied into the job) find them.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpgc.backends.base import BackendError
from hpgc.backends.files import OUTPUTS_FILE
from hpgc.backends.launch import toil_argv
from hpgc.backends.runner import Runner, choose_runner
from hpgc.backends.slurm import toil_watch
from hpgc.backends.slurm.commands.toil_cancel import STEP_SUFFIX
from hpgc.backends.slurm.commands.toil_cancel import toil_cancel_command as cancel_command  # noqa: F401
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobdir import job_name
from hpgc.backends.slurm.jobid import SlurmJobId
from hpgc.backends.slurm.states import to_status
from hpgc.models.run import RunSpec

if TYPE_CHECKING:
    from hpgc.backends.slurm.script import SbatchOptions

WATCHER = "bin/hpgc-toil-watch"
JOB_STORE = f"{toil_watch.TOIL_DIR}/jobstore"
TASKS_FILE = toil_watch.TASKS_FILE
MAX_TASKS_BYTES = 4 * 1024 * 1024


def step_job_name(job_id: str) -> str:
    return job_name(job_id) + STEP_SUFFIX


def runner_for(spec: RunSpec, cluster: ClusterSettings) -> Runner:
    return choose_runner(spec, cluster.cwl_runner, bool(cluster.toil_cwl_runner))


def leader_options(opts: SbatchOptions, cluster: ClusterSettings) -> SbatchOptions:
    """The leader only waits on Slurm and moves files: one CPU; the steps ask for what they need themselves."""
    return replace(opts, cpus_per_task=1, mem_mb=cluster.toil_leader_memory_mb, nodes=1, gpus=None, tmp_mb=None)


def slurm_args(spec: RunSpec, cluster: ClusterSettings) -> str:
    """TOIL_SLURM_ARGS: what Toil adds to each step's sbatch (it refuses CPU and memory options: those are the
    step's own). Partition and QOS go through Toil's own options, so it does not pick others."""
    args = [f"--job-name={step_job_name(spec.job_id)}"]
    if cluster.account:
        args.append(f"--account={cluster.account}")
    args += [o for o in cluster.sbatch_options
             if not o.startswith(("--mem", "--cpus", "--job-name", "--partition", "--qos", "--nodes"))]
    return " ".join(args)


def command_lines(spec: RunSpec, cluster: ClusterSettings, jd: str) -> list[str]:
    """The leader's command section of the job script (the script's `code=$?` follows it)."""
    if not cluster.toil_cwl_runner:
        raise BackendError("this cluster has no Toil (toil_cwl_runner)")
    q = shlex.quote
    d = toil_watch
    argv = toil_argv(cluster.toil_cwl_runner, bool(cluster.container_runtime), f"{jd}/{JOB_STORE}",
                     f"{jd}/{d.LOGS_DIR}", d.LEADER_LOG, spec.resources.partition or cluster.partition, cluster.qos)
    tag = q(step_job_name(spec.job_id))
    return [
        "# Toil's leader: each step and scatter element runs as its own Slurm job named " + step_job_name(spec.job_id),
        f"export TOIL_SLURM_ARGS={q(slurm_args(spec, cluster))}",
        f"mkdir -p {q(d.LOGS_DIR)}",
        'hpgc_since=$(date +%Y-%m-%dT%H:%M:%S)',
        f'python3 {WATCHER} {tag} "$hpgc_since" & hpgc_watch=$!',
        f"{shlex.join(argv)} > {OUTPUTS_FILE}",
        "code=$?",
        'kill "$hpgc_watch" 2>/dev/null',
        f'python3 {WATCHER} --once {tag} "$hpgc_since"',
        '[ "$code" -eq 0 ] || tail -n 5 ' + q(d.LEADER_LOG) + " >&2",
        '(exit "$code")',
    ]


def job_files(spec: RunSpec, cluster: ClusterSettings) -> dict[str, tuple[bytes, int]]:
    """Files a Toil leader's job directory gets besides the usual ones: the watcher."""
    if spec.kind != "cwl" or runner_for(spec, cluster) != "toil":
        return {}
    return {WATCHER: (Path(toil_watch.__file__).read_bytes(), 0o755)}


def _text(value: Any, limit: int = 200) -> str:
    return toil_watch.clean(value if isinstance(value, str) else "")[:limit]


def parse_tasks(text: str | None, jd: str) -> list[dict[str, Any]] | None:
    """toil/tasks.json as the watcher wrote it → the steps' listing, every field checked again: the file lies in
    the user's job directory, and the step names come from the user's CWL. None: there is no such file (not a
    Toil job, or its leader has not started)."""
    if text is None:
        return None
    if not text:
        return []
    if len(text) > MAX_TASKS_BYTES:
        raise BackendError("toil/tasks.json is too large")
    try:
        doc = json.loads(text)
    except ValueError:
        raise BackendError("toil/tasks.json is not JSON") from None
    rows = doc.get("tasks") if isinstance(doc, dict) else None
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        if not isinstance(row, dict):
            continue
        try:
            sid = str(SlurmJobId.parse(str(row["slurm_id"]))) if row.get("slurm_id") else None
        except (ValueError, TypeError):
            sid = None
        state = "".join(c for c in _text(row.get("state"), 40).upper() if c.isalpha() or c == "_") or "PENDING"
        code, _, sig = _text(row.get("exit_code"), 20).partition(":")
        status = to_status(state, int(code) if code.isdigit() else None, int(sig) if sig.isdigit() else None)
        task: dict[str, Any] = {"index": i, "name": _text(row.get("step")), "status": status.status.value,
                                "slurmJobId": sid, "slurmState": state, "node": _text(row.get("node"), 200) or None}
        for std in ("stdout", "stderr"):
            path = row.get(std)
            if isinstance(path, str) and toil_watch.step_logs([path.rpartition("/")[2]]):
                task[std] = f"{jd}/{toil_watch.LOGS_DIR}/{path.rpartition('/')[2]}"
        out.append(task)
    return out
