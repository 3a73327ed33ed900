"""What a local job gets of this machine: its environment (minimal, never hpgc's settings) and the
commands it is started with, found on PATH or beside this Python."""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from hpgc.backends.local.settings import LocalBackendSettings

# what every job gets of the server's environment: enough for tools and runtimes to work, no settings
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_*", "TZ")


def job_environment(
    settings: LocalBackendSettings, jd: Path, spec_env: Mapping[str, str], environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a job: the minimal set and `local.pass_env` from the server's, the spec's own
    variables, its bin/ first on PATH, TMPDIR in the job directory. Never an HPGC_* setting of the server
    (HPGC_CALLBACKS__SECRET, HPGC_AUTH__...) whatever `pass_env` says."""
    source = os.environ if environ is None else environ
    patterns = (*BASE_ENV, *settings.pass_env)
    env = {name: value for name, value in source.items()
           if not name.upper().startswith("HPGC") and any(fnmatch.fnmatchcase(name, p) for p in patterns)}
    env.update(spec_env)
    env["PATH"] = f"{jd / 'bin'}:{env.get('PATH') or os.defpath}"
    env["TMPDIR"] = str(jd / "tmp")
    env["HPGC_JOB_DIR"] = str(jd)  # the one hpgc variable: the helper and kill_orphan rely on it
    if settings.image_cache:
        env["CWL_SINGULARITY_CACHE"] = str(settings.image_cache)
    return env


def find_command(name: str) -> str:
    """A command on PATH, or installed beside this Python (the venv's bin/ when it is not activated)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    return found or name
