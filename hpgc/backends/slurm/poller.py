"""One poll of a group of jobs that share an SSH identity on one cluster: run the poll command, read
Slurm's answer through poll.py and states.py, fetch the stderr tails of jobs that just failed, and tell
each job's status. Kept apart from the backend so that what an answer means is read in one place."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from hpgc.backends.files import parse_progress
from hpgc.backends.slurm.commands.poll import PollOutput, parse_poll, poll_command, poll_input
from hpgc.backends.slurm.commands.tails import parse_tails, tails_command, tails_input
from hpgc.backends.slurm.commands.versions import PLACEHOLDER_JOB_NAMES, provisional_failure
from hpgc.backends.slurm.jobdir import STDERR_FILE, job_name
from hpgc.backends.slurm.jobid import SlurmJobId
from hpgc.backends.slurm.ssh import SSHClient, SSHError
from hpgc.backends.slurm.states import ended_badly, to_status
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, JobRef

log = logging.getLogger(__name__)
MESSAGE_STDERR_CHARS = 500


@dataclass(frozen=True)
class PolledJob:
    ref: JobRef
    slurm_id: SlurmJobId
    job_dir: str

    @property
    def key(self) -> str:
        return str(self.slurm_id)


class Poller:
    def __init__(self) -> None:
        # when a job was first missing from both sacct and squeue: it is failed after squeue_grace_s
        self._missing_since: dict[str, float] = {}

    async def poll_group(self, client: SSHClient, jobs: list[PolledJob]) -> dict[str, BackendStatus]:
        settings = client.settings
        try:
            result = await client.run(poll_command(settings.sacct_chunk),
                                      input=poll_input([(j.slurm_id, j.job_dir) for j in jobs]))
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
            return {j.ref.job_id: BackendStatus(status=StatusCode.failed, message=msg) for j in jobs}
        parsed = parse_poll(result.stdout)
        return self.interpret(client.cluster, settings.squeue_grace_s, jobs, parsed,
                              await self._tails(client, jobs, parsed))

    async def _tails(self, client: SSHClient, jobs: list[PolledJob], parsed: PollOutput) -> dict[str, str]:
        """The stderr tails of the jobs that ended badly in this answer: a second round trip, only then."""
        records = parsed.records()
        failed = [j for j in jobs if (r := records.get(j.key)) is not None and ended_badly(r.state, r.exit_code)]
        if not failed:
            return {}
        try:
            result = await client.run(tails_command(STDERR_FILE),
                                      input=tails_input([(j.key, j.job_dir) for j in failed]))
        except SSHError as exc:
            log.warning("reading the stderr of failed jobs on %s: %s", client.cluster, exc)
            return {}
        return parse_tails(result.stdout)

    def interpret(self, cluster: str, squeue_grace_s: float, jobs: list[PolledJob], parsed: PollOutput,
                  tails: dict[str, str]) -> dict[str, BackendStatus]:
        records, queued = parsed.records(), parsed.queued()
        now = time.monotonic()
        out: dict[str, BackendStatus] = {}
        for job in jobs:
            sid, job_id = job.key, job.ref.job_id
            rec = records.get(sid)
            if rec is not None and rec.name in PLACEHOLDER_JOB_NAMES:
                rec = None  # not named yet (commands/versions.py): as if sacct did not know it yet
            other = rec.name if rec is not None else queued.get(sid, ("", "", ""))[2]
            # a sweep split into several arrays names the ones after the first `hpgc-<job id>.<k>`
            if other and other != job_name(job_id) and not other.startswith(job_name(job_id) + "."):
                # Slurm reuses ids after its state is reset: this id now belongs to someone else's job.
                out[job_id] = BackendStatus(status=StatusCode.failed, message=(
                    f"Slurm job {sid} on cluster {cluster} is now '{other}', not this job: the cluster's "
                    "job records were reset, and this job was lost"))
                continue
            if rec is not None and provisional_failure(rec.state, rec.exit_code, rec.signal,
                                                       rec.accounting.get("End")):
                first = self._missing_since.setdefault(job_id, now)
                if now - first < squeue_grace_s:
                    continue  # the exit code is still to come (commands/versions.py)
            if rec is not None:
                self._missing_since.pop(job_id, None)
                tail = tails.get(sid, "")
                st = to_status(rec.state, rec.exit_code, rec.signal, rec.reason, tail[-MESSAGE_STDERR_CHARS:],
                               rec.accounting)
                if tail:
                    st.details["stderr_tail"] = tail
            elif sid in queued:
                state, reason, _ = queued[sid]
                st = to_status(state, reason=reason)
            elif parsed.sacct_failed:
                continue  # sacct itself is down: no news is not bad news
            else:
                first = self._missing_since.setdefault(job_id, now)
                if now - first < squeue_grace_s:
                    continue
                st = BackendStatus(status=StatusCode.failed, message=f"Slurm has no record of job {sid} on "
                                   f"cluster {cluster} (neither sacct nor squeue knows it)")
            if st.status == StatusCode.running and sid in parsed.progress:
                st.progress, pmsg = parse_progress(parsed.progress[sid])
                st.message = pmsg or st.message
            out[job_id] = st
        return out
