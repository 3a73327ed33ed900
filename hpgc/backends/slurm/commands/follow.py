"""Completion notices: every job script appends 'SLURM_ID EXIT_CODE' to its identity's events file
(WORK_ROOT/USER/.hpgc-events) when it ends, also when it fails (an EXIT trap, script.py), and one long-lived
command per (cluster, identity) follows that file (follow.sh), so that a job's end wakes the monitor at once
instead of at its next poll. Polling stays the safety net: a notice lost (a job killed before its trap
ran, a channel down) is a job noticed at its next poll, as before."""

from __future__ import annotations

import shlex

from hpgc.backends.slurm.commands import MARK, fill, marked
from hpgc.backends.slurm.jobid import SlurmJobId

EVENTS_FILE = ".hpgc-events"
BEAT_S = 20
MAX_BYTES = 1024 * 1024


def events_path(work_root: str, user: str) -> str:
    return f"{work_root.rstrip('/')}/{user}/{EVENTS_FILE}"


def notice_trap(events: str) -> str:
    """The job script's line that makes its end a notice (set once its environment is set)."""
    line = shlex.quote(f'printf "%s %s\\n" "$SLURM_JOB_ID" "$?" >> {shlex.quote(events)} 2>/dev/null')
    return f"trap {line} EXIT"


def follow_command(events: str) -> str:
    return fill("follow.sh", EVENTS=shlex.quote(events), MARK=MARK, BEAT_S=BEAT_S, MAX_BYTES=MAX_BYTES)


def parse_notices(text: str) -> list[tuple[str, str]]:
    """(kind, Slurm id) of each complete line: ('following', ''), ('beat', ''), or ('done', id); a line that
    names no valid Slurm id (the file is the account's own, anything may be written into it) is skipped."""
    out: list[tuple[str, str]] = []
    for word, rest in marked(text):
        if word in ("following", "beat"):
            out.append((word, ""))
        elif word == "done":
            job = SlurmJobId.find(rest.split(" ", 1)[0]) if rest else None
            if job is not None:
                out.append(("done", str(job)))
    return out
