"""Settings of the local backend (`[local]`, HPGC_LOCAL__*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator


class LocalBackendSettings(BaseModel):
    max_jobs: int = Field(default=4, ge=1, description="Jobs run at once on this machine; others wait.")
    cwltool: str = Field(default="cwltool", description="cwltool command used for CWL packages.")
    cwl_zygote: bool = Field(
        default=True,
        description="Run CWL jobs in processes forked from one pre-started Python that has cwltool loaded, "
        "instead of a new cwltool process per job (which spends about a second starting). Only with the default "
        "`cwltool` and when this Python can import it; each job is still its own process, session, working "
        "directory and environment (docs/performance.md).",
    )
    container_runtime: str | None = Field(
        default=None,
        description="Run container packages with this runtime (apptainer/singularity); "
        "None: containers are refused and CWL runs with --no-container.",
    )
    image_cache: Path | None = Field(default=None, description="Folder of .sif images for container runs.")
    allow_user_deploy: bool = Field(
        default=False,
        description="Let users who are not administrators deploy or replace processes that run on the local "
        "backend. A deployed package runs as the server's own account and can read what it can (the database, "
        "the issuer's keys): leave false unless every user with the deploy scope is trusted like an admin.",
    )
    data_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose files users may name as inputs (file:///...), used in place. Local jobs run as "
        "the server's own account, so every user can then read every file under them: list only shared data "
        "(never the data dir). Empty: file paths are refused (403).")
    pass_env: list[str] = Field(
        default_factory=list,
        description="Variables of the server's environment passed on to local jobs, besides the minimal set "
        "(PATH, HOME, USER, LOGNAME, LANG, LC_*, TZ); names or shell patterns (e.g. 'APPTAINER_*', 'https_proxy'). "
        "HPGC_* variables are never passed on.",
    )

    @field_validator("pass_env")
    @classmethod
    def _no_hpgc_vars(cls, names: list[str]) -> list[str]:
        # hpgc's own settings hold its secrets (callback key, client secrets): a job must never see them
        bad = [n for n in names if n.upper().startswith("HPGC")]
        if bad:
            raise ValueError(f"HPGC_* variables are never passed on to jobs: {', '.join(bad)}")
        return names
