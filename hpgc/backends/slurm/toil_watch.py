"""hpgc-toil-watch: runs inside a Toil leader's Slurm job, beside toil-cwl-runner, and tells hpgc how far the
workflow is. Every few seconds it joins what Toil and Slurm know about the steps:

- Toil's leader log: "Issued job 'CWLJob' <step> ... with job batch system ID: <n>" (step name ↔ Toil's number);
- Toil's batch logs folder: toil_<workflow>.<n>.<slurm id>.{out,err}.log (Toil's number ↔ Slurm job id);
- sacct and squeue of the step jobs, found by the job name hpgc gives them (TOIL_SLURM_ARGS --job-name);

and writes toil/tasks.json (one entry per step: name, Slurm id, state, node, log) and a progress line (finished
steps / issued steps, with the step names) to the job's progress file, which hpgc's poll already reads in its
one round trip. It is copied into the job as bin/hpgc-toil-watch and run with the node's python3 (Toil's own
requirement), so it imports nothing but the standard library; hpgc reads tasks.json back through
hpgc/backends/slurm/toil.py, which checks every field again (a step name comes from the user's CWL).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

TOIL_DIR = "toil"
LEADER_LOG = f"{TOIL_DIR}/leader.log"
LOGS_DIR = f"{TOIL_DIR}/logs"
TASKS_FILE = f"{TOIL_DIR}/tasks.json"
PROGRESS_FILE = "progress"
INTERVAL_S = 5.0
MAX_NAME = 120
MAX_TASKS = 10000
SACCT_FORMAT = "JobID,State,ExitCode,NodeList"
FINISHED = "COMPLETED"
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE")

_ISSUED = re.compile(r"Issued job '([^']*)' (\S+)(?: \S+)*? with job batch system ID: (\d+)")
_LOG_NAME = re.compile(r"^toil_[^.]+\.(\d+)\.(\d+)\.(out|err)\.log$")


def clean(text: str) -> str:
    """A name as it may be shown: printable, no separators of the progress line, cut."""
    return "".join(c if c.isprintable() and c not in "|\t" else "?" for c in text)[:MAX_NAME]


def issued_steps(log_text: str) -> dict[int, str]:
    """Toil's batch number → step name, from the leader log (a job issued again keeps its number's name)."""
    out: dict[int, str] = {}
    for m in _ISSUED.finditer(log_text):
        kind, unit, number = m.groups()
        out[int(number)] = clean(unit if unit and not unit.startswith("kind-") else kind)
    return out


def step_logs(names: list[str]) -> dict[int, dict[str, str]]:
    """Toil's batch number → {'slurm_id', 'stdout', 'stderr'} from the batch logs folder's file names."""
    out: dict[int, dict[str, str]] = {}
    for name in names:
        m = _LOG_NAME.match(name)
        if m:
            number, slurm_id, which = m.groups()
            std = "stdout" if which == "out" else "stderr"
            entry = out.setdefault(int(number), {})
            if entry.get("slurm_id", slurm_id) != slurm_id and int(slurm_id) < int(entry["slurm_id"]):
                continue  # a retry has a new Slurm job: keep the latest
            if entry.get("slurm_id") != slurm_id:
                entry.clear()
            entry["slurm_id"] = slurm_id
            entry[std] = f"{LOGS_DIR}/{name}"
    return out


def slurm_states(sacct_out: str, squeue_out: str) -> dict[str, tuple[str, str, str]]:
    """Slurm id → (state, exit code, nodes): sacct's rows, and squeue's for what slurmdbd does not know yet."""
    out: dict[str, tuple[str, str, str]] = {}
    for line in squeue_out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0].isdigit():
            out[parts[0]] = (parts[1], "", parts[2])
    for line in sacct_out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0].isdigit():
            out[parts[0]] = (parts[1].split(" ")[0], parts[2], parts[3])
    return out


def tasks_of(issued: dict[int, str], logs: dict[int, dict[str, str]],
             states: dict[str, tuple[str, str, str]]) -> list[dict[str, str]]:
    tasks = []
    for number in sorted(issued)[:MAX_TASKS]:
        entry = logs.get(number, {})
        sid = entry.get("slurm_id", "")
        state, code, node = states.get(sid, ("PENDING" if not sid else "UNKNOWN", "", ""))
        task = {"step": issued[number], "toil_id": str(number), "slurm_id": sid, "state": state,
                "exit_code": code, "node": node if node not in ("None assigned", "(null)") else ""}
        for std in ("stdout", "stderr"):
            if std in entry:
                task[std] = entry[std]
        tasks.append(task)
    return tasks


def progress_line(tasks: list[dict[str, str]]) -> str:
    """'PERCENT N/M steps finished: ...' for the progress file (never 100: the job's end says that). M counts
    the steps issued so far, each scatter element one: Toil issues a scatter's elements when it reaches it."""
    total = len(tasks)
    if total == 0:
        return "0 Toil leader started; no step submitted yet"
    done = [t for t in tasks if t["state"] == FINISHED]
    running = [t["step"] for t in tasks if t["state"] == "RUNNING"]
    failed = [t["step"] for t in tasks if t["state"] in ENDED and t["state"] != FINISHED]
    percent = min(99, 100 * len(done) // total)
    msg = f"{len(done)}/{total} steps finished"
    if running:
        msg += "; running: " + ", ".join(running[:8]) + (f" (+{len(running) - 8})" if len(running) > 8 else "")
    if failed:
        msg += "; failed: " + ", ".join(failed[:4])
    return f"{percent} {msg}"


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def watch_once(tag: str, since: str) -> str:
    """One look: writes tasks.json, returns the progress line."""
    try:
        with open(LEADER_LOG, errors="replace") as f:
            issued = issued_steps(f.read())
    except OSError:
        issued = {}
    try:
        names = os.listdir(LOGS_DIR)
    except OSError:
        names = []
    user = os.environ.get("USER") or str(os.getuid())
    sacct = _run(["sacct", "-X", "-n", "-P", "-u", user, f"--name={tag}", "-S", since, f"--format={SACCT_FORMAT}"])
    squeue = _run(["squeue", "-h", "-u", user, f"--name={tag}", "-o", "%i|%T|%N"])
    tasks = tasks_of(issued, step_logs(names), slurm_states(sacct, squeue))
    tmp = TASKS_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"tasks": tasks}, f)
    os.replace(tmp, TASKS_FILE)
    return progress_line(tasks)


def main(argv: list[str]) -> int:
    """hpgc-toil-watch [--once] STEP_JOB_NAME SINCE (sacct's -S: when the leader started)."""
    once = "--once" in argv
    tag, since = [a for a in argv if a != "--once"][:2]
    last = ""
    while True:
        line = watch_once(tag, since)
        if line != last:
            with open(PROGRESS_FILE, "a") as f:
                f.write(line + "\n")
            last = line
        if once:
            return 0
        time.sleep(INTERVAL_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
