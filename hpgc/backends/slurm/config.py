"""Settings of one Slurm cluster, reached over SSH.

Values here end up in `#SBATCH` lines and shell commands: they are checked for characters that would
need quoting in places where Slurm (not a shell) parses them, and quoted everywhere a shell sees them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from hpgc.backends.slurm.cert_settings import CertificateSettings
from hpgc.models.names import unix_user_error
from hpgc.models.resources import PARTITION, ResourceLimits, seconds

# Slurm reads #SBATCH lines itself, without shell quoting: keep option values to a safe alphabet.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:/@+=-]+$")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+@-]*$")


class ClusterSettings(BaseModel):
    # --- SSH ---------------------------------------------------------------------------------------
    host: str = Field(description="SSH host of the cluster's login node.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port.")
    known_hosts: Path = Field(
        description="known_hosts file holding the login node's host key. Host keys are always verified: "
        "there is no option to accept an unknown key."
    )
    user: str = Field(description="SSH user hpgc logs in as (and runs jobs as, unless a unix user is mapped).")
    key_file: Path | None = Field(
        default=None, description="Private key of `user`. None: the SSH agent / default keys are used."
    )
    user_keys: dict[str, Path] = Field(
        default_factory=dict,
        description="Private key per mapped unix user (identity mapping): jobs of that user are submitted "
        "over a connection logged in as that user.",
    )
    certificates: CertificateSettings | None = Field(
        default=None, description="Log in as each mapped unix user with a short-lived SSH certificate signed "
        "for that user (docs/auth.md), instead of a key per user. user_keys entries still win for their users.")
    connect_timeout_s: float = Field(default=15.0, gt=0, description="Timeout of one SSH connection attempt.")
    keepalive_s: float = Field(
        default=15.0, gt=0, description="SSH keepalive interval; 3 missed answers close the connection."
    )
    command_timeout_s: float = Field(
        default=120.0, gt=0, description="Timeout of one remote command (sbatch, sacct, ...)."
    )
    max_channels: int = Field(
        default=8, ge=2, description="Most SSH channels open at once per connection; keep it below sshd's "
        "MaxSessions (default 10). One of them is kept for SFTP."
    )
    unreachable_timeout_s: float = Field(
        default=600.0, gt=0, description="When the cluster cannot be reached for longer than this, its "
        "active jobs are reported failed instead of waiting forever."
    )
    # --- file system -------------------------------------------------------------------------------
    work_root: str = Field(
        description="Folder on the shared file system; each job runs in WORK_ROOT/USER/JOB_ID."
    )
    image_cache: str | None = Field(
        default=None, description="Folder of .sif images on the cluster (also CWL_SINGULARITY_CACHE)."
    )
    container_runtime: Literal["apptainer", "singularity"] | None = Field(
        default=None, description="Container runtime on the compute nodes; None: containers are refused and "
        "CWL runs with --no-container."
    )
    cwltool: str = Field(default="cwltool", description="cwltool command on the compute nodes.")
    stage_in: Literal["server", "job"] = Field(
        default="server", description="Who downloads `href` inputs: 'server' (hpgc downloads and uploads "
        "them over SFTP; compute nodes are often offline) or 'job' (the job script runs curl)."
    )
    max_input_bytes: int = Field(
        default=10 * 1024**3, ge=1, description="Largest `href` input hpgc downloads for a job."
    )
    public_url_prefix: str | None = Field(
        default=None, description="Public URL where the site exposes WORK_ROOT: result files are linked "
        "there instead of streamed by hpgc. None: hpgc streams them over SFTP."
    )
    # --- sbatch ------------------------------------------------------------------------------------
    partition: str | None = Field(default=None, description="Default sbatch --partition.")
    account: str | None = Field(default=None, description="Default sbatch --account.")
    qos: str | None = Field(default=None, description="Default sbatch --qos.")
    time_limit: str | None = Field(
        default=None, description="Default sbatch --time (Slurm format, e.g. '1:00:00') when the process "
        "asks for none."
    )
    sbatch_options: list[str] = Field(
        default_factory=list, description="More #SBATCH options for every job, e.g. ['--exclusive']."
    )
    # --- what one job may ask for (execute's `hpgc:resources`, and a process's own requirements) ----
    max_cpus: int | None = Field(
        default=None, ge=1, description="Most CPUs one job may ask for; more is a 400. None: no limit here "
        "(Slurm's own limits still refuse a job at submission).")
    max_memory_mb: int | None = Field(default=None, ge=1, description="Most memory (MiB) one job may ask for.")
    max_time: str | None = Field(
        default=None, description="Longest time limit one job may ask for, in Slurm's format (e.g. '2-00:00:00').")
    max_tmp_mb: int | None = Field(default=None, ge=1, description="Most local scratch (MiB) one job may ask for.")
    max_gpus: int | None = Field(default=None, ge=0, description="Most GPUs one job may ask for (0: none).")
    partitions: list[str] | None = Field(
        default=None, description="Partitions a request may name (`hpgc:resources.partition`); None: any "
        "(Slurm refuses an unknown one at submission, and the job fails), []: none.")
    setup: list[str] = Field(
        default_factory=list, description="Shell lines run before the command in every job script, e.g. "
        "['module load apptainer']. Written verbatim: they come from the administrator."
    )
    # --- polling -----------------------------------------------------------------------------------
    poll_min_s: float = Field(default=2.0, gt=0, description="Poll interval right after a submission.")
    poll_max_s: float = Field(
        default=30.0, gt=0, description="Longest poll interval, reached gradually while nothing changes."
    )
    follow_completions: bool = Field(
        default=True, description="Each job script appends a line to WORK_ROOT/USER/.hpgc-events when it ends, "
        "and one long-lived SSH command per identity follows that file, so that a finished job is noticed at "
        "once instead of at the next poll (polling stays the safety net). It holds one SSH channel per identity.",
    )
    squeue_grace_s: float = Field(
        default=300.0, gt=0, description="How long a submitted job may be missing from both sacct and squeue "
        "before it is declared lost."
    )
    sacct_chunk: int = Field(
        default=500, ge=1, description="Job ids per sacct command (a cycle with more jobs runs several)."
    )
    max_array_size: int = Field(
        default=1001, ge=1, description="The cluster's MaxArraySize (slurm.conf; `scontrol show config`): a sweep "
        "(hpgc:sweep) is one job array of its N tasks when N is at most this, else several arrays of at most "
        "this many tasks each. Slurm's default is 1001."
    )

    @field_validator("partition", "account", "qos", "time_limit")
    @classmethod
    def _safe(cls, v: str | None) -> str | None:
        if v is not None and not SAFE_VALUE.match(v):
            raise ValueError(f"{v!r} has characters sbatch options cannot carry")
        return v

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if not PARTITION.match(name):
                raise ValueError(f"{name!r} is not a partition name (1 to 64 letters, digits and _.-)")
        return v

    @field_validator("max_time")
    @classmethod
    def _max_time(cls, v: str | None) -> str | None:
        if v is not None:
            seconds(v)
        return v

    def limits(self, name: str) -> ResourceLimits:
        """The most one job on this cluster may ask for."""
        return ResourceLimits(
            cpus=self.max_cpus, memory_mb=self.max_memory_mb, tmp_mb=self.max_tmp_mb, gpus=self.max_gpus,
            time_limit_s=seconds(self.max_time) if self.max_time else None, partitions=self.partitions,
            where=f"cluster '{name}'", setting=f"clusters.{name}.")

    @field_validator("sbatch_options")
    @classmethod
    def _safe_options(cls, v: list[str]) -> list[str]:
        for opt in v:
            if not opt.startswith("--") or not SAFE_VALUE.match(opt):
                raise ValueError(f"{opt!r} is not a plain --option[=value]")
        return v

    @field_validator("user")
    @classmethod
    def _unix_user(cls, v: str) -> str:
        # jobs of unmapped users run as this account: the rule of mapped users applies (hpgc/models/names.py)
        error = unix_user_error(v)
        if error is not None:
            raise ValueError(f"{v!r} cannot be a Unix user name here: {error}")
        return v

    @field_validator("user_keys")
    @classmethod
    def _unix_users(cls, v: dict[str, Path]) -> dict[str, Path]:
        for name in v:
            error = unix_user_error(name)
            if error is not None:
                raise ValueError(f"{name!r} cannot be a Unix user name here: {error}")
        return v

    @field_validator("work_root", "image_cache")
    @classmethod
    def _safe_path(cls, v: str | None) -> str | None:
        if v is not None and not SAFE_PATH.match(v):
            raise ValueError(f"{v!r} must be an absolute path of letters, digits and _./+@-")
        return v.rstrip("/") or "/" if v is not None else v

    @model_validator(mode="after")
    def _intervals(self) -> ClusterSettings:
        if self.poll_max_s < self.poll_min_s:
            raise ValueError("poll_max_s must be at least poll_min_s")
        return self

    def key_for(self, unix_user: str | None) -> tuple[str, Path | None]:
        """(SSH login, key file) for a job's identity."""
        if unix_user is None or unix_user == self.user:
            return self.user, self.key_file
        if unix_user in self.user_keys:
            return unix_user, self.user_keys[unix_user]
        if self.certificates is not None:
            return unix_user, None
        raise ValueError(f"no SSH key configured for unix user {unix_user!r} (user_keys, or certificates)")

    def uses_certificate(self, login: str) -> bool:
        """Whether `login` logs in with a certificate: certificates are configured and no key is."""
        if self.certificates is None:
            return False
        return self.key_file is None if login == self.user else login not in self.user_keys
