"""What a backend is asked to run (RunSpec) and what it reports back (BackendStatus).

A RunSpec is the whole contract between `hpgc/packages` (which builds it from an application package and
an execute request) and `hpgc/backends` (which runs it). Every path in it is relative to the job
directory, which the backend chooses; no file name in it comes from a request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from hpgc.models.ogc import StatusCode
from hpgc.models.resources import as_request


class StagedFile(BaseModel):
    """A file to put into the job directory before the command runs."""

    path: str = Field(description="Generated path relative to the job directory, e.g. 'inputs/il_0.tif'.")
    content: bytes | None = Field(default=None, description="Literal content (decoded base64 or text).")
    href: str | None = Field(default=None, description="URL to download the content from.")
    source: str | None = Field(default=None, description="Absolute path, where the job runs, of a file the backend "
                               "holds (an upload): hard-linked into place, or copied where it cannot be.")


class UploadRef(BaseModel):
    """Where a backend keeps one uploaded file: its id (generated), the cluster and the Unix account."""

    file_id: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    cluster: str | None = None
    unix_user: str | None = None


class Resources(BaseModel):
    cpus: int | None = Field(default=None, ge=1, description="CPUs per task (sbatch --cpus-per-task).")
    memory_mb: int | None = Field(default=None, ge=1, description="Memory (sbatch --mem).")
    time_limit_s: int | None = Field(default=None, ge=1, description="Wall time limit (sbatch --time).")
    tmp_mb: int | None = Field(default=None, ge=1, description="Local scratch (sbatch --tmp).")
    nodes: int | None = Field(default=None, ge=1, description="Nodes (sbatch --nodes).")
    gpus: int | None = Field(default=None, ge=1, description="GPUs (sbatch --gpus).")
    partition: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                  description="Partition (sbatch --partition); None: the cluster's default.")
    account: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                description="Account (sbatch --account); None: the cluster's default.")
    qos: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                            description="QOS (sbatch --qos); None: the cluster's default.")

    def shown(self) -> dict[str, Any]:
        """In the form of an execute request's `hpgc:resources`."""
        return as_request(self.cpus, self.memory_mb, self.time_limit_s, self.tmp_mb, self.gpus, self.partition,
                          self.nodes, self.account, self.qos)


class Container(BaseModel):
    """Run `argv` inside this image with the cluster's runtime (`apptainer exec IMAGE argv...`)."""

    image: str = Field(description="Image file name in the image cache: where `source` is pulled to "
                       "(hpgc.models.names.image_cache_name), or a file the site put there (e.g. 'otbtf.sif').")
    source: str | None = Field(default=None, description="Where the image comes from, e.g. 'docker://x/y'.")
    site_image: str | None = Field(
        default=None, description="A file the site put in the image cache, run instead of `image` where it exists "
        "(a package's entry point naming a pre-seeded image); never pulled into.")

    def candidates(self) -> list[str]:
        """The cache files that may hold this image, the one to run first."""
        return [self.site_image, self.image] if self.site_image else [self.image]


class RunSpec(BaseModel):
    job_id: str
    process_id: str
    kind: Literal["command", "cwl"] = Field(
        description="'command': run argv (optionally in a container). 'cwl': run the packed CWL document "
        "'tool.cwl' with the input object 'job.json' (both in files) through cwltool; the backend picks "
        "--no-container or --singularity."
    )
    argv: list[str] = Field(default_factory=list, description="The command line, one list item per argument.")
    container: Container | None = None
    files: list[StagedFile] = Field(default_factory=list)
    outputs: dict[str, str] = Field(
        default_factory=dict,
        description="kind 'command': output id -> file path (relative) the command writes. The backend writes "
        "'outputs.json' (CWL output-object form: {id: {'class': 'File', 'path': ...}}) for those that exist.",
    )
    env: dict[str, str] = Field(default_factory=dict)
    binds: list[str] = Field(default_factory=list, description="Absolute paths of files used in place (cluster "
                             "paths, checked as the user): bound read-only into the container at the same path.")
    resources: Resources = Field(default_factory=Resources)
    cluster: str | None = Field(default=None, description="Cluster name; None: the default one.")
    cwl_runner: Literal["cwltool", "toil"] | None = Field(
        default=None, description="kind 'cwl': the runner the package asks for (additional parameter "
        "`cwl-runner`); None: the backend's choice.")
    cwl_workflow: bool = Field(
        default=False, description="kind 'cwl': a workflow with `scatter` or more than one step (such a workflow "
        "runs under Toil where the cluster has it).")
    unix_user: str | None = Field(default=None, description="Identity to run as (Slurm backend).")


class JobRef(BaseModel):
    """How a backend finds a job again, also after a restart: everything it needs is stored with the job."""

    job_id: str
    external_id: str | None = None
    cluster: str | None = None
    unix_user: str | None = None


class BackendStatus(BaseModel):
    """One poll result for one job, in OGC terms plus what the backend knows."""

    status: StatusCode
    progress: int | None = None
    message: str | None = None
    exit_code: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Logs(BaseModel):
    stdout: str = ""
    stderr: str = ""
