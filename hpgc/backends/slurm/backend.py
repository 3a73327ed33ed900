"""SlurmBackend: RunSpecs become Slurm jobs on one or more clusters, reached over pooled SSH.

Round trips: a submit is one command (two with server-side `href` inputs); a poll is one command per
(cluster, SSH identity) whatever the number of jobs, plus one when jobs have just failed (their stderr);
a result, log or outputs.json is one checked read command (commands/read_file.py); SFTP only uploads
server-side `href` inputs (stage_in.py). Each remote command is a module of commands/.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from hpgc.backends.base import Backend, BackendError, Capabilities, OnChange
from hpgc.backends.files import OUTPUTS_FILE, PROGRESS_HELPER
from hpgc.backends.slurm import images, jobdir, toil, toil_steps
from hpgc.backends.slurm.batcher import SubmitBatcher
from hpgc.backends.slurm.commands.cancel import cancelled
from hpgc.backends.slurm.commands.private_dir import private_dir_command
from hpgc.backends.slurm.commands.read_file import FILE_MISSING, read_command
from hpgc.backends.slurm.commands.remove import remove_command
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.follower import Followers
from hpgc.backends.slurm.health import cluster_healthy
from hpgc.backends.slurm.jobdir import SCRIPT_FILE, SLURM_ID_FILE, STDERR_FILE, STDOUT_FILE, job_dir, job_name
from hpgc.backends.slurm.jobid import SlurmJobId, external_id, parse_external_id
from hpgc.backends.slurm.poller import PolledJob, Poller
from hpgc.backends.slurm.script import render
from hpgc.backends.slurm.ssh import HostKeyError, RemoteExit, SSHClient, SSHError, SSHPool
from hpgc.backends.slurm.stage_in import needs_server_stage_in, sign_s3_inputs, upload_hrefs
from hpgc.backends.slurm.sweeps import SlurmSweeps
from hpgc.backends.slurm.uploads import SlurmUploads
from hpgc.logs import set_fields
from hpgc.models.ogc import StatusCode
from hpgc.models.resources import ResourceLimits
from hpgc.models.run import BackendStatus, Container, JobRef, Logs, RunSpec
from hpgc.net import GuardedClient
from hpgc.storage import ObjectStores

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
MAX_SMALL_BYTES = 16 * 1024 * 1024  # outputs.json, job.sbatch, slurm_job_id: read whole
SUBMIT_RETRY_S = 2.0


class SlurmBackend(toil_steps.SlurmToilSteps, SlurmSweeps, SlurmUploads, Backend):  # Uploads: SlurmPaths too
    name = "slurm"
    capabilities = Capabilities(resumable=True, runs_as_server=False)

    def __init__(self, clusters: dict[str, ClusterSettings], outbound: GuardedClient | None = None,
                 storage: ObjectStores | None = None) -> None:
        if not clusters:
            raise BackendError("the slurm backend needs at least one cluster in [clusters]")
        self.outbound = outbound or GuardedClient()  # server-side stage-in; the app passes its one client
        self._own_outbound = outbound is None
        self.storage = storage  # s3:// inputs: read by the server, or signed URLs for the job
        self.clusters = clusters
        self.default_cluster = next(iter(clusters))
        self.pool = SSHPool(clusters)
        self.poller = Poller()
        self._on_change: OnChange = lambda job_id=None: None
        self._batchers: dict[tuple[str, str], SubmitBatcher] = {}
        self._warmups: list[asyncio.Task[None]] = []
        self._private_roots: set[tuple[str, str]] = set()
        self.followers = Followers()  # job ends, pushed (follower.py)

    @property
    def cluster_names(self) -> list[str]:
        return list(self.clusters)

    @property
    def poll_intervals(self) -> tuple[float, float]:
        return (min(c.poll_min_s for c in self.clusters.values()),
                max(c.poll_max_s for c in self.clusters.values()))

    async def start(self, on_change: OnChange) -> None:
        # Each cluster's connection opens in the background: the first job does not wait for the SSH
        # handshake, an unreachable cluster is reported at once, and it does not keep the server from starting.
        self._on_change = self.followers.on_change = on_change
        self._warmups = [asyncio.create_task(self._connect(name)) for name in self.clusters]

    async def _connect(self, cluster: str) -> None:
        try:
            client = self.pool.client(cluster, None)
        except BackendError:
            return  # no service identity: every connection is a mapped user's, opened when they submit
        try:
            await client.connect()
        except BackendError as exc:
            log.warning("%s (jobs for it wait and retry)", exc)
        else:
            log.info("connected to cluster %s as %s", cluster, client.login)

    async def close(self) -> None:
        for task in self._warmups:
            task.cancel()
        await asyncio.gather(*self._warmups, return_exceptions=True)
        await self.followers.close()
        await self.pool.close()
        if self._own_outbound:
            await self.outbound.close()

    async def health(self, timeout_s: float) -> dict[str, bool]:
        checks = [cluster_healthy(self.pool, n, s, timeout_s) for n, s in self.clusters.items()]
        return {f"cluster:{n}": ok for n, ok in zip(self.clusters, await asyncio.gather(*checks), strict=True)}

    def stages_in_on_server(self, cluster: str | None) -> bool:
        return self._cluster(cluster)[1].stage_in == "server"

    def resource_limits(self, cluster: str | None) -> ResourceLimits:
        name, settings = self._cluster(cluster)
        return settings.limits(name)

    # where things are -------------------------------------------------------------------------------
    def _cluster(self, name: str | None) -> tuple[str, ClusterSettings]:
        name = name or self.default_cluster
        if name not in self.clusters:
            raise BackendError(f"unknown cluster {name!r}; configured: {', '.join(self.clusters)}")
        return name, self.clusters[name]

    def _ref(self, job: JobRef) -> tuple[SSHClient, str, SlurmJobId | None]:
        """(client, job dir, Slurm job id) of a stored job."""
        cluster, slurm_id = parse_external_id(job.external_id)
        name, settings = self._cluster(cluster or job.cluster)
        return self.pool.client(name, job.unix_user), job_dir(settings, job.job_id, job.unix_user), slurm_id

    # submit ------------------------------------------------------------------------------------------
    async def submit(self, spec: RunSpec) -> str:
        """Submit; while the cluster cannot be reached or Slurm does not accept jobs (SlurmBusy), keep
        trying for up to `unreachable_timeout_s` (submission is idempotent, so a retry after a lost answer
        is safe)."""
        _, settings = self._cluster(spec.cluster)
        first_failure: float | None = None
        while True:
            try:
                return await self._submit(spec)
            except HostKeyError:
                raise
            except SSHError as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                if now - first_failure >= settings.unreachable_timeout_s:
                    raise SSHError(f"{exc} (gave up after {now - first_failure:.0f} s)") from None
                log.warning("submitting %s: %s; trying again", spec.job_id, exc)
                await asyncio.sleep(min(SUBMIT_RETRY_S, settings.unreachable_timeout_s))

    async def _submit(self, spec: RunSpec) -> str:
        cluster, settings = self._cluster(spec.cluster)
        jd = job_dir(settings, spec.job_id, spec.unix_user)
        spec = await sign_s3_inputs(spec, self.storage) if settings.stage_in == "job" else spec  # s3:// → signed URLs
        text = render(spec, settings, jd)
        client = self.pool.client(cluster, spec.unix_user)
        files: dict[str, tuple[bytes, int]] = {}
        for f in spec.files:
            jobdir.staged_path(f.path)
            if f.content is not None:
                files[f.path] = (f.content, 0o644)
        files["bin/hpgc-progress"] = (PROGRESS_HELPER.encode(), 0o755)
        files.update(toil.job_files(spec, settings))
        files[SCRIPT_FILE] = (text.encode(), 0o644)  # last: its presence means "sbatch may have run"
        if settings.stage_in == "server" and needs_server_stage_in(spec):
            existing = SlurmJobId.find(await self._read_small(client, f"{jd}/{SLURM_ID_FILE}") or "")
            if existing is not None:
                return external_id(cluster, existing)
            # The script is written after the uploads: if it is there they are complete, and the job may
            # be running already (the batch command asks Slurm), so its inputs are not rewritten.
            if await self._read_small(client, f"{jd}/{SCRIPT_FILE}") is None:
                await self._private_root(client, jd)
                await upload_hrefs(self.outbound, client, spec, jd, settings.max_input_bytes, self.storage)
        rel = jd.removeprefix(settings.work_root.rstrip("/") + "/")
        kind, slurm_id = await self._batcher(client).submit(rel, job_name(spec.job_id), files)
        set_fields(slurm_id=slurm_id, cluster=cluster)  # the rest of this job's submission logs with them
        if kind == "existing":
            log.info("job %s was already in Slurm as %s; not submitted again", spec.job_id, slurm_id)
        return external_id(cluster, SlurmJobId.parse(slurm_id))

    async def _private_root(self, client: SSHClient, jd: str) -> None:
        """Before SFTP writes inputs under WORK_ROOT/USER, make sure that folder is this account's, mode 0700
        (the submit command checks it again; once seen right, another account cannot take it over)."""
        user_root = posixpath.dirname(jd)
        if (client.cluster, user_root) in self._private_roots:
            return
        root, _, user = user_root.rpartition("/")
        result = await client.run(private_dir_command(root, user))
        if not result.ok:
            raise BackendError(result.stderr.strip()[-500:] or f"cannot make {user_root} private")
        self._private_roots.add((client.cluster, user_root))

    def _batcher(self, client: SSHClient) -> SubmitBatcher:
        key = (client.cluster, client.login)
        if key not in self._batchers:
            self._batchers[key] = SubmitBatcher(client, client.settings.work_root)
        return self._batchers[key]

    async def remove(self, job: JobRef) -> None:
        client, jd, _ = self._ref(job)
        result = await client.run(remove_command(jd))
        if not result.ok:
            raise BackendError(result.stderr.strip() or f"rm exited {result.exit_status}")

    def public_url(self, job: JobRef, path: str) -> str | None:
        """The file's URL under the cluster's `public_url_prefix`, where the site serves WORK_ROOT itself."""
        cluster, _ = parse_external_id(job.external_id)
        _, settings = self._cluster(cluster or job.cluster)
        if not settings.public_url_prefix:
            return None
        jd = job_dir(settings, job.job_id, job.unix_user)
        full = posixpath.normpath(path if path.startswith("/") else f"{jd}/{path}")
        root = settings.work_root.rstrip("/")
        if not full.startswith(f"{jd}/"):
            return None
        return f"{settings.public_url_prefix.rstrip('/')}/{quote(full[len(root) + 1:])}"

    async def ensure_image(self, container: Container, cluster: str | None) -> None:
        name, settings = self._cluster(cluster)
        await images.ensure_image(self.pool.client(name, None), settings, container)

    async def remove_image(self, container: Container, cluster: str | None) -> None:
        name, settings = self._cluster(cluster)
        await images.remove_image(self.pool.client(name, None), settings, container)

    # poll --------------------------------------------------------------------------------------------
    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        groups: dict[int, tuple[SSHClient, list[PolledJob]]] = {}
        out: dict[str, BackendStatus] = {}
        for job in jobs:
            try:
                client, jd, slurm_id = self._ref(job)
            except BackendError as exc:
                out[job.job_id] = BackendStatus(status=StatusCode.failed, message=str(exc))
                continue
            if slurm_id is None:
                continue
            groups.setdefault(id(client), (client, []))[1].append(PolledJob(job, slurm_id, jd))
            self.followers.follow(client)
        results = await asyncio.gather(*(self.poller.poll_group(c, js) for c, js in groups.values()))
        for r in results:
            out.update(r)
        return out

    # cancel ------------------------------------------------------------------------------------------
    async def cancel(self, job: JobRef) -> None:
        client, jd, slurm_id = self._ref(job)
        # submitted but the id never stored: Slurm knows it by name; a Toil leader's steps go with it
        result = await client.run(toil.cancel_command(slurm_id, job_name(job.job_id), jd))
        if not cancelled(result.exit_status, result.stderr):
            raise BackendError(f"scancel failed: {result.stderr.strip()[-500:]}")
        self._on_change()

    # files -------------------------------------------------------------------------------------------
    async def outputs(self, job: JobRef) -> dict[str, Any]:
        client, jd, _ = self._ref(job)
        text = await self._read_small(client, f"{jd}/{OUTPUTS_FILE}")
        if text is None:
            raise BackendError("the job left no outputs.json")
        try:
            return json.loads(text or "{}")
        except ValueError as exc:
            raise BackendError(f"the job's outputs.json is not JSON: {exc}") from None

    def _parts(self, client: SSHClient, jd: str, path: str) -> list[str]:
        """PATH (absolute, or relative to the job dir JD) as components under WORK_ROOT, if it is inside JD."""
        full = posixpath.normpath(path if path.startswith("/") else f"{jd}/{path}")
        if not full.startswith(jd + "/"):
            raise BackendError(f"{path} is outside the job directory")
        root = client.settings.work_root.rstrip("/")
        return full[len(root) + 1:].split("/")

    async def _read_small(self, client: SSHClient, path: str, tail: int | None = None) -> str | None:
        """A small file of a job dir (outputs.json, a log, the script): None when it does not exist. Read by
        the checked read command like results, so a FIFO, symlink or hard link planted there is refused."""
        command = read_command(client.settings.work_root, self._parts(client, posixpath.dirname(path), path),
                               tail=tail, max_bytes=None if tail is not None else MAX_SMALL_BYTES)
        result = await client.run(command)
        if result.exit_status == FILE_MISSING:
            return None
        if not result.ok:
            raise BackendError(result.stderr.strip()[-500:] or f"reading {path} failed ({result.exit_status})")
        return result.stdout

    async def file_size(self, job: JobRef, path: str) -> int:
        client, jd, _ = self._ref(job)
        result = await client.run(read_command(client.settings.work_root, self._parts(client, jd, path),
                                               size_only=True))
        if result.exit_status == FILE_MISSING:
            raise BackendError(f"{path} does not exist")
        if not result.ok or not result.stdout.strip().isdigit():
            raise BackendError(result.stderr.strip()[-500:] or f"{path} cannot be read")
        return int(result.stdout.strip())

    async def read_file(self, job: JobRef, path: str, offset: int = 0,
                        length: int | None = None) -> AsyncIterator[bytes]:
        """The file's bytes, checked and read on the cluster in one command: never more than its size when
        checked, never blocking on a FIFO, never through a symlink."""
        client, jd, _ = self._ref(job)
        command = read_command(client.settings.work_root, self._parts(client, jd, path), offset=offset,
                               length=length)
        try:
            async for chunk in client.stream(command, CHUNK):
                yield chunk
        except RemoteExit as exc:
            if exc.exit_status == FILE_MISSING:
                raise BackendError(f"{path} does not exist") from None
            raise

    async def logs(self, job: JobRef, tail: int | None = None) -> Logs:
        client, jd, _ = self._ref(job)
        out, err = await asyncio.gather(self._read_small(client, f"{jd}/{STDOUT_FILE}", tail),
                                        self._read_small(client, f"{jd}/{STDERR_FILE}", tail))
        return Logs(stdout=out or "", stderr=err or "")

    async def script(self, job: JobRef) -> str | None:
        client, jd, _ = self._ref(job)
        return await self._read_small(client, f"{jd}/{SCRIPT_FILE}")
