"""Test doubles for the Slurm backend: a fake Slurm (sbatch/sacct/squeue/scancel as small Python
programs keeping their state in files) behind a real SSH server (asyncssh's server side on 127.0.0.1)
that runs each command with bash, like sshd would. The backend's real shell programs run against it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncssh

T = TypeVar("T")

FAKE_SLURM = r'''
import json, os, re, signal, subprocess, sys, time
STATE = os.environ["FAKESLURM_STATE"]
JOBS = os.path.join(STATE, "jobs")

def load(i):
    with open(os.path.join(JOBS, i + ".json")) as f:
        return json.load(f)

def save(job):
    p = os.path.join(JOBS, job["id"] + ".json")
    with open(p + ".tmp", "w") as f:
        json.dump(job, f)
    os.replace(p + ".tmp", p)

def knob(name, default=0.0):
    try:
        with open(os.path.join(STATE, name)) as f:
            return float(f.read())
    except OSError:
        return default

def all_jobs():
    out = []
    for n in sorted(os.listdir(JOBS), key=lambda n: [int(x) for x in n.split(".")[0].split("_")]):
        if n.endswith(".json"):
            out.append(load(n[:-5]))
    return out

def opt(args, name):
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(args):
            return args[i + 1]
    return None

def seconds(t):
    if not t:
        return None
    d, _, t = t.rpartition("-")
    parts = [int(p) for p in t.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return int(d or 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]

def sbatch(args):
    if "--version" in args:
        print("slurm 24.11.5-fake")
        return 0
    if knob("sbatch_fail"):
        print("sbatch: error: Batch job submission failed: fake failure", file=sys.stderr)
        return 1
    if knob("sbatch_busy") and "--version" not in args:  # slurmctld refusing jobs: sbatch sleeps and retries
        print("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying", file=sys.stderr,
              flush=True)
        with open(os.path.join(STATE, "sbatch_busy_calls"), "a") as calls:
            calls.write("1\n")
        time.sleep(knob("sbatch_busy"))
        if not knob("sbatch_busy_then_ok"):
            print("sbatch: error: Batch job submission failed: Resource temporarily unavailable", file=sys.stderr)
            return 1
    hold = "--hold" in args or "-H" in args
    wrap = opt(args, "--wrap")
    opts = {}
    script = None
    if wrap is None:
        script = [a for a in args if not a.startswith("-")][-1]
        text = open(script).read()
        for line in text.splitlines():
            m = re.match(r"#SBATCH (--[a-z-]+)=(\S+)$", line)
            if m:
                opts[m.group(1)] = m.group(2)
    name = opt(args, "--job-name") or opts.get("--job-name") or "wrap"
    fail_name = os.path.join(STATE, "sbatch_fail_name")
    if os.path.exists(fail_name) and open(fail_name).read().strip() == name:
        print("sbatch: error: Invalid account or account/partition combination specified", file=sys.stderr)
        return 1
    with open(os.path.join(STATE, "lock"), "a") as lock:
        import fcntl
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = os.path.join(STATE, "next_id")
        i = int(open(p).read()) if os.path.exists(p) else 1000
        open(p, "w").write(str(i + 1))
    job = {"id": str(i), "name": name, "state": "PENDING", "exit": "0:0", "submitted": time.time(),
           "script": script, "wrap": wrap, "chdir": opts.get("--chdir", os.getcwd()),
           "out": opts.get("--output"), "err": opts.get("--error"), "time": seconds(opts.get("--time")),
           "pid": None}
    tasks = [job]
    if opts.get("--array"):  # an array: one record per task, ID_T, each told its SLURM_ARRAY_TASK_ID (no throttle)
        lo, _, hi = opts["--array"].split("%")[0].partition("-")
        tasks = [dict(job, id=f"{i}_{t}", env={"SLURM_ARRAY_TASK_ID": str(t)},
                      out=(job["out"] or "").replace("%a", str(t)) or None,
                      err=(job["err"] or "").replace("%a", str(t)) or None) for t in range(int(lo), int(hi or lo) + 1)]
    for task in tasks:
        save(task)
    if not hold and not knob("hold"):  # "hold": jobs stay PENDING until a test sets their state (set_fake_job)
        for task in tasks:
            subprocess.Popen([sys.executable, __file__, "_run", task["id"]], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    federated = ";fed1" if knob("sbatch_federated") else ""  # a federation's --parsable says "id;cluster"
    print(job["id"] + federated if "--parsable" in args else "Submitted batch job " + job["id"])
    return 0

def run(i):
    job = load(i)
    if job["state"] != "PENDING":
        return 0
    job["state"] = "RUNNING"; job["pid"] = os.getpid(); job["start"] = time.time()
    save(job)
    out = open(job["out"] or os.devnull, "ab"); err = open(job["err"] or os.devnull, "ab")
    cmd = ["bash", job["script"]] if job["script"] else ["bash", "-c", job["wrap"]]
    proc = subprocess.Popen(cmd, cwd=job["chdir"], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **job.get("env", {})))
    limit = job["time"] * knob("time_scale", 1.0) if job["time"] else None
    try:
        code = proc.wait(timeout=limit)
        final, exit_ = ("COMPLETED" if code == 0 else "FAILED"), (f"{code}:0" if code >= 0 else f"0:{-code}")
    except subprocess.TimeoutExpired:
        proc.kill(); proc.wait()
        final, exit_ = "TIMEOUT", "0:15"
    job = load(i)
    if job["state"] == "RUNNING":
        job["state"], job["exit"], job["end"] = final, exit_, time.time()
        save(job)
    return 0

def visible_in_sacct(job):
    return time.time() - job["submitted"] >= knob("sacct_lag")

def sacct(args):
    if knob("sacct_fail"):
        print("sacct: error: Problem talking to the database: Connection refused", file=sys.stderr)
        return 1
    with open(os.path.join(STATE, "sacct_calls"), "a") as f:
        f.write(" ".join(args) + "\n")
    ids = set((opt(args, "-j") or "").split(",")) - {""}
    name = opt(args, "--name")
    fields = (opt(args, "--format") or "JobID,State").split(",")
    for job in all_jobs():
        if ids and not ({job["id"], job["id"].split("_")[0]} & ids) or name and job["name"] != name \
                or not visible_in_sacct(job):
            continue
        row = {"JobID": job["id"], "JobName": job["name"], "State": job["state"], "ExitCode": job["exit"],
               "Reason": job.get("reason", "None"), "NodeList": "fake1", "Elapsed": "00:00:01", "TotalCPU": "00:00.100",
               "MaxRSS": "", "Start": "2026-01-01T00:00:00", "End": "Unknown"}
        if job["state"] == "CANCELLED":
            row["State"] = "CANCELLED by 1000"
        print("|".join(row.get(f, "") for f in fields))
        if "-X" not in args and job["state"] not in ("PENDING",):
            step = dict(row, JobID=job["id"] + ".batch", JobName="batch", MaxRSS="2048K")
            print("|".join(step.get(f, "") for f in fields))
    return 0

def squeue(args):
    ids = set((opt(args, "-j") or "").split(",")) - {""}
    name = opt(args, "--name")
    fmt = opt(args, "--format") or "%i %T"
    active = [j for j in all_jobs() if j["state"] in ("PENDING", "RUNNING")]
    if len(ids) == 1 and not [j for j in active if {j["id"], j["id"].split("_")[0]} & ids]:
        print("slurm_load_jobs error: Invalid job id specified")  # like squeue -j with one unknown id
        return 1
    every = opt(args, "--states") == "all"  # as squeue -t all: ended jobs slurmctld still holds too
    for job in all_jobs():
        if job["state"] not in ("PENDING", "RUNNING") and not every:
            continue
        if ids and not ({job["id"], job["id"].split("_")[0]} & ids) or name and job["name"] != name:
            continue
        reason = job.get("reason", "None")
        print(fmt.replace("%i", job["id"]).replace("%T", job["state"]).replace("%r", reason).replace("%j", job["name"]))
    return 0

def scancel(args):
    name = opt(args, "--name")
    targets = [a for a in args if not a.startswith("-")]
    for job in all_jobs():
        if job["id"] in targets or job["id"].split("_")[0] in targets or name and job["name"] == name:
            if job["state"] in ("PENDING", "RUNNING"):
                pid = job["pid"]
                job["state"], job["exit"] = "CANCELLED", "0:15"
                save(job)
                if pid:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
    return 0

if __name__ == "__main__":
    cmd = os.path.basename(sys.argv[1]) if len(sys.argv) > 1 else ""
    if cmd == "_run":
        sys.exit(run(sys.argv[2]))
    sys.exit({"sbatch": sbatch, "sacct": sacct, "squeue": squeue, "scancel": scancel}[cmd](sys.argv[2:]))
'''


def install_fake_slurm(root: Path) -> tuple[Path, Path]:
    """bin/ with sbatch, sacct, squeue, scancel; state/ with the fake's job records."""
    bin_dir, state = root / "bin", root / "state"
    (state / "jobs").mkdir(parents=True)
    bin_dir.mkdir()
    prog = root / "fakeslurm.py"
    prog.write_text(FAKE_SLURM)
    for cmd in ("sbatch", "sacct", "squeue", "scancel"):
        wrapper = bin_dir / cmd
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {prog} {cmd} "$@"\n')
        wrapper.chmod(0o755)
    return bin_dir, state


