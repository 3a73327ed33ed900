"""The shell programs hpgc runs on a cluster's login node, one module per command (FirecREST's pattern):
each holds its command line, whose program text lies beside it as a .sh/.awk file (package data), and the
parser of that program's output. Nothing here talks to SSH: the backend runs the text and hands back what
it printed. Variable data (job lists, file trees) goes on stdin, so a command's text does not grow with the
number of jobs; every value spliced into a program is `shlex.quote`d or a number.

What Slurm prints is interpreted in Python only: job ids by hpgc/backends/slurm/jobid.py, states by
hpgc/backends/slurm/states.py, sacct and squeue lines by poll.py.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

MARK = "@@hpgc"  # starts every line a program prints for its parser (anything else is Slurm's or noise)
_SLOT = re.compile(r"\{\{([A-Z_]+)\}\}")


@cache
def program(name: str) -> str:
    """The text of a program file beside this module."""
    return files(__package__).joinpath(name).read_text()


def fill(name: str, **values: object) -> str:
    """The program NAME with each {{SLOT}} replaced by values[SLOT] (already quoted by the caller)."""
    text = _SLOT.sub(lambda m: str(values[m.group(1)]), program(name))
    return text


def marked(stdout: str) -> list[tuple[str, str]]:
    """(word, rest) of each 'MARK word rest' line of a program's output."""
    out = []
    for line in stdout.splitlines():
        if line.startswith(MARK + " "):
            word, _, rest = line[len(MARK) + 1:].partition(" ")
            out.append((word, rest))
    return out
