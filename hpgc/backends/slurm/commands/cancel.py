"""scancel a job by its Slurm id, or by its job name when its id was never stored."""

from __future__ import annotations

import shlex

from hpgc.backends.slurm.jobid import SlurmJobId


def cancel_command(job_id: SlurmJobId | None, name: str) -> str:
    return f"scancel {job_id}" if job_id is not None else f"scancel --name={shlex.quote(name)}"


def cancelled(exit_status: int | None, stderr: str) -> bool:
    """Whether scancel did its job; a job that has just ended is not an error."""
    return exit_status == 0 or "already completing or completed" in stderr.lower()
