"""Jobs left running by a server that died: their process groups are killed at the first poll after a
restart, if the recorded pid is still the job's."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from hpgc.backends.jobfiles import read_text_or_empty
from hpgc.backends.local.results import SMALL_FILE_BYTES

log = logging.getLogger(__name__)
PID_FILE = "pid"


def _is_the_jobs(pid: int, jd: Path) -> bool:
    """A recycled pid belongs to someone else: its environment would not name this job directory, nor would
    its working directory be it. A subprocess's environment names it (HPGC_JOB_DIR); a child forked by the
    CWL zygote shows the zygote's environment in /proc, but works in the job directory."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"HPGC_JOB_DIR={jd}".encode() in environ:
            return True
        return os.readlink(f"/proc/{pid}/cwd") == str(jd)
    except OSError:
        return False


def kill_orphan(jd: Path) -> None:
    try:
        pid = int(read_text_or_empty(jd, PID_FILE, SMALL_FILE_BYTES))
    except (OSError, ValueError):
        return
    if _is_the_jobs(pid, jd):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            log.warning("killed the processes of %s, left running by a previous server", jd.name)
