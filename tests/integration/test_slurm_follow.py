"""Completion notices on the real cluster (commands/follow.py, follower.py): a job's end wakes the backend's
monitor through the followed events file, without waiting for a poll — the test's backend never polls on
its own, and its poll interval would be ten minutes."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.commands.follow import events_path
from hpgc.models.ogc import StatusCode
from hpgc.models.run import JobRef, RunSpec
from tests.integration.test_slurm_backend import settings_for

pytestmark = [pytest.mark.slurm]


async def test_a_jobs_end_is_noticed_through_the_follower_not_a_poll(cluster: dict) -> None:
    backend = SlurmBackend({"test": settings_for(cluster, poll_min_s=600, poll_max_s=600)})
    woken = asyncio.Event()
    await backend.start(lambda job_id=None: woken.set())
    try:
        run = uuid.uuid4().hex[:8]
        refs = []
        for name, argv in (("ok", ["sleep", "1"]), ("fails", ["sh", "-c", "sleep 1; exit 3"])):
            spec = RunSpec(job_id=f"follow-{run}-{name}", process_id="t", kind="command", argv=argv)
            refs.append(JobRef(job_id=spec.job_id, external_id=await backend.submit(spec)))
        await backend.poll(refs)  # the monitor's first poll after a submission: it starts the follower
        async with asyncio.timeout(120):
            while backend.followers.notices < 2:  # both ends, the failed one too (the script's EXIT trap)
                woken.clear()
                await woken.wait()
        t0 = time.monotonic()
        states = {}
        while time.monotonic() - t0 < 30 and len(states) < 2:  # sacct may lag behind the job's last act a little
            states = {k: v for k, v in (await backend.poll(refs)).items() if v.status.terminal}
            await asyncio.sleep(0.5)
        assert states[refs[0].job_id].status == StatusCode.successful
        assert states[refs[1].job_id].status == StatusCode.failed
        text = (await backend.pool.client("test").run(f"cat {events_path(cluster['work_root'], 'alice')}")).stdout
        ids = [r.external_id.rsplit(":", 1)[1] for r in refs]
        assert f"{ids[0]} 0" in text and f"{ids[1]} 3" in text, text
    finally:
        await backend.close()
