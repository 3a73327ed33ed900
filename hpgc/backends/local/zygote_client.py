"""The server's side of the CWL zygote (cwl_zygote.py): started on the first CWL job, asked to fork one
child per job, told when each ends. A job looks to the local backend like an asyncio subprocess (`pid`,
`returncode`, `wait()`), so cancellation (kill of its process group), the exit file and the restart rules
are the same for both.

If the zygote dies, the jobs it started cannot be waited for any more: their process groups are killed and
they end with -9 (SIGKILL); the next CWL job starts a new zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpgc.backends.local.environment import job_environment
from hpgc.backends.local.settings import LocalBackendSettings

log = logging.getLogger(__name__)
_HPGC_ROOT = str(Path(__file__).resolve().parents[3])
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from hpgc.backends.local.cwl_zygote import main; main()"
LOST = -signal.SIGKILL


def use_zygote(settings: LocalBackendSettings) -> bool:
    """The zygote runs this Python's cwltool: only for the default `cwltool` command, when it is importable."""
    return settings.cwl_zygote and settings.cwltool == "cwltool" and importlib.util.find_spec("cwltool") is not None


def zygote_environment(settings: LocalBackendSettings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The jobs' minimal environment without a job's own variables: what the zygote starts with."""
    env = job_environment(settings, Path("/nonexistent"), {}, environ)
    for name in ("HPGC_JOB_DIR", "TMPDIR"):
        env.pop(name, None)
    env["PATH"] = env["PATH"].split(":", 1)[1]
    return env


class ZygoteJob:
    """A job forked by the zygote, shaped like asyncio.subprocess.Process for the backend."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._done = asyncio.get_running_loop().create_future()

    def _end(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self._done.set_result(code)

    async def wait(self) -> int:
        return int(await asyncio.shield(self._done))


class Zygote:
    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        self.env = dict(env)  # the zygote's own environment: the jobs' minimal one, never the server's
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ready: asyncio.Future[None] | None = None
        self._started: dict[int, asyncio.Future[ZygoteJob]] = {}
        self._jobs: dict[int, ZygoteJob] = {}
        self._next = 0
        self._lock = asyncio.Lock()

    async def _ensure(self) -> socket.socket:
        async with self._lock:
            if self._sock is None or self._ready is None:
                self._start()
            assert self._ready is not None and self._sock is not None
            await asyncio.shield(self._ready)
            return self._sock

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, _HPGC_ROOT, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        ours.setblocking(False)
        self._sock = ours
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._handle(json.loads(data))

    def _handle(self, msg: dict[str, Any]) -> None:
        if msg.get("ready") and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        elif "id" in msg:
            fut = self._started.pop(msg["id"], None)
            if fut is not None and not fut.done():
                if "pid" in msg:
                    # registered now, before the next message, which may already be this pid's end
                    job = self._jobs[int(msg["pid"])] = ZygoteJob(int(msg["pid"]))
                    fut.set_result(job)
                else:
                    fut.set_exception(OSError(msg.get("error", "the zygote could not start the job")))
        elif "pid" in msg:
            job = self._jobs.pop(int(msg["pid"]), None)
            if job is not None:
                job._end(int(msg["code"]))

    def _lost(self) -> None:
        """The zygote ended (killed, or it failed to start): nothing started by it can be waited for."""
        sock, proc = self._sock, self._proc
        self._sock, self._proc = None, None
        if sock is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        err = OSError("the CWL zygote stopped")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(err)
            self._ready.exception()  # retrieved: a zygote that never came up is reported to the job
        self._ready = None
        for fut in self._started.values():
            if not fut.done():
                fut.set_exception(err)
        self._started.clear()
        for pid, job in self._jobs.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            job._end(LOST)
        if self._jobs:
            log.warning("the CWL zygote stopped: %d job(s) it ran were killed", len(self._jobs))
        self._jobs.clear()

    async def spawn(self, argv: list[str], cwd: Path, env: Mapping[str, str], stdout: int, stderr: int) -> ZygoteJob:
        """Fork a child that runs `argv` (cwltool's) as a subprocess would; OSError when the zygote cannot."""
        sock = await self._ensure()
        self._next += 1
        request_id = self._next
        fut: asyncio.Future[ZygoteJob] = asyncio.get_running_loop().create_future()
        self._started[request_id] = fut
        body = json.dumps({"id": request_id, "argv": argv, "cwd": str(cwd), "env": dict(env)}).encode()
        try:
            socket.send_fds(sock, [body], [stdout, stderr])
        except OSError:
            self._started.pop(request_id, None)
            self._lost()
            raise
        return await fut

    async def close(self) -> None:
        if self._sock is not None:
            self._lost()
