"""scancel a job and, when it is a Toil leader (its job dir has a toil/ folder), every step job it started:
they carry the job name `hpgc-<job id>.step` (hpgc/backends/slurm/toil.py). One round trip; its exit status
and stderr are the job's own scancel's, read by cancel.cancelled."""

from __future__ import annotations

import shlex

from hpgc.backends.slurm.commands import fill
from hpgc.backends.slurm.commands.cancel import cancel_command
from hpgc.backends.slurm.jobid import SlurmJobId

STEP_SUFFIX = ".step"  # a Toil leader named NAME names its step jobs NAME.step


def toil_cancel_command(job_id: SlurmJobId | None, name: str, job_dir: str) -> str:
    q = shlex.quote
    return fill("toil_cancel.sh", SCANCEL=cancel_command(job_id, name), TOIL_DIR=q(f"{job_dir}/toil"),
                STEP_NAME=q(name + STEP_SUFFIX), LEADER=q(str(job_id) if job_id is not None else ""))
