"""What an execute request may ask for (`hpgc:resources`), what a process or a site allows, and the
conversions between people's units (16G, 2:00:00) and the numbers a RunSpec carries (MiB, seconds).

Every value here can end up in an #SBATCH line, which Slurm parses without a shell: numbers are numbers,
and a partition name is kept to a plain alphabet before anything else looks at it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

PARTITION = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MEMORY = re.compile(r"^([0-9]{1,12})(?:\.([0-9]{1,6}))?\s?([KMGT]?)(?:i?B)?$", re.IGNORECASE)
_UNIT_MB = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}  # Slurm's: binary, MiB without a unit
_CLOCK = re.compile(r"^(?:([0-9]{1,4})-)?([0-9]{1,7})(?::([0-9]{1,2}))?(?::([0-9]{1,2}))?$")
MAX_SECONDS = 365 * 86400  # a year: above it a value is a typo, and Slurm's own limit is near


def memory_mb(value: int | str) -> int:
    """'16G', '512M', '1.5G', '1048576K' or an integer (MiB, as sbatch --mem) → MiB, rounded up."""
    if isinstance(value, bool):
        raise ValueError("must be a number of MiB or a size such as '16G'")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("must be at least 1 MiB")
        return value
    m = _MEMORY.match(value.strip())
    if m is None:
        raise ValueError(f"{value[:40]!r} is not a size: give e.g. '16G', '512M' or a number of MiB")
    number = float(f"{m.group(1)}.{m.group(2) or 0}")
    mb = math.ceil(number * _UNIT_MB[m.group(3).upper()])
    if mb < 1:
        raise ValueError("must be at least 1 MiB")
    return mb


def seconds(value: int | str) -> int:
    """Slurm's time formats ('MM', 'MM:SS', 'HH:MM:SS', 'D-HH', 'D-HH:MM', 'D-HH:MM:SS') or an integer of
    seconds → seconds. (A bare number in a string is minutes, as for sbatch --time.)"""
    if isinstance(value, bool):
        raise ValueError("must be seconds or a Slurm time such as '2:00:00'")
    if isinstance(value, int):
        total = value
    else:
        m = _CLOCK.match(value.strip())
        if m is None:
            raise ValueError(f"{value[:40]!r} is not a Slurm time: give e.g. '2:00:00', '1-12:00:00' or seconds")
        days, first, second, third = m.groups()
        parts = [int(p) for p in (first, second, third) if p is not None]
        if days is not None:  # D-HH[:MM[:SS]]
            h, mi, s = [*parts, 0, 0][:3]
            total = int(days) * 86400 + h * 3600 + mi * 60 + s
        elif len(parts) == 1:
            total = parts[0] * 60  # MM
        elif len(parts) == 2:
            total = parts[0] * 60 + parts[1]  # MM:SS
        else:
            total = parts[0] * 3600 + parts[1] * 60 + parts[2]  # HH:MM:SS
    if total < 1:
        raise ValueError("must be at least 1 second")
    if total > MAX_SECONDS:
        raise ValueError(f"must be at most {MAX_SECONDS} s (a year)")
    return total


def clock(total: int) -> str:
    """Seconds → Slurm's [D-]HH:MM:SS."""
    days, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02}:{m:02}:{s:02}" if days else f"{h}:{m:02}:{s:02}"


class ResourceRequest(BaseModel):
    """The `hpgc:resources` member of an execute request: what this one job asks for, within what its process
    and the site allow (a 400 names the limit otherwise)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no "4" for 4, no true for 1

    cpus: int | None = Field(default=None, ge=1, le=100000, description="CPUs (sbatch --cpus-per-task).")
    memory: int | str | None = Field(
        default=None, description="Memory: a size such as '16G' or '512M' (binary units, as Slurm's), or a "
        "number of MiB (sbatch --mem).", json_schema_extra={"example": "16G"})
    time: int | str | None = Field(
        default=None, description="Wall time limit: Slurm's formats ('2:00:00', '30', '1-12:00:00'; a bare "
        "number in a string is minutes) or an integer of seconds (sbatch --time).",
        json_schema_extra={"example": "2:00:00"})
    tmp: int | str | None = Field(
        default=None, description="Local scratch on the node, as `memory` (sbatch --tmp).")
    gpus: int | None = Field(default=None, ge=0, le=1024, description="GPUs (sbatch --gpus).")
    partition: str | None = Field(
        default=None, description="Slurm partition, one of those the site allows (sbatch --partition).")
    account: str | None = Field(
        default=None, description="Slurm account to charge, one of those your identity grants (sbatch "
        "--account); default: your identity's own account, else the cluster's.")
    qos: str | None = Field(
        default=None, description="Slurm QOS, one of those your identity grants (sbatch --qos).")

    @field_validator("memory", "tmp")
    @classmethod
    def _size(cls, v: int | str | None) -> int | str | None:
        if v is not None:
            memory_mb(v)
        return v

    @field_validator("time")
    @classmethod
    def _time(cls, v: int | str | None) -> int | str | None:
        if v is not None:
            seconds(v)
        return v

    @field_validator("partition", "account", "qos")
    @classmethod
    def _partition(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not PARTITION.match(v):
            what = "QOS" if info.field_name == "qos" else info.field_name
            raise ValueError(f"a {what} name is 1 to 64 letters, digits and _.-")
        return v


class ResourceLimits(BaseModel):
    """The most a job may ask for, from its process or from the site; None: no limit here."""

    cpus: int | None = None
    memory_mb: int | None = None
    time_limit_s: int | None = None
    tmp_mb: int | None = None
    gpus: int | None = None
    partitions: list[str] | None = Field(default=None, description="None: any; []: none may be named.")
    where: str = Field(default="", description="Whose limit, for the message: e.g. \"cluster 'hpc'\".")
    setting: str = Field(default="", description="Prefix of the settings a site limit comes from.")


def as_request(cpus: int | None = None, memory_mb: int | None = None, time_limit_s: int | None = None,
               tmp_mb: int | None = None, gpus: int | None = None, partition: str | None = None,
               nodes: int | None = None, account: str | None = None, qos: str | None = None) -> dict[str, Any]:
    """Resources in the request's own form (what `GET /jobs/{id}` shows as `hpgc:resources`): a client can
    copy it into its next request."""
    out: dict[str, Any] = {"cpus": cpus, "memory": f"{memory_mb}M" if memory_mb else None,
                           "time": clock(time_limit_s) if time_limit_s else None,
                           "tmp": f"{tmp_mb}M" if tmp_mb else None, "gpus": gpus, "partition": partition,
                           "nodes": nodes, "account": account, "qos": qos}
    return {k: v for k, v in out.items() if v is not None}
