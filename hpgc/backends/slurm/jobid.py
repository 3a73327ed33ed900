"""Slurm job ids, in every form Slurm prints them, and hpgc's stored form `cluster:id`.

This is the one place that knows what a Slurm job id looks like. Every id that reaches a command line
passes `SlurmJobId.parse` first, so only digits and Slurm's own punctuation (`_ [ ] - , % +`) ever do.

- plain `123`; array task `123_4`; a whole array or its pending tasks `123_[0-9%4]`; het-job component
  `123+0`; with federation, sbatch --parsable prints `123;cluster`;
- steps (`123.batch`, `123_4.0`, `123+0.extern`) are not jobs: `parse` refuses them, `split_step` takes a
  sacct JobID apart into (job, step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_EXPANDED = 100_000  # array tasks one pending range may stand for (above any MaxArraySize)
_ID = re.compile(
    r"(?P<job>[0-9]{1,20})"
    r"(?:_(?P<task>[0-9]{1,10}|\[[0-9,%\-]{1,200}\]))?"
    r"(?:\+(?P<het>[0-9]{1,6}))?"
    r"(?:;(?P<cluster>[A-Za-z0-9_-]{1,100}))?"
)


@dataclass(frozen=True)
class SlurmJobId:
    job: str  # the job (or array job, or het leader) number
    task: str | None = None  # array task number, or a bracketed range of tasks
    het: str | None = None  # het-job component offset
    cluster: str | None = None  # federation: the cluster sbatch named; never part of what commands get

    @classmethod
    def parse(cls, text: str) -> SlurmJobId:
        """ValueError unless `text` (surrounding white space ignored) is one Slurm job id."""
        match = _ID.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"not a Slurm job id: {text.strip()[:100]!r}")
        return cls(**match.groupdict())

    @classmethod
    def find(cls, text: str) -> SlurmJobId | None:
        """The id on the last non-empty line of a command's output (sbatch --parsable, squeue %i), if any."""
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            return cls.parse(lines[-1]) if lines else None
        except ValueError:
            return None

    def __str__(self) -> str:
        """The form sacct -j, squeue -j and scancel take (no federation suffix)."""
        task = f"_{self.task}" if self.task is not None else ""
        het = f"+{self.het}" if self.het is not None else ""
        return f"{self.job}{task}{het}"

    @property
    def is_array(self) -> bool:
        return self.task is not None and self.task.startswith("[")

    def tasks(self, limit: int = MAX_EXPANDED) -> list[SlurmJobId]:
        """The array tasks a bracketed range names (`123_[0-3,7%2]` → 123_0..123_3, 123_7; `%N` is the
        throttle, not a task); [] for anything else or a range of more than `limit` tasks."""
        if not self.is_array or self.task is None:
            return []
        out: list[SlurmJobId] = []
        for part in self.task[1:-1].split("%")[0].split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                return []
            first, last = int(lo), int(hi or lo)
            if last - first + len(out) >= limit:
                return []
            out.extend(SlurmJobId(self.job, str(t), self.het) for t in range(first, last + 1))
        return out


def split_step(text: str) -> tuple[str, str]:
    """A sacct JobID → (job id text, step name or ''): '123_4.batch' → ('123_4', 'batch')."""
    job, _, step = text.partition(".")
    return job, step


def external_id(cluster: str, job_id: SlurmJobId) -> str:
    """What the Slurm backend returns from submit and finds again in JobRef.external_id."""
    return f"{cluster}:{job_id}"


def parse_external_id(text: str | None) -> tuple[str | None, SlurmJobId | None]:
    """`cluster:id` → (cluster, id); a malformed or missing id is (cluster or None, None)."""
    if not text:
        return None, None
    cluster, _, sid = text.rpartition(":")
    try:
        return cluster or None, SlurmJobId.parse(sid)
    except ValueError:
        return cluster or None, None