def fake_jobs(state: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((state / "jobs").glob("*.json"))]


def set_fake_job(state_dir: Path, name: str, **fields: str) -> dict:
    """Make the fake Slurm report FIELDS (state, exit, reason...) for the job named NAME from now on, as if
    slurmctld had moved it there: for jobs held with the "hold" knob, which nothing else changes."""
    for path in (state_dir / "jobs").glob("*.json"):
        job = json.loads(path.read_text())
        if job["name"] == name:
            job.update(fields)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(job))
            tmp.replace(path)
            return job
    raise AssertionError(f"the fake Slurm has no job named {name}")


def kill_fake_jobs(state: Path) -> None:
    for job in fake_jobs(state):
        if job.get("pid") and job["state"] == "RUNNING":
            with contextlib.suppress(OSError):
                os.killpg(job["pid"], signal.SIGKILL)


def _unwrap(command: str) -> str:
    m = re.fullmatch(r"exec /bin/sh -c 'eval \"\$\(printf %s ([A-Za-z0-9+/=]+) \| base64 -d\)\"'", command)
    return base64.b64decode(m.group(1)).decode() if m else command


class FakeSSHServer:
    """asyncssh serving exec (LOGIN_SHELL -c COMMAND, as sshd does, with the fake Slurm on PATH) and SFTP on
    127.0.0.1. `commands` are the scripts hpgc sent, decoded from their any-login-shell wrapping."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_file = root / "id_client"
        self.client_key.write_private_key(str(self.client_key_file))
        self.known_hosts = root / "known_hosts"
        self.port = 0
        self.sessions = 0
        self.max_sessions_seen = 0
        self.commands: list[str] = []
        # closed: commands arrive (and count in `sessions`) but do not run until it opens again (a stalled
        # login node); tests close it to hold commands in flight, and wait for them with `wait_sessions`
        self.gate = asyncio.Event()
        self.gate.set()
        self._sessions_changed = asyncio.Condition()
        self.login_shell = "bash"
        self.trusted_ca: asyncssh.SSHKey | None = None  # set before start(): certificates it signed log in
        self.logins: list[str] = []  # the user of each connection that authenticated
        self._server: asyncssh.SSHAcceptor | None = None
        self._conns: list[asyncssh.SSHServerConnection] = []
        self._procs: set[asyncio.subprocess.Process] = set()

    @property
    def hang(self) -> bool:
        """Commands never answer while True."""
        return not self.gate.is_set()

    @hang.setter
    def hang(self, value: bool) -> None:
        if value:
            self.gate.clear()
        else:
            self.gate.set()

    async def _count(self, delta: int) -> None:
        self.sessions += delta
        self.max_sessions_seen = max(self.max_sessions_seen, self.sessions)
        async with self._sessions_changed:
            self._sessions_changed.notify_all()

    async def wait_sessions(self, n: int, timeout: float = 10) -> None:
        """Until exactly N commands are in flight on the server (arrived, not yet answered)."""
        async with asyncio.timeout(timeout), self._sessions_changed:
            await self._sessions_changed.wait_for(lambda: self.sessions == n)

    def write_known_hosts(self, key: asyncssh.SSHKey | None = None) -> None:
        pub = (key or self.host_key).export_public_key().decode().strip()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub}\n")

    async def start(self) -> None:
        outer = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                outer._conns.append(conn)
                self.conn = conn

            def auth_completed(self) -> None:
                outer.logins.append(self.conn.get_extra_info("username"))

        self._server = await asyncssh.create_server(
            Server, "127.0.0.1", self.port, server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(self._authorized()),
            process_factory=self._handle, sftp_factory=True, encoding=None, reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if not self.known_hosts.exists():
            self.write_known_hosts()

    def _authorized(self) -> str:
        lines = self.client_key.export_public_key().decode()
        if self.trusted_ca is not None:
            lines += "cert-authority " + self.trusted_ca.export_public_key().decode()
        return lines

    async def stop(self) -> None:
        """Like sshd going away: stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in self._conns:
            conn.abort()
        self._conns.clear()
        for proc in list(self._procs):  # commands whose client went away: end them with the server
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _handle(self, process: asyncssh.SSHServerProcess) -> None:
        await self._count(1)
        try:
            command = process.command or ""
            self.commands.append(_unwrap(command))
            await self.gate.wait()
            proc = await asyncio.create_subprocess_exec(
                self.login_shell, "-c", command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.env, start_new_session=True)
            self._procs.add(proc)
            feeder = asyncio.create_task(self._feed(process, proc))
            out, err = await _drain(proc)
            feeder.cancel()
            process.stdout.write(out)
            process.stderr.write(err)
            code = await proc.wait()
            self._procs.discard(proc)
            process.exit(code)
        except (asyncssh.Error, OSError, asyncio.CancelledError):
            process.exit(255)
        finally:
            await self._count(-1)

    @staticmethod
    async def _feed(process: asyncssh.SSHServerProcess, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError, asyncssh.Error):
            while True:
                data = await process.stdin.read(65536)
                if not data:
                    break
                proc.stdin.write(data)
                await proc.stdin.drain()
        with contextlib.suppress(OSError):
            proc.stdin.close()


async def _drain(proc: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
    return out, err


POLL_EVERY_S = 0.05


async def until(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 20) -> T:
    """PROBE's first truthy answer, asked until TIMEOUT s have passed (then an AssertionError naming WHAT).
    For outcomes only a question shows (a job's state in Slurm, a file on the cluster): no fixed wait
    stands for the outcome, the outcome itself is what ends the wait."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last answer: {last!r})")
        await asyncio.sleep(POLL_EVERY_S)  # the interval between two questions, not a guess at an outcome
