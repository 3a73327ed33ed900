"""The CWL zygote: one pre-started Python that has imported cwltool and loaded the CWL schemas, and forks a
child per CWL job that runs cwltool's own `main()` on the job's argv — cwltool's semantics, without paying
its ~1 s start-up (import and schema loading) per job. The server talks to it through zygote_client.py.

Each child is set up as the subprocess it replaces would be: its own session (process group: a dismiss
kills the whole tree), the job directory as working directory, exactly the job's environment, stdin from
/dev/null, stdout and stderr on the files the server opened (passed with SCM_RIGHTS). The zygote itself is a
fresh `python -c` (never a fork of the server: it holds none of the server's memory or secrets), started with
the jobs' minimal environment (a job reading /proc/<its cwltool>/environ sees that, no HPGC_* setting), and
single-threaded when it forks. It exits when the server's end of its socket closes.

Protocol (one SOCK_SEQPACKET message each, JSON):
  zygote → server  {"ready": true}                    once cwltool is loaded
  server → zygote  {"id", "argv", "cwd", "env"} + 2 fds (stdout, stderr)
  zygote → server  {"id", "pid"}                      at once, before any exit of that pid is reported
  zygote → server  {"pid", "code"}                    when a child ended (code as asyncio gives: -N = signal N)
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
import traceback
from typing import Any

MAX_MESSAGE = 1 << 20
CWL_VERSIONS = ("v1.0", "v1.1", "v1.2")


def _warm() -> Any:
    """Import cwltool and load the standard schemas: what every job would otherwise pay."""
    import cwltool.main
    from cwltool.process import get_schema

    for version in CWL_VERSIONS:
        get_schema(version)
    return cwltool.main


def _child(cwl: Any, request: dict[str, Any], fds: list[int], closing: list[int]) -> None:
    """In the forked child: become the job's process, run cwltool, never return."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in (devnull, *fds):
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # computed again from the job's TMPDIR
        argv = request["argv"]
        sys.argv = list(argv)
        # cwltool's main() forgets the loaded standard schemas unless given a callback; with the flags hpgc
        # passes (never --enable-ext) the callback must do what it would have done: keep the standard ones
        keep = None if "--enable-ext" in argv else (lambda: None)
        code = cwl.main(argv[1:], custom_schema_callback=keep)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # whatever happens, the child must end here, never back in the zygote's loop
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or full stream must not stop the exit
                stream.flush()
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def serve(sock: socket.socket) -> None:
    cwl = _warm()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wakeup fd is written
    sock.send(json.dumps({"ready": True}).encode())
    while True:
        readable, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            _reap(sock)
        if sock in readable:
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2)
            if not message:
                return  # the server is gone: its jobs live on in their own sessions, as subprocesses would
            request = json.loads(message)
            if len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                sock.send(json.dumps({"id": request.get("id"), "error": "no stdout/stderr given"}).encode())
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(cwl, request, fds, [sock.fileno(), wake_r, wake_w])
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"id": request["id"], "pid": pid}).encode())
            _reap(sock)  # a child that already ended is reported after its pid


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.send(json.dumps({"pid": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def main() -> None:
    """`python -c ... HPGC_ROOT FD` (see zygote_client.py)."""
    sock = socket.socket(fileno=int(sys.argv[2]))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server is gone
        serve(sock)
