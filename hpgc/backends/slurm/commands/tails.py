"""The end of each failed job's stderr, for its status message: one round trip for a group of jobs, run
only in a poll where jobs were found to have failed (poll.py does not decide which: states.py does)."""

from __future__ import annotations

from hpgc.backends.slurm.commands import MARK, fill, marked

STDERR_TAIL_BYTES = 2000


def tails_command(stderr_file: str) -> str:
    """The program; stdin is `tails_input`."""
    return fill("tails.sh", MARK=MARK, STDERR_FILE=stderr_file, TAIL_BYTES=STDERR_TAIL_BYTES)


def tails_input(jobs: list[tuple[str, str]]) -> bytes:
    """(key, job dir) per job; keys are Slurm ids or hpgc job ids, neither holds '|' or a new line."""
    for key, jd in jobs:
        if any(c in key + jd for c in "|\n") or " " in key:
            raise ValueError(f"cannot list {key!r} {jd!r}")
    return "".join(f"{key}|{jd}\n" for key, jd in jobs).encode()


def parse_tails(stdout: str) -> dict[str, str]:
    """key → the tail (its lines joined by new lines, white space at the ends stripped)."""
    lines: dict[str, list[str]] = {}
    for word, rest in marked(stdout):
        if word == "stderr":
            key, _, text = rest.partition(" ")
            lines.setdefault(key, []).append(text)
    return {key: "\n".join(text).strip() for key, text in lines.items()}
