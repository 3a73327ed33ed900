"""The Slurm backend's `steps` hook (GET /jobs/{id}/tasks of a CWL workflow under Toil), as a mixin like its
sweeps and uploads: one read of the watcher's toil/tasks.json, every field checked again (toil.parse_tasks)."""

from __future__ import annotations

from typing import Any

from hpgc.backends.slurm import toil
from hpgc.models.run import JobRef


class SlurmToilSteps:
    async def steps(self, job: JobRef) -> list[dict[str, Any]] | None:
        client, jd, _ = self._ref(job)  # type: ignore[attr-defined]
        text = await self._read_small(client, f"{jd}/{toil.TASKS_FILE}")  # type: ignore[attr-defined]
        return toil.parse_tasks(text, jd)
