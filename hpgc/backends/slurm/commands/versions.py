"""Slurm versions: the one place where what differs between releases is decided.

hpgc is tested against the Slurm of Debian 12 (22.05), 13 (24.11) and unstable (26.05), with real outputs of
each in tests/data/slurm/<version>/. What hpgc runs (sbatch --parsable, sacct --parsable2 with the columns of
poll.FIELDS, squeue --format, scancel) and how it reads the answers are the same on all three: the recorded
outputs parse alike. What does differ is listed here, keyed by the version `hpgc check` (and the backend, on
its first connection) reads with `sbatch --version`; a command that needs a difference asks its Dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERSION_COMMAND = "sbatch --version"
# slurmdbd 22.05 may record a batch job's start before its name, and sacct then names it 'allocation' for a
# poll or two. Such a name says nothing about whose job the id is: the poller waits for the real one (as for
# a job sacct does not know yet) instead of taking the id for another job's. Harmless on later versions,
# which never show it for a batch job, so it needs no version check at the poller.
# For the same reason submit.sh looks a job up with `squeue --states=all` too (finished jobs stay in slurmctld
# for MinJobAge), not with sacct alone: 22.05 ran a job twice without it (the idempotent-submit test).
PLACEHOLDER_JOB_NAMES = frozenset({"allocation"})


def provisional_failure(state: str, exit_code: int | None, signal: int | None, end: str | None) -> bool:
    """slurmdbd 22.05 may briefly record a job whose script exited non-zero as FAILED 0:0 with no End time,
    before its real exit code arrives (seen once in CI's kill -9 test: exit 3 reported as 0). Such a record is
    not the last word: the poller waits for the next one (for squeue_grace_s at most). No real failure looks
    like it for long: a finished job always has its End, and a failure without an exit code has a signal."""
    return state == "FAILED" and exit_code == 0 and not signal and not end
TESTED = ((22, 5), (24, 11), (26, 5))
_VERSION = re.compile(r"\bslurm(?:-wlm)?\s+(\d{1,3})\.(\d{1,2})(?:\.(\d{1,3}))?", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class SlurmVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> SlurmVersion | None:
        """`sbatch --version`'s answer ('slurm 24.11.5', 'slurm-wlm 22.05.8') → the version; None if it is not one."""
        m = _VERSION.search(text or "")
        if m is None:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor:02}.{self.patch}"

    @property
    def release(self) -> str:
        return f"{self.major}.{self.minor:02}"


@dataclass(frozen=True)
class Dialect:
    """What a Slurm release accepts and prints, as far as hpgc's commands care. Unknown version: the newest
    tested behaviour (a site with a newer Slurm is more likely than one with an older one)."""

    version: SlurmVersion | None

    @property
    def tested(self) -> bool:
        return self.version is not None and (self.version.major, self.version.minor) in TESTED

    @property
    def rate_limiting(self) -> bool:
        """slurmctld can rate-limit RPCs (SlurmctldParameters=rl_enable, 23.02+): a command over the limit
        is told to back off and retries by itself, so it is slow, not failed; submissions treat Slurm's
        'temporarily unavailable' answers as busy (retried) rather than as refusals."""
        return self.version is None or self.version >= SlurmVersion(23, 2)

    def describe(self) -> str:
        if self.version is None:
            return "an unknown Slurm version"
        tested = ", ".join(f"{a}.{b:02}" for a, b in TESTED)
        return f"Slurm {self.version}" + ("" if self.tested else f" (hpgc is tested with {tested})")


def dialect(version_text: str) -> Dialect:
    return Dialect(SlurmVersion.parse(version_text))
