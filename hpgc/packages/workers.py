"""Deploy's heavy lifting in worker processes, each bounded in time and memory.

A user's document is parsed and validated by cwltool here, not in the server: a YAML alias bomb or a
document that keeps cwltool busy would otherwise hold the event loop (every request waits) and the server's
memory. Each worker is a separate process (spawned, not forked: the server has threads and an event loop)
with RLIMIT_AS set, serving one task at a time. A task that runs over its time is killed with its worker, and
a worker that dies (out of memory) is replaced; the client gets a 400 that names the limit. Workers import
cwltool once, when they start, so an ordinary deploy does not pay for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hpgc.errors import BackendUnavailable, HpgcError, InvalidPackage

log = logging.getLogger(__name__)
START_TIMEOUT_S = 120.0  # a fresh worker's imports, on a busy machine; not counted against a task


class DeploySettings(BaseModel):
    timeout_s: float = Field(
        default=30.0, gt=0,
        description="Longest time parsing and validating one deployed document may take (YAML parsing, cwltool "
        "validation and packing); longer → its worker is killed and the deploy gets a 400.")
    memory_mb: int = Field(
        default=1024, ge=256,
        description="Address-space limit (RLIMIT_AS) of each deploy worker process, in MiB; a document that "
        "needs more gets a 400 and the worker is replaced.")
    workers: int = Field(
        default=2, ge=1,
        description="Deploy worker processes kept running (each holds cwltool, ~100 MiB); more deploys wait.")
    start_with_server: bool = Field(
        default=True,
        description="Start the workers with the server and have them import cwltool at once, so no deploy waits "
        "for it; false: start them at the first deploy and import cwltool when a document needs it.")


_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from hpgc.packages.workers import main; main()"
_HPGC_ROOT = str(Path(__file__).resolve().parents[2])  # the child imports this very hpgc, wherever it lives


class _Worker:
    """One worker process and the parent's end of its socket.

    A plain `python -c` child, not multiprocessing's spawn: spawn re-imports the server's __main__, which
    is whatever script embeds hpgc."""

    def __init__(self, memory_mb: int, warm: bool) -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, _HPGC_ROOT, str(theirs.fileno()), str(memory_mb), str(int(warm))],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # it answers through the socket only: nothing of a document in the log
                start_new_session=True)  # its own process group: a kill takes whatever cwltool started too
            self.conn = Connection(os.dup(ours.fileno()))
        self.ready = False

    async def receive(self, timeout: float) -> Any:
        """The next message, or TimeoutError; EOFError if the worker died."""
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = self.conn.fileno()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, timeout)
        finally:
            loop.remove_reader(fd)
        # the worker writes one whole message: reading it blocks only for as long as a large answer takes
        return await asyncio.to_thread(self.conn.recv)

    async def call(self, func: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        if not self.ready:
            await self.receive(START_TIMEOUT_S)
            self.ready = True
        self.conn.send((func, args))
        return await self.receive(timeout)

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 10)
        self.conn.close()


class DeployWorkers:
    """A pool of bounded worker processes; `run(func, *args)` runs a module-level function in one."""

    def __init__(self, settings: DeploySettings) -> None:
        self.settings = settings
        self._idle: asyncio.LifoQueue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self._closed = False

    async def _pool(self) -> asyncio.LifoQueue[_Worker]:
        if self._closed:
            raise BackendUnavailable("the server is shutting down; deploy again in a moment")
        if self._idle is None:  # lazily, on the first deploy's loop
            self._idle = asyncio.LifoQueue()  # the worker used last is the warmest (its imports are done)
            for _ in range(self.settings.workers):
                self._idle.put_nowait(await self._spawn())
        return self._idle

    async def start(self) -> None:
        """Start the workers now (they import cwltool in the background), so the first deploy is warm."""
        await self._pool()

    async def _spawn(self) -> _Worker:
        worker = await asyncio.to_thread(_Worker, self.settings.memory_mb, self.settings.start_with_server)
        self._all.add(worker)
        return worker

    async def run(self, func: Callable[..., Any], *args: Any, what: str = "validating the document") -> Any:
        idle = await self._pool()
        worker = await idle.get()
        healthy = False
        try:
            kind, value = await worker.call(func, args, self.settings.timeout_s)
            healthy = kind != "memory"
        except TimeoutError:
            raise InvalidPackage(f"{what} took longer than {self.settings.timeout_s:g} s, the limit "
                                 "(deploy.timeout_s) of this server") from None
        except (EOFError, OSError):
            kind, value = "memory", None  # killed by the kernel or died: RLIMIT_AS is the likely cause
        finally:
            if healthy:
                idle.put_nowait(worker)
            else:
                self._all.discard(worker)
                await worker.kill()
                if not self._closed:
                    idle.put_nowait(await self._spawn())
        if kind == "ok":
            return value
        if kind == "error":
            raise value
        if kind == "memory":
            raise InvalidPackage(f"{what} needed more than {self.settings.memory_mb} MiB, the limit "
                                 "(deploy.memory_mb) of this server")
        log.warning("deploy worker: unexpected %s", value)
        raise InvalidPackage(f"{what} failed: {value}")

    async def close(self) -> None:
        self._closed = True
        workers, self._all = self._all, set()
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)  # asks it to leave; kill below if it does not
        deadline = time.monotonic() + 5
        for worker in workers:
            if worker.ready:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(worker.proc.wait, max(0.0, deadline - time.monotonic()))
            await worker.kill()
        self._idle = None


def main() -> None:
    """The worker process: `python -c ... HPGC_ROOT FD MEMORY_MB WARM` (see _Worker)."""
    _serve(Connection(int(sys.argv[2])), int(sys.argv[3]), sys.argv[4] == "1")


def _serve(conn: Connection, memory_mb: int, warm: bool) -> None:
    """The worker's loop: (func, args) in, ("ok", result) | ("error", HpgcError) | ("memory"|"crash", …) out."""
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.getLogger().handlers.clear()  # nothing of a hostile document reaches the server's log
    if warm:  # before its first task (which waits for "ready", outside its time limit), not during it
        with contextlib.suppress(Exception):
            import cwltool.main  # noqa: F401
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        func, args = msg
        try:
            conn.send(("ok", func(*args)))
        except HpgcError as exc:
            conn.send(("error", exc))
        except MemoryError:
            with contextlib.suppress(Exception):
                conn.send(("memory", None))
            os._exit(1)  # its heap may be in any state: the pool replaces it
        except RecursionError:
            conn.send(("crash", "the document nests too deeply"))
        except Exception as exc:  # a hostile document may break cwltool in ways nobody listed: a 400, not a 500
            conn.send(("crash", f"{type(exc).__name__}: {exc}"[:500]))
