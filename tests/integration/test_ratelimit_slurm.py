"""A busy, rate-limited slurmctld (the test cluster has `SlurmctldParameters=rl_enable,...`): a burst of
1,000 submissions and polls of 1,000 jobs end with every job in Slurm exactly once and every job reported."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import JobRef, RunSpec
from tests.integration.conftest import ssh_run_async

pytestmark = [pytest.mark.slurm]
BURST = 1000


async def test_a_thousand_jobs_through_the_rate_limit(cluster: dict) -> None:
    limited = await ssh_run_async(cluster, "scontrol show config | grep -i '^SlurmctldParameters'")
    if "rl_enable" not in str(limited.stdout):
        # Slurm 22.05 has no RPC rate limiting (up leaves it out there): the burst is still worth running
        print(f"Slurm {cluster['slurm_version']}: no rate limiting; burst without it")
    run = uuid.uuid4().hex[:8]
    root = f"{cluster['work_root']}/rl-{run}"
    done = await ssh_run_async(cluster, f"mkdir -m 1777 {root} && chmod 1777 {root}")
    assert done.exit_status == 0, done.stderr
    settings = ClusterSettings(
        host=cluster["host"], port=cluster["port"], known_hosts=cluster["known_hosts"], user="alice",
        key_file=cluster["users"]["alice"], work_root=root, partition=cluster.get("partition"),
        poll_min_s=1, poll_max_s=2, command_timeout_s=300, unreachable_timeout_s=600)
    backend = SlurmBackend({"test": settings})
    await backend.start(lambda job_id=None: None)
    try:
        started = time.monotonic()
        specs = [RunSpec(job_id=f"rl-{run}-{i}", process_id="burst", kind="command", argv=["true"], outputs={})
                 for i in range(BURST)]
        external = await asyncio.gather(*(backend.submit(s) for s in specs))
        submitted = time.monotonic() - started
        assert len(set(external)) == BURST, "two jobs got the same Slurm id"
        refs = [JobRef(job_id=s.job_id, external_id=e) for s, e in zip(specs, external, strict=True)]
        states: dict[str, StatusCode] = {}
        deadline = time.monotonic() + 900
        while len(states) < BURST and time.monotonic() < deadline:
            answers = await backend.poll([r for r in refs if r.job_id not in states])
            states.update({k: v.status for k, v in answers.items() if v.status.terminal})
            await asyncio.sleep(2)
        polled = time.monotonic() - started
        assert len(states) == BURST, f"{BURST - len(states)} jobs never finished in the polls"
        assert set(states.values()) == {StatusCode.successful}, {v for v in states.values()}
        # Slurm's own account: each job name exactly once (no duplicate submission), none missing
        names = await ssh_run_async(
            cluster, f"sacct -X -n -P -S now-2hours -o JobName | grep '^hpgc-rl-{run}-' > /tmp/rl-{run}; "
            f"wc -l < /tmp/rl-{run}; sort /tmp/rl-{run} | uniq -d | wc -l; rm -f /tmp/rl-{run}", timeout=300)
        count, duplicates = str(names.stdout).split()
        assert (int(count), int(duplicates)) == (BURST, 0)
        print(f"Slurm {cluster['slurm_version']}: {BURST} jobs submitted in {submitted:.1f} s, all finished "
              f"and polled in {polled:.1f} s")
    finally:
        await backend.close()
        await ssh_run_async(cluster, f"rm -rf {root}")
