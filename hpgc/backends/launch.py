"""Launchers (Parsl's word): how a job's command is wrapped to run, the same for every backend. A CWL
package runs under cwltool; a command package runs as it is, or inside its container image with the
configured runtime (apptainer/singularity `exec`). Backends only say where files are.
"""

from __future__ import annotations

from hpgc.backends.base import BackendError
from hpgc.models.run import Container, RunSpec

CWL_TOOL_FILE = "tool.cwl"
CWL_JOB_FILE = "job.json"


def cwltool_argv(cwltool: str, containers: bool, outdir: str, tmp_prefix: str, folder: str = "") -> list[str]:
    """cwltool for the packed tool.cwl + job.json in FOLDER (a prefix ending with '/', or '' for the cwd);
    its stdout is the outputs manifest. Without a container runtime, CWL runs with --no-container."""
    return [cwltool, "--quiet", "--outdir", outdir, "--tmpdir-prefix", tmp_prefix,
            "--preserve-environment", "HPGC_JOB_DIR", "--singularity" if containers else "--no-container",
            folder + CWL_TOOL_FILE, folder + CWL_JOB_FILE]


def toil_argv(toil: str, containers: bool, job_store: str, logs_dir: str, log_file: str,
              partition: str | None = None, qos: str | None = None, folder: str = "") -> list[str]:
    """toil-cwl-runner for the same tool.cwl + job.json, each step its own Slurm job; like cwltool, its stdout is
    the outputs manifest. The job store and the steps' logs lie in the job directory (a shared file system)."""
    argv = [toil, "--batchSystem", "slurm", "--jobStore", job_store, "--batchLogsDir", logs_dir,
            "--logFile", log_file, "--logInfo", "--outdir", "outputs", "--preserve-environment", "HPGC_JOB_DIR",
            "--singularity" if containers else "--no-container"]
    if containers:  # the images are in the cache (CWL_SINGULARITY_CACHE): compute nodes pull nothing
        argv.append("--no-prepull")
    if partition:
        argv += ["--slurmPartition", partition]
    if qos:
        argv += ["--slurmQoS", qos]
    return [*argv, folder + CWL_TOOL_FILE, folder + CWL_JOB_FILE]


def command_argv(spec: RunSpec) -> list[str]:
    if not spec.argv:
        raise BackendError("the package gives no command to run")
    return list(spec.argv)


def check_container(container: Container, runtime: str | None, image_cache: object | None, where: str,
                    settings_hint: str = "") -> str:
    """The runtime to use; BackendError saying what to configure when WHERE has none, or when the image is not
    a plain file name of the cache."""
    if not runtime or not image_cache:
        raise BackendError(f"this package runs in a container, but {where} has no container_runtime and "
                           f"image_cache configured{settings_hint}")
    for image in container.candidates():
        if "/" in image or image.startswith("."):
            raise BackendError(f"image {image!r} must be a file name in the image cache")
    return runtime


def container_argv(runtime: str, image: str, argv: list[str], binds: list[str] | None = None) -> list[str]:
    return [runtime, "exec", *bind_options(binds), image, *argv]


def bind_options(binds: list[str] | None) -> list[str]:
    """Files used in place, visible read-only at the same path inside the container (apptainer/singularity)."""
    out: list[str] = []
    for path in binds or []:
        if not path.startswith("/") or any(c in path for c in ",:\n"):
            raise BackendError(f"{path!r} cannot be bound into a container (',' and ':' separate bind paths)")
        out += ["--bind", f"{path}:{path}:ro"]
    return out
