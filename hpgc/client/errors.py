"""What can go wrong talking to an hpgc server, each with the exit code the command line gives it."""

from __future__ import annotations

from typing import Any

# Exit codes of the `hpgc` client commands (docs/clients.md): scripts may rely on them.
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


class ClientError(Exception):
    """Base of the client's errors; `str()` is one readable line."""

    exit_code = EXIT_JOB_FAILED


class UsageError(ClientError):
    """The caller asked for something that cannot be sent (a bad -i, a local file, a missing URL)."""

    exit_code = EXIT_USAGE


class AuthError(ClientError):
    """No usable token: not logged in, the login was denied or expired, the server refused the token."""

    exit_code = EXIT_AUTH


class Unreachable(ClientError):
    """The server (or its issuer) could not be reached, or answered that it is unavailable."""

    exit_code = EXIT_UNREACHABLE


class ProblemError(ClientError):
    """The server answered with an error; `problem` is its RFC 7807 document (or what could be made of it)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        title = str(problem.get("title") or f"HTTP {status}")
        detail = problem.get("detail")
        super().__init__(f"{title}: {detail}" if detail else title)

    @property
    def type(self) -> str | None:
        value = self.problem.get("type")
        return value if isinstance(value, str) else None

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        if self.status in (401, 403):
            return EXIT_AUTH
        if self.status in (502, 503, 504):
            return EXIT_UNREACHABLE
        return EXIT_USAGE if 400 <= self.status < 500 else EXIT_JOB_FAILED


class JobFailed(ClientError):
    """A job ended `failed` (or `dismissed` while being waited for); `status` is its last statusInfo."""

    def __init__(self, job_id: str, status: str, message: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.message = message
        one_line = " ".join((message or "").split())  # a job's message may quote its stderr
        super().__init__(f"job {job_id} {status}" + (f": {one_line}" if one_line else ""))
