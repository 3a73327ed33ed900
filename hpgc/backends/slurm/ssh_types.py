"""What the SSH client hands out (results, errors) and its small helpers: the command line any login shell
runs as sh, readable error texts."""

from __future__ import annotations

import base64
import signal
from dataclasses import dataclass

import asyncssh

from hpgc.backends.base import BackendError


class SSHError(BackendError):
    """The cluster could not be reached, or a command did not finish in time."""


class RemoteExit(BackendError):
    """A streamed command exited non-zero: its own refusal (stderr is the message), not a connection problem."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class HostKeyError(SSHError):
    """The login node's host key is not the one in known_hosts: never retried silently."""


@dataclass
class Result:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0



def for_any_login_shell(script: str) -> str:
    """The command line that has /bin/sh run `script` whatever the account's login shell is (sh, bash, zsh,
    csh, tcsh, fish...): sshd hands every command to the login shell, and hpgc's scripts are POSIX sh.
    The script travels base64-encoded, a text no shell gives any meaning to, inside single quotes."""
    encoded = base64.b64encode(script.encode()).decode()
    return f"exec /bin/sh -c 'eval \"$(printf %s {encoded} | base64 -d)\"'"


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals(f"SIG{name}"))
    except ValueError:
        return 127


def _text(data: bytes | str) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, asyncssh.Error) else f"{type(exc).__name__}: {text}"
