"""SlurmBackend: RunSpecs become Slurm jobs on one or more clusters, reached over pooled SSH.

Round trips: a submit is one command (two with server-side `href` inputs); a poll is one command per
(cluster, SSH identity) whatever the number of jobs; a result, log or outputs.json is one checked read command
(`remote.read_command`); SFTP only uploads server-side `href` inputs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import shlex
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hpgc.backends.base import BackendError
from hpgc.backends.files import OUTPUTS_FILE, PROGRESS_HELPER, Downloads, parse_progress
from hpgc.backends.slurm import remote
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.sacct import Sacct, Scancel, Squeue, to_status
from hpgc.backends.slurm.script import SCRIPT_FILE, SLURM_ID_FILE, STDERR_FILE, STDOUT_FILE, job_dir, job_name, render
from hpgc.backends.slurm.ssh import HostKeyError, RemoteExit, SSHClient, SSHError, SSHPool
from hpgc.backends.slurm.submit import SubmitBatcher
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, Container, JobRef, Logs, RunSpec
from hpgc.net import GuardedClient

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
MAX_SMALL_BYTES = 16 * 1024 * 1024  # outputs.json, job.sbatch, slurm_job_id: read whole
MESSAGE_STDERR_CHARS = 500
SUBMIT_RETRY_S = 2.0
IMAGE_PULL_TIMEOUT_S = 3600.0


class SlurmBackend:
    name = "slurm"

    def __init__(self, clusters: dict[str, ClusterSettings], data_dir: Path,
                 outbound: GuardedClient | None = None) -> None:
        if not clusters:
            raise BackendError("the slurm backend needs at least one cluster in [clusters]")
        self.outbound = outbound or GuardedClient()  # server-side stage-in; the app passes its one client
        self._own_outbound = outbound is None
        self.clusters = clusters
        self.default_cluster = next(iter(clusters))
        self.data_dir = data_dir
        self.pool = SSHPool(clusters)
        self._on_change: Callable[[], None] = lambda: None
        self._missing_since: dict[str, float] = {}
        self._batchers: dict[tuple[str, str], SubmitBatcher] = {}
        self._warmups: list[asyncio.Task[None]] = []
        self._private_roots: set[tuple[str, str]] = set()

    @property
    def resumable(self) -> bool:
        return True

    @property
    def poll_intervals(self) -> tuple[float, float]:
        """(min, max) poll interval for the monitor, from the clusters' settings."""
        return (min(c.poll_min_s for c in self.clusters.values()),
                max(c.poll_max_s for c in self.clusters.values()))

    async def start(self, on_change: Callable[[], None]) -> None:
        # Each cluster's connection opens in the background: the first job does not wait for the SSH
        # handshake, an unreachable cluster is reported at once, and it does not keep the server from starting.
        self._on_change = on_change
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
        await self.pool.close()
        if self._own_outbound:
            await self.outbound.close()

    def stages_in_on_server(self, cluster: str | None) -> bool:
        """Whether hpgc downloads href inputs (through its guarded client) or the job does, on the cluster."""
        return self._cluster(cluster)[1].stage_in == "server"

    # where things are -------------------------------------------------------------------------------
    def _cluster(self, name: str | None) -> tuple[str, ClusterSettings]:
        name = name or self.default_cluster
        if name not in self.clusters:
            raise BackendError(f"unknown cluster {name!r}; configured: {', '.join(self.clusters)}")
        return name, self.clusters[name]

    def _ref(self, job: JobRef) -> tuple[SSHClient, str, str | None]:
        """(client, job dir, Slurm job id) of a stored job."""
        cluster, slurm_id = job.cluster, None
        if job.external_id:
            cluster, _, slurm_id = job.external_id.rpartition(":")
        name, settings = self._cluster(cluster)
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
        text = render(spec, settings, jd)
        client = self.pool.client(cluster, spec.unix_user)
        files: dict[str, tuple[bytes, int]] = {}
        for f in spec.files:
            _relative(f.path)
            if f.content is not None:
                files[f.path] = (f.content, 0o755 if f.executable else 0o644)
        files["bin/hpgc-progress"] = (PROGRESS_HELPER.encode(), 0o755)
        files[SCRIPT_FILE] = (text.encode(), 0o644)  # last: its presence means "sbatch may have run"
        if settings.stage_in == "server" and any(f.content is None and f.href for f in spec.files):
            existing = await self._read_small(client, f"{jd}/{SLURM_ID_FILE}")
            if existing and existing.strip().isdigit():
                return f"{cluster}:{existing.strip()}"
            # The script is written after the uploads: if it is there they are complete, and the job may
            # be running already (the batch command asks Slurm), so its inputs are not rewritten.
            if await self._read_small(client, f"{jd}/{SCRIPT_FILE}") is None:
                await self._private_root(client, jd)
                await self._upload_hrefs(client, spec, jd, settings.max_input_bytes)
        rel = jd.removeprefix(settings.work_root.rstrip("/") + "/")
        kind, slurm_id = await self._batcher(client).submit(rel, job_name(spec.job_id), files)
        if kind == "existing":
            log.info("job %s was already in Slurm as %s; not submitted again", spec.job_id, slurm_id)
        return f"{cluster}:{slurm_id}"

    async def remove(self, job: JobRef) -> None:
        """Delete a dismissed job's directory on the cluster (its id and user are validated names)."""
        client, jd, _ = self._ref(job)
        result = await client.run(f"rm -rf -- {shlex.quote(jd)}")
        if not result.ok:
            raise BackendError(result.stderr.strip() or f"rm exited {result.exit_status}")

    def public_url(self, job: JobRef, path: str) -> str | None:
        """The file's URL under the cluster's `public_url_prefix`, where the site serves WORK_ROOT itself."""
        _, settings = self._cluster(job.cluster or (job.external_id or "").rpartition(":")[0] or None)
        if not settings.public_url_prefix:
            return None
        jd = job_dir(settings, job.job_id, job.unix_user)
        full = posixpath.normpath(path if path.startswith("/") else f"{jd}/{path}")
        root = settings.work_root.rstrip("/")
        if not full.startswith(f"{jd}/"):
            return None
        return f"{settings.public_url_prefix.rstrip('/')}/{quote(full[len(root) + 1:])}"

    async def ensure_image(self, container: Container, cluster: str | None = None) -> None:
        """Pull a package's image into the cluster's image cache once, at deploy time, with the runtime's
        own pull on the login node (compute nodes are often offline); an image already cached is kept."""
        name, settings = self._cluster(cluster)
        if not settings.container_runtime or not settings.image_cache:
            raise BackendError(f"cluster {name} has no container_runtime and image_cache configured")
        if any("/" in n or n.startswith(".") for n in container.candidates()):
            raise BackendError(f"image {container.image!r} must be a file name in the image cache")
        cached = " || ".join(f"test -e {shlex.quote(settings.image_cache.rstrip('/') + '/' + n)}"
                             for n in container.candidates())
        target = shlex.quote(f"{settings.image_cache.rstrip('/')}/{container.image}")
        if container.source:
            # pull to a temporary name first: a half-pulled image must never look cached; `ln` (not `mv -f`)
            # never replaces a file that appeared meanwhile
            partial = shlex.quote(f"{settings.image_cache.rstrip('/')}/.{container.image}.partial")
            command = (f"{cached} || {{ {shlex.quote(settings.container_runtime)} -s pull --force "
                       f"{partial} {shlex.quote(container.source)} && {{ ln {partial} {target} 2>/dev/null "
                       f"|| test -e {target}; }} && rm -f {partial}; }}")
        else:
            command = cached
        result = await self.pool.client(name, None).run(command, timeout=IMAGE_PULL_TIMEOUT_S)
        if not result.ok:
            detail = (result.stderr or result.stdout).strip()[-1000:]
            raise BackendError(detail or f"the image {container.image} is not in {settings.image_cache}")

    async def _private_root(self, client: SSHClient, jd: str) -> None:
        """Before SFTP writes inputs under WORK_ROOT/USER, make sure that folder is this account's, mode 0700
        (the submit command checks it again; once seen right, another account cannot take it over)."""
        user_root = posixpath.dirname(jd)
        if (client.cluster, user_root) in self._private_roots:
            return
        root, _, user = user_root.rpartition("/")
        result = await client.run(remote.private_dir_command(root, user))
        if not result.ok:
            raise BackendError(result.stderr.strip()[-500:] or f"cannot make {user_root} private")
        self._private_roots.add((client.cluster, user_root))

    def _batcher(self, client: SSHClient) -> SubmitBatcher:
        key = (client.cluster, client.login)
        if key not in self._batchers:
            self._batchers[key] = SubmitBatcher(client, client.settings.work_root)
        return self._batchers[key]

    async def _upload_hrefs(self, client: SSHClient, spec: RunSpec, jd: str, max_bytes: int) -> None:
        downloads = Downloads(self.outbound)
        async with client.sftp() as sftp:
            for f in spec.files:
                if f.content is not None or not f.href:
                    continue
                target = f"{jd}/{f.path}"
                await sftp.makedirs(posixpath.dirname(target), exist_ok=True)
                async with sftp.open(target, "wb") as out:
                    async for chunk in downloads.fetch(f.href, max_bytes):
                        await out.write(chunk)
                if f.executable:
                    await sftp.chmod(target, 0o755)

    # poll --------------------------------------------------------------------------------------------
    async def poll(self, jobs: list[JobRef]) -> dict[str, BackendStatus]:
        groups: dict[int, tuple[SSHClient, list[tuple[JobRef, str, str]]]] = {}
        out: dict[str, BackendStatus] = {}
        for job in jobs:
            try:
                client, jd, slurm_id = self._ref(job)
            except BackendError as exc:
                out[job.job_id] = BackendStatus(status=StatusCode.failed, message=str(exc))
                continue
            if slurm_id is None or not slurm_id.isdigit():
                continue
            groups.setdefault(id(client), (client, []))[1].append((job, slurm_id, jd))
        results = await asyncio.gather(*(self._poll_group(c, js) for c, js in groups.values()))
        for r in results:
            out.update(r)
        return out

    async def _poll_group(self, client: SSHClient, jobs: list[tuple[JobRef, str, str]]) -> dict[str, BackendStatus]:
        settings = client.settings
        try:
            result = await client.run(remote.poll_command(settings.sacct_chunk),
                                      input=remote.poll_input([(sid, jd) for _, sid, jd in jobs]))
            if not result.ok:
                detail = (result.stderr.strip() or result.stdout.strip())[-500:]
                raise SSHError(f"the poll command failed (exit {result.exit_status}): {detail}")
        except SSHError as exc:
            down_for = time.monotonic() - client.last_ok
            if down_for <= settings.unreachable_timeout_s:
                log.warning("polling %s failed (%s); trying again", client.cluster, exc)
                return {}
            msg = (f"cluster {client.cluster} has been unreachable for {down_for:.0f} s "
                   f"(more than unreachable_timeout_s={settings.unreachable_timeout_s:g}): {exc}")
            return {job.job_id: BackendStatus(status=StatusCode.failed, message=msg) for job, _, _ in jobs}
        parsed = remote.parse_poll(result.stdout)
        records = Sacct.parse(parsed.sacct)
        queued = Squeue.parse(parsed.squeue or "")
        now = time.monotonic()
        out: dict[str, BackendStatus] = {}
        for job, sid, _ in jobs:
            rec = records.get(sid)
            name = job_name(job.job_id)
            other = rec.name if rec is not None else queued.get(sid, ("", "", ""))[2]
            if other and other != name:
                # Slurm reuses ids after its state is reset: this id now belongs to someone else's job.
                out[job.job_id] = BackendStatus(status=StatusCode.failed, message=(
                    f"Slurm job {sid} on cluster {client.cluster} is now '{other}', not this job: the cluster's "
                    "job records were reset, and this job was lost"))
                continue
            if rec is not None:
                self._missing_since.pop(job.job_id, None)
                tail = "\n".join(parsed.stderr.get(sid, [])).strip()
                st = to_status(rec.state, rec.exit_code, rec.signal, rec.reason,
                               tail[-MESSAGE_STDERR_CHARS:], rec.accounting)
                if tail:
                    st.details["stderr_tail"] = tail
            elif sid in queued:
                state, reason, _ = queued[sid]
                st = to_status(state, reason=reason)
            elif parsed.sacct_failed:
                continue  # sacct itself is down: no news is not bad news
            else:
                first = self._missing_since.setdefault(job.job_id, now)
                if now - first < settings.squeue_grace_s:
                    continue
                st = BackendStatus(status=StatusCode.failed, message=f"Slurm has no record of job {sid} on "
                                   f"cluster {client.cluster} (neither sacct nor squeue knows it)")
            if st.status == StatusCode.running and sid in parsed.progress:
                st.progress, pmsg = parse_progress(parsed.progress[sid])
                st.message = pmsg or st.message
            out[job.job_id] = st
        return out

    # cancel ------------------------------------------------------------------------------------------
    async def cancel(self, job: JobRef) -> None:
        client, _, slurm_id = self._ref(job)
        # Submitted but the id never stored: Slurm knows it by name.
        command = Scancel(slurm_id).command() if slurm_id else f"scancel --name={job_name(job.job_id)}"
        result = await client.run(command)
        if not result.ok and "already completing or completed" not in result.stderr.lower():
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
        `remote.read_command` like results, so a FIFO, symlink or hard link planted there is refused."""
        command = remote.read_command(client.settings.work_root, self._parts(client, posixpath.dirname(path), path),
                                      tail=tail,
                                      max_bytes=None if tail is not None else MAX_SMALL_BYTES)
        result = await client.run(command)
        if result.exit_status == remote.FILE_MISSING:
            return None
        if not result.ok:
            raise BackendError(result.stderr.strip()[-500:] or f"reading {path} failed ({result.exit_status})")
        return result.stdout

    async def file_size(self, job: JobRef, path: str) -> int:
        client, jd, _ = self._ref(job)
        result = await client.run(remote.read_command(client.settings.work_root, self._parts(client, jd, path),
                                                      size_only=True))
        if result.exit_status == remote.FILE_MISSING:
            raise BackendError(f"{path} does not exist")
        if not result.ok or not result.stdout.strip().isdigit():
            raise BackendError(result.stderr.strip()[-500:] or f"{path} cannot be read")
        return int(result.stdout.strip())

    async def read_file(self, job: JobRef, path: str, offset: int = 0,
                        length: int | None = None) -> AsyncIterator[bytes]:
        """The file's bytes, checked and read on the cluster in one command (see `remote.read_command`):
        never more than its size when checked, never blocking on a FIFO, never through a symlink."""
        client, jd, _ = self._ref(job)
        command = remote.read_command(client.settings.work_root, self._parts(client, jd, path),
                                      offset=offset, length=length)
        try:
            async for chunk in client.stream(command, CHUNK):
                yield chunk
        except RemoteExit as exc:
            if exc.exit_status == remote.FILE_MISSING:
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


def _relative(path: str) -> None:
    norm = posixpath.normpath(path)
    if path.startswith("/") or norm.startswith("..") or norm in (".", SCRIPT_FILE, SLURM_ID_FILE):
        raise BackendError(f"staged file path {path!r} is not a plain path inside the job directory")
