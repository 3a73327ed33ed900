"""RunSpec → sbatch script: #SBATCH lines from typed options (dask-jobqueue's way), then the sections below.

The text is shown to the job's owner (`GET /jobs/{id}/script`), so it reads like a script a person would
write: #SBATCH lines, environment, stage-in, the command, stage-out, the exit code. Every value that comes
from a request is `shlex.quote`d; #SBATCH lines (which Slurm parses without a shell) only ever carry
generated or validated values.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass

from hpgc.backends.base import BackendError
from hpgc.backends.files import OUTPUTS_FILE, PROGRESS_FILE
from hpgc.backends.launch import bind_options, check_container, command_argv, container_argv, cwltool_argv
from hpgc.backends.slurm import toil
from hpgc.backends.slurm.commands.follow import EVENTS_FILE, notice_trap
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobdir import STDERR_FILE, STDOUT_FILE, job_name
from hpgc.models.resources import clock
from hpgc.models.run import RunSpec

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")



@dataclass(frozen=True)
class SbatchOptions:
    """What goes into #SBATCH lines; every field is already validated or generated."""

    job_name: str
    chdir: str
    output: str
    error: str
    cpus_per_task: int | None = None
    mem_mb: int | None = None
    time: str | None = None
    tmp_mb: int | None = None
    nodes: int | None = None
    gpus: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        opts = [f"--job-name={self.job_name}", f"--chdir={self.chdir}", f"--output={self.output}",
                f"--error={self.error}"]
        pairs = [("--nodes", self.nodes), ("--cpus-per-task", self.cpus_per_task),
                 ("--mem", f"{self.mem_mb}M" if self.mem_mb else None), ("--time", self.time),
                 ("--tmp", f"{self.tmp_mb}M" if self.tmp_mb else None), ("--gpus", self.gpus),
                 ("--partition", self.partition),
                 ("--account", self.account), ("--qos", self.qos)]
        opts += [f"{k}={v}" for k, v in pairs if v is not None]
        opts += list(self.extra)
        for o in opts:
            if any(c in o for c in "\n\r \t'\"\\$`"):
                raise BackendError(f"unsafe sbatch option {o!r}")
        return [f"#SBATCH {o}" for o in opts]


slurm_time = clock  # seconds → Slurm's D-HH:MM:SS (it rounds up to whole minutes itself)


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def sbatch_options(spec: RunSpec, cluster: ClusterSettings, jd: str) -> SbatchOptions:
    r = spec.resources
    return SbatchOptions(
        job_name=job_name(spec.job_id), chdir=jd, output=f"{jd}/{STDOUT_FILE}", error=f"{jd}/{STDERR_FILE}",
        cpus_per_task=r.cpus, mem_mb=r.memory_mb, tmp_mb=r.tmp_mb, nodes=r.nodes,
        time=slurm_time(r.time_limit_s) if r.time_limit_s else cluster.time_limit,
        gpus=r.gpus, partition=r.partition or cluster.partition, account=r.account or cluster.account,
        qos=r.qos or cluster.qos,
        extra=tuple(cluster.sbatch_options),
    )


def _env_lines(spec: RunSpec, cluster: ClusterSettings, jd: str) -> list[str]:
    q = shlex.quote
    lines = [f"export HPGC_JOB_DIR={q(jd)}", 'cd "$HPGC_JOB_DIR" || exit 1', 'export PATH="$HPGC_JOB_DIR/bin:$PATH"',
             # apptainer/singularity reset PATH inside the image: prepend the helper's folder there too.
             'export APPTAINERENV_PREPEND_PATH="$HPGC_JOB_DIR/bin" SINGULARITYENV_PREPEND_PATH="$HPGC_JOB_DIR/bin"']
    if cluster.image_cache:
        lines.append(f"export CWL_SINGULARITY_CACHE={q(cluster.image_cache)}")
    for name, value in spec.env.items():
        if not _ENV_NAME.match(name):
            raise BackendError(f"environment variable name {name!r} is not valid")
        lines.append(f"export {name}={q(value)}")
    return lines


def _stage_in_lines(spec: RunSpec, cluster: ClusterSettings) -> list[str]:
    q = shlex.quote
    lines = []
    for f in spec.files:
        if f.content is None and f.source is not None:  # an upload: linked (no copy) from the user's folder
            gone = q("hpgc: the uploaded input for " + f.path + " is gone (deleted or expired)")
            lines.append(f"mkdir -p {q(posixpath.dirname(f.path) or '.')} && {{ ln -f -- {q(f.source)} {q(f.path)} "
                         f"2>/dev/null || cp -- {q(f.source)} {q(f.path)}; }} || {{ echo {gone} >&2; exit 1; }}")
    if cluster.stage_in != "job":
        return lines
    for f in spec.files:
        if f.content is None and f.href is not None:
            # the job's own request, on the cluster's network (not the server's, not through its guard): it
            # may still only speak http(s), also after a redirect (no file://, gopher://, dict://...)
            lines.append(f"curl -fsSL --proto =http,https --proto-redir =http,https --max-redirs 5 --retry 3 "
                         f"--create-dirs -o {q(f.path)} {q(f.href)} "
                         f"|| {{ echo {q('hpgc: could not download input ' + f.path)} >&2; exit 1; }}")
    return lines


