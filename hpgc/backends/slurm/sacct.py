"""One small class per Slurm command: build its command line, parse its output.

Nothing here talks to SSH; the backend runs the text these build. Slurm job ids are checked to be
numbers before they reach a command line, other values are `shlex.quote`d.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus

_JOB_ID = re.compile(r"^\d+$")

ACCEPTED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "STAGE_OUT", "SIGNALING",
           "RESIZING", "POWER_UP_NODE", "UPDATE_DB"}
# Why a job failed, in the user's words.
FAILED = {
    "FAILED": "the job exited with a non-zero code",
    "TIMEOUT": "the job ran over its time limit and Slurm stopped it",
    "OUT_OF_MEMORY": "the job ran out of memory and Slurm stopped it",
    "NODE_FAIL": "a compute node running the job failed",
    "BOOT_FAIL": "the compute node could not be booted for the job",
    "DEADLINE": "the job could not finish before its deadline",
    "PREEMPTED": "the job was preempted by a higher-priority job",
    "REVOKED": "the job was revoked (federation)",
    "SPECIAL_EXIT": "the job ended in Slurm's SPECIAL_EXIT state",
}
CANCELLED = "CANCELLED"
TERMINAL = {*FAILED, CANCELLED, "COMPLETED"}


def check_ids(ids: list[str]) -> list[str]:
    for i in ids:
        if not _JOB_ID.match(i):
            raise ValueError(f"not a Slurm job id: {i!r}")
    return ids


def exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's 'CODE:SIGNAL' → (exit code, signal)."""
    code, _, sig = text.partition(":")
    try:
        return int(code), int(sig or 0)
    except ValueError:
        return None, None


@dataclass
class Sbatch:
    """`sbatch --parsable SCRIPT` prints 'JOBID' or 'JOBID;CLUSTER'."""

    script_path: str

    def command(self) -> str:
        return f"sbatch --parsable {shlex.quote(self.script_path)}"

    @staticmethod
    def parse(stdout: str) -> str:
        first = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        job_id = first.split(";")[0].strip()
        if not _JOB_ID.match(job_id):
            raise ValueError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
        return job_id


@dataclass
class SacctRecord:
    job_id: str
    state: str
    exit_code: int | None
    signal: int | None
    reason: str = ""
    accounting: dict[str, str] = field(default_factory=dict)
    name: str = ""


@dataclass
class Sacct:
    """`sacct --parsable2 --noheader -j IDS --format=FIELDS`: one line per job and per step."""

    ids: list[str]
    FIELDS = ("JobID", "JobName", "State", "ExitCode", "Reason", "NodeList", "Elapsed", "TotalCPU", "MaxRSS",
              "Start", "End")
    ACCOUNTING = ("NodeList", "Elapsed", "TotalCPU", "MaxRSS", "Start", "End")

    def command(self) -> str:
        return (f"sacct --parsable2 --noheader -j {','.join(check_ids(self.ids))} "
                f"--format={','.join(self.FIELDS)}")

    @classmethod
    def parse(cls, stdout: str) -> dict[str, SacctRecord]:
        """Main record per job id; steps add what only they know (MaxRSS lives on the batch step)."""
        records: dict[str, SacctRecord] = {}
        steps: dict[str, list[dict[str, str]]] = {}
        for line in stdout.splitlines():
            parts = line.split("|")
            if len(parts) != len(cls.FIELDS):
                continue
            row = dict(zip(cls.FIELDS, parts, strict=True))
            job, _, step = row["JobID"].partition(".")
            if step:
                steps.setdefault(job, []).append(row)
                continue
            if not _JOB_ID.match(job):
                continue
            code, sig = exit_code(row["ExitCode"])
            acct = {k: row[k] for k in cls.ACCOUNTING if row[k] and row[k] not in ("Unknown", "None assigned")}
            records[job] = SacctRecord(job, row["State"].split(" ")[0], code, sig, row["Reason"], acct,
                                       row["JobName"])
        for job, rows in steps.items():
            rec = records.get(job)
            if rec is None:
                continue
            rss = [_rss_kb(r["MaxRSS"]) for r in rows if r["MaxRSS"]]
            if rss:
                rec.accounting["MaxRSS"] = f"{max(rss)}K"
        return records


def _rss_kb(text: str) -> int:
    mult = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
    text = text.strip()
    try:
        if text and text[-1] in mult:
            return int(float(text[:-1]) * mult[text[-1]])
        return int(float(text)) // 1024 if text else 0
    except ValueError:
        return 0


@dataclass
class Squeue:
    """`squeue` for jobs not in sacct yet (slurmdbd lags behind slurmctld)."""

    ids: list[str]

    def command(self) -> str:
        return f"squeue --noheader -j {','.join(check_ids(self.ids))} --format='%i|%T|%r|%j'"

    @staticmethod
    def parse(stdout: str) -> dict[str, tuple[str, str, str]]:
        """id → (state, reason, job name)."""
        out: dict[str, tuple[str, str, str]] = {}
        for line in stdout.splitlines():
            parts = [*line.strip().split("|", 3), "", ""]
            if parts[1] and _JOB_ID.match(parts[0]):
                out[parts[0]] = (parts[1], parts[2], parts[3])
        return out


@dataclass
class Scancel:
    job_id: str

    def command(self) -> str:
        return f"scancel {check_ids([self.job_id])[0]}"


def to_status(state: str, code: int | None = None, sig: int | None = None, reason: str = "",
              stderr_tail: str = "", accounting: dict[str, Any] | None = None) -> BackendStatus:
    """Slurm state (+ exit code) → OGC status with a message saying what happened."""
    details: dict[str, Any] = {"slurm_state": state, **(accounting or {})}
    if sig:
        details["signal"] = sig
    if state in ACCEPTED:
        why = f" ({reason})" if reason and reason != "None" else ""
        return BackendStatus(status=StatusCode.accepted, message=f"queued in Slurm: {state}{why}", details=details)
    if state in RUNNING:
        return BackendStatus(status=StatusCode.running, message=f"running in Slurm ({state})", details=details)
    if state == CANCELLED:
        return BackendStatus(status=StatusCode.dismissed, message="cancelled in Slurm", exit_code=code,
                             details=details)
    if state == "COMPLETED" and not code:
        return BackendStatus(status=StatusCode.successful, progress=100, message="finished", exit_code=0,
                             details=details)
    if state == "COMPLETED" or state in FAILED:
        if stderr_tail:
            details["stderr_tail"] = stderr_tail
        if state in ("FAILED", "COMPLETED"):
            head = f"the job exited with code {code}" if code else "the job failed"
            if sig:
                head += f" (signal {sig})"
        else:
            head = f"{state}: {FAILED[state]}"
            if code:
                head += f"; exit code {code}"
        message = head + (f". stderr: {stderr_tail}" if stderr_tail else "")
        return BackendStatus(status=StatusCode.failed, message=message, exit_code=code, details=details)
    return BackendStatus(status=StatusCode.running, message=f"Slurm state {state}", details=details)
