"""Delete a dismissed job's directory on the cluster."""

from __future__ import annotations

import shlex


def remove_command(job_dir: str) -> str:
    """`job_dir` comes from jobdir.job_dir (validated job id and user), never from a request."""
    return f"rm -rf -- {shlex.quote(job_dir)}"