def _command_lines(spec: RunSpec, cluster: ClusterSettings, jd: str) -> list[str]:
    q = shlex.quote
    if spec.kind == "cwl" and toil.runner_for(spec, cluster) == "toil":
        return toil.command_lines(spec, cluster, jd)
    if spec.kind == "cwl":
        argv = cwltool_argv(cluster.cwltool, bool(cluster.container_runtime), "outputs", "tmp/")
        return [shlex.join(argv) + f" > {OUTPUTS_FILE}"]
    argv = command_argv(spec)
    if spec.container is not None:
        runtime = check_container(spec.container, cluster.container_runtime, cluster.image_cache, "the cluster")
        image = f"{cluster.image_cache}/{spec.container.image}"
        if spec.container.site_image:  # the site's pre-seeded file where it exists, else the pulled one
            site = f"{cluster.image_cache}/{spec.container.site_image}"
            pick = f"hpgc_image={q(image)}; if [ -e {q(site)} ]; then hpgc_image={q(site)}; fi"
            # the image is a shell variable here, so this one line is not container_argv's
            head = shlex.join([runtime, "exec", *bind_options(spec.binds)])
            return [*mkdir_lines(spec), pick, f'{head} "$hpgc_image" {shlex.join(argv)}']
        argv = container_argv(runtime, image, argv, spec.binds)
    return [*mkdir_lines(spec), shlex.join(argv)]


def mkdir_lines(spec: RunSpec) -> list[str]:
    """Tools write their outputs where they are told, into folders that must exist."""
    folders = sorted({rel.rsplit("/", 1)[0] for rel in spec.outputs.values() if "/" in rel})
    return [f"mkdir -p {' '.join(shlex.quote(d) for d in folders)}"] if folders else []


def _stage_out_lines(spec: RunSpec, jd: str) -> list[str]:
    """Write outputs.json (CWL output-object form) for the declared outputs the command made."""
    if spec.kind == "cwl":
        return []
    q = shlex.quote
    lines = ["if [ \"$code\" -eq 0 ]; then", "  {", "    sep=''", "    printf '{'"]
    for oid, rel in spec.outputs.items():
        entry = json.dumps(oid) + ": " + json.dumps({"class": "File", "path": f"{jd}/{rel}"})
        lines += [f"    if [ -f {q(rel)} ]; then printf '%s%s' \"$sep\" {q(entry)}; sep=', '; fi"]
    lines += ["    printf '}\\n'", f"  }} > {OUTPUTS_FILE}", "fi"]
    return lines


def _notice_lines(cluster: ClusterSettings, jd: str) -> list[str]:
    """The script's end, whatever it is, is one line in its account's events file (commands/follow.py)."""
    if not cluster.follow_completions:
        return []
    root = cluster.work_root.rstrip("/")
    # the account's folder is the one under WORK_ROOT (a sweep's task lives deeper: JOB/tasks/<i>)
    account = f"{root}/{jd[len(root) + 1:].split('/', 1)[0]}" if jd.startswith(root + "/") else jd.rsplit("/", 1)[0]
    return ["# --- when it ends: tell hpgc at once", notice_trap(f"{account}/{EVENTS_FILE}"), ""]


def render(spec: RunSpec, cluster: ClusterSettings, jd: str) -> str:
    """The whole sbatch script for one job."""
    options = sbatch_options(spec, cluster, jd)
    if spec.kind == "cwl" and toil.runner_for(spec, cluster) == "toil":
        options = toil.leader_options(options, cluster)
    lines = ["#!/bin/bash", *options.lines(),
             f"# hpgc job {spec.job_id}, process {_comment(spec.process_id)} ({spec.kind})",
             f"# Progress: `hpgc-progress PERCENT MESSAGE` writes $HPGC_JOB_DIR/{PROGRESS_FILE}.", "",
             *_notice_lines(cluster, jd), "# --- environment", *_env_lines(spec, cluster, jd)]
    if cluster.setup:
        lines += ["", "# --- site set-up", *cluster.setup]
    stage_in = _stage_in_lines(spec, cluster)
    if stage_in:
        lines += ["", "# --- stage-in", *stage_in]
    lines += ["", "# --- command", *_command_lines(spec, cluster, jd), "code=$?"]
    stage_out = _stage_out_lines(spec, jd)
    if stage_out:
        lines += ["", "# --- stage-out", *stage_out]
    lines += ["", 'exit "$code"', ""]
    return "\n".join(lines)
