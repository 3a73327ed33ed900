"""Where a job lives on a cluster: its directory WORK_ROOT/USER/JOB_ID, the files hpgc keeps there and
the Slurm job name that finds it again."""

from __future__ import annotations

import posixpath
import re

from hpgc.backends.base import BackendError
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.models.names import unix_user_error
from hpgc.models.sweep import split_task_key

SCRIPT_FILE = "job.sbatch"  # written last: its presence means "sbatch may have run"
SLURM_ID_FILE = "slurm_job_id"  # what sbatch printed, or empty while it runs, or 'failed'
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def job_name(job_id: str) -> str:
    """A sweep's task is a task of its sweep's array: it has the sweep's name."""
    task = split_task_key(job_id)
    return f"hpgc-{task[0] if task else job_id}"


def job_dir(cluster: ClusterSettings, job_id: str, unix_user: str | None) -> str:
    user = unix_user or cluster.user
    task = split_task_key(job_id)  # a sweep's task: its directory is inside the sweep's
    if not _JOB_ID.match(task[0] if task else job_id):
        raise BackendError(f"job id {job_id!r} cannot name a Slurm job")
    error = unix_user_error(user)  # the rule auth's mapping applies: a mapped user always passes here
    if error is not None:
        raise BackendError(f"unix user {user!r} is not a valid user name: {error}")
    return f"{cluster.work_root}/{user}/{job_id}"


def staged_path(path: str) -> None:
    """A staged file's path (generated, relative) stays inside the job directory and is not hpgc's own file."""
    norm = posixpath.normpath(path)
    if path.startswith("/") or norm.startswith("..") or norm in (".", SCRIPT_FILE, SLURM_ID_FILE):
        raise BackendError(f"staged file path {path!r} is not a plain path inside the job directory")
