"""The Slurm backend's sweeps: submit_sweep as job arrays (arrays.py), cancel_sweep as one scancel per array.
A mixin of SlurmBackend, kept apart so the backend's module stays about single jobs."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hpgc.backends.base import BackendError
from hpgc.backends.slurm.arrays import array_jobs
from hpgc.backends.slurm.commands.cancel import cancel_command, cancelled
from hpgc.backends.slurm.jobdir import SCRIPT_FILE, job_dir, job_name
from hpgc.backends.slurm.jobid import SlurmJobId, external_id, parse_external_id
from hpgc.backends.slurm.stage_in import needs_server_stage_in, upload_hrefs
from hpgc.logs import set_fields
from hpgc.models.run import JobRef, RunSpec
from hpgc.models.sweep import TASKS_DIR

if TYPE_CHECKING:
    from hpgc.backends.slurm.backend import SlurmBackend

log = logging.getLogger(__name__)


class SlurmSweeps:
    async def submit_sweep(self: SlurmBackend, job_id: str, specs: list[RunSpec],  # type: ignore[misc]
                           max_parallel: int | None) -> tuple[str, list[str]]:
        """One sbatch --array per MaxArraySize tasks (one for most sweeps); the task ids are `ARRAY_i`."""
        cluster, settings = self._cluster(specs[0].cluster)
        user = specs[0].unix_user
        jd = job_dir(settings, job_id, user)
        client = self.pool.client(cluster, user)
        jobs = await asyncio.to_thread(array_jobs, job_id, specs, settings, jd, max_parallel)  # 1,000 scripts
        # as for a job: once the first array's script is there, the inputs are complete (and may be in use)
        if settings.stage_in == "server" and any(needs_server_stage_in(s) for s in specs) and \
                await self._read_small(client, f"{jd}/{SCRIPT_FILE}") is None:
            await self._private_root(client, jd)
            for i, spec in enumerate(specs):
                await upload_hrefs(self.outbound, client, spec, f"{jd}/{TASKS_DIR}/{i}", settings.max_input_bytes)
        base = jd.removeprefix(settings.work_root.rstrip("/") + "/")
        ids: list[tuple[int, SlurmJobId]] = []
        # the first array carries every task's files: it goes first, the others (rare) after it
        for rel, name, files, first in jobs:
            kind, slurm_id = await self._batcher(client).submit(f"{base}/{rel}".rstrip("/"), name, files)
            if kind == "existing":
                log.info("array %s of sweep %s was already in Slurm as %s; not submitted again", name, job_id,
                         slurm_id)
            ids.append((first, SlurmJobId.parse(slurm_id)))
        set_fields(slurm_id=str(ids[0][1]), cluster=cluster)
        task_ids: list[str] = []
        for k, (first, sid) in enumerate(ids):
            end = ids[k + 1][0] if k + 1 < len(ids) else len(specs)
            task_ids += [external_id(cluster, SlurmJobId(sid.job, str(i - first))) for i in range(first, end)]
        return external_id(cluster, ids[0][1]), task_ids

    async def cancel_sweep(self: SlurmBackend, job: JobRef, tasks: list[JobRef]) -> None:  # type: ignore[misc]
        """One scancel of the array (of each array, above MaxArraySize); by name when no id was stored."""
        arrays = {sid.job for t in tasks if (sid := parse_external_id(t.external_id)[1]) is not None}
        first = parse_external_id(job.external_id)[1]
        if first is not None:
            arrays.add(first.job)
        client, _, _ = self._ref(job)
        targets = " ".join(sorted(arrays, key=int))
        result = await client.run(f"scancel {targets}" if targets else cancel_command(None, job_name(job.job_id)))
        if not cancelled(result.exit_status, result.stderr):
            raise BackendError(f"scancel failed: {result.stderr.strip()[-500:]}")
        self._on_change()

