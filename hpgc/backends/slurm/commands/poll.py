"""Poll a group of jobs in one round trip: sacct for all of them (in chunks), squeue for those sacct does
not know yet (slurmdbd lags behind slurmctld), and the last line of each job's progress file.

The program (poll.sh, progress.awk) only runs the commands; their lines are parsed here, and nowhere else.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from hpgc.backends.files import PROGRESS_FILE
from hpgc.backends.slurm.commands import MARK, fill, marked, program
from hpgc.backends.slurm.jobid import SlurmJobId, split_step
from hpgc.backends.slurm.states import base_state

FIELDS = ("JobID", "JobName", "State", "ExitCode", "Reason", "NodeList", "Elapsed", "TotalCPU", "MaxRSS",
          "Start", "End")
ACCOUNTING = ("NodeList", "Elapsed", "TotalCPU", "MaxRSS", "Start", "End")
SQUEUE_FORMAT = "%i|%T|%r|%j"
FILES_TIMEOUT_S = 20  # the per-file part of a poll: a file swapped for a FIFO after the check cannot stall it


def poll_command(chunk: int) -> str:
    """The program; stdin is `poll_input`. Its text depends only on the chunk size (sacct ids per call)."""
    return fill("poll.sh", CHUNK=int(chunk), FIELDS=",".join(FIELDS), MARK=MARK, PROGRESS_FILE=PROGRESS_FILE,
                FILES_TIMEOUT_S=FILES_TIMEOUT_S, PROGRESS_AWK=shlex.quote(program("progress.awk")))


def poll_input(jobs: list[tuple[SlurmJobId | str, str]]) -> bytes:
    """(Slurm id, job dir) per job; an id that is not one raises ValueError before anything runs."""
    lines = []
    for sid, jd in jobs:
        job_id = sid if isinstance(sid, SlurmJobId) else SlurmJobId.parse(sid)
        if "|" in jd or "\n" in jd:
            raise ValueError(f"job directory {jd!r} cannot be listed")
        lines.append(f"{job_id}|{jd}\n")
    return "".join(lines).encode()


@dataclass
class SacctRecord:
    job_id: str
    state: str
    exit_code: int | None
    signal: int | None
    reason: str = ""
    accounting: dict[str, str] = field(default_factory=dict)
    name: str = ""


def exit_code(text: str) -> tuple[int | None, int | None]:
    """sacct's 'CODE:SIGNAL' → (exit code, signal)."""
    code, _, sig = text.partition(":")
    try:
        return int(code), int(sig or 0)
    except ValueError:
        return None, None


def _rss_kb(text: str) -> int:
    mult = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
    text = text.strip()
    try:
        if text and text[-1] in mult:
            return int(float(text[:-1]) * mult[text[-1]])
        return int(float(text)) // 1024 if text else 0
    except ValueError:
        return 0


def parse_sacct(stdout: str) -> dict[str, SacctRecord]:
    """`sacct --parsable2 --noheader --format=FIELDS` → the main record per job id (as `str(SlurmJobId)`);
    its steps add what only they know (MaxRSS lives on the batch step)."""
    records: dict[str, SacctRecord] = {}
    pending: dict[str, SacctRecord] = {}
    steps: dict[str, list[dict[str, str]]] = {}
    for line in stdout.splitlines():
        parts = line.split("|")
        if len(parts) != len(FIELDS):
            continue
        row = dict(zip(FIELDS, parts, strict=True))
        job, step = split_step(row["JobID"])
        try:
            key = str(SlurmJobId.parse(job))
        except ValueError:
            continue
        if step:
            steps.setdefault(key, []).append(row)
            continue
        code, sig = exit_code(row["ExitCode"])
        acct = {k: row[k] for k in ACCOUNTING if row[k] and row[k] not in ("Unknown", "None assigned")}
        if row["Start"] in ("Unknown", "None"):  # not started: sacct still says Elapsed 00:00:00, TotalCPU 00:00:00
            acct = {k: v for k, v in acct.items() if k not in ("Elapsed", "TotalCPU")}
        records[key] = SacctRecord(key, base_state(row["State"]), code, sig, row["Reason"], acct, row["JobName"])
        for task in SlurmJobId.parse(key).tasks():  # an array's pending tasks, in one line: each task's state
            pending.setdefault(str(task), SacctRecord(str(task), base_state(row["State"]), code, sig, row["Reason"],
                                                      {}, row["JobName"]))
    for job, rows in steps.items():
        rec = records.get(job)
        if rec is None:
            continue
        rss = [_rss_kb(r["MaxRSS"]) for r in rows if r["MaxRSS"]]
        if rss:
            rec.accounting["MaxRSS"] = f"{max(rss)}K"
    return {**pending, **records}  # a task's own line, once it has one, says more than its array's range


def parse_squeue(stdout: str) -> dict[str, tuple[str, str, str]]:
    """`squeue --format=SQUEUE_FORMAT` → id → (state, reason, job name)."""
    out: dict[str, tuple[str, str, str]] = {}
    for line in stdout.splitlines():
        parts = [*line.strip().split("|", 3), "", ""]
        try:
            key = str(SlurmJobId.parse(parts[0]))
        except ValueError:
            continue
        if parts[1]:
            out[key] = (parts[1], parts[2], parts[3])
            for task in SlurmJobId.parse(key).tasks():  # an array's pending tasks, in one line
                out.setdefault(str(task), (parts[1], parts[2], parts[3]))
    return out


@dataclass
class PollOutput:
    sacct: str = ""
    sacct_error: str = ""
    sacct_failed: bool = False
    squeue: str | None = None  # None: squeue was not asked (sacct knew every job)
    progress: dict[str, str] = field(default_factory=dict)

    def records(self) -> dict[str, SacctRecord]:
        return parse_sacct(self.sacct)

    def queued(self) -> dict[str, tuple[str, str, str]]:
        return parse_squeue(self.squeue or "")


_SECTIONS = ("sacct", "sacct-err", "files", "squeue")


def parse_poll(stdout: str) -> PollOutput:
    out = PollOutput()
    section = ""
    lines: dict[str, list[str]] = {s: [] for s in _SECTIONS}
    for line in stdout.splitlines():
        if line.startswith(MARK + " "):
            ((word, rest),) = marked(line)
            if word in _SECTIONS:
                section = word
            elif word == "sacct-failed":
                out.sacct_failed = True
            elif word == "progress":
                job, _, text = rest.partition(" ")
                out.progress[job] = text
            continue
        if section in ("sacct", "sacct-err", "squeue"):
            lines[section].append(line)
    out.sacct = "\n".join(lines["sacct"])
    out.sacct_error = "\n".join(lines["sacct-err"]).strip()
    if out.sacct_error and not lines["sacct"]:
        out.sacct_failed = True
    out.squeue = "\n".join(lines["squeue"]) if lines["squeue"] or section == "squeue" else None
    return out
