"""GET /jobs/{id}/tasks for a CWL workflow whose steps run as Slurm jobs of their own (Toil): each step's name,
OGC status, Slurm job id and state, node and log paths. The sweeps' handler (tasks.py) answers with this when
the job is not a sweep; the shape is a sweep's task list (`tasks`, each with `index` and `status`), so one
client reads both."""

from __future__ import annotations

from aiohttp import web

from hpgc.api.keys import JOBS
from hpgc.api.principal import principal
from hpgc.api.render import JSON, base_url, json_response


async def steps_response(request: web.Request, job_id: str) -> web.Response | None:
    """The job's step jobs; None when its steps run inside it (NoSuchJob for a job the caller cannot see)."""
    steps = await request.app[JOBS].steps(principal(request), job_id)
    if steps is None:
        return None
    return json_response({"jobID": job_id, "tasks": steps, "links": [
        {"href": f"{base_url(request)}/jobs/{job_id}", "rel": "up", "type": JSON, "title": "the job's status"}]})
