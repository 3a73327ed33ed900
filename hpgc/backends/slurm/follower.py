"""One long-lived command per (cluster, SSH identity) that follows the identity's events file
(commands/follow.py) and wakes the job monitor when a job script ends: a finished job is noticed within
about a second instead of at the next poll (up to poll_max_s later).

A follower starts for an identity the first time its jobs are polled (so also after a restart), and runs
until the backend closes; when its channel breaks it starts again after a pause. It holds one of the
connection's channels (`max_channels`) while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hpgc.backends.base import BackendError, OnChange
from hpgc.backends.slurm.commands.follow import BEAT_S, events_path, follow_command, parse_notices
from hpgc.backends.slurm.ssh import SSHClient

log = logging.getLogger(__name__)
RETRY_S = 10.0
CHUNK = 4096
# A script's last act comes a moment before Slurm's accounting (sacct, what a poll reads) says the job ended:
# about 0.2 s on the test cluster. The monitor is woken a little after the notice, and once more later in
# case the first poll was too early (a woken monitor polls at most once per poll_min_s).
WAKE_AFTER_S = (0.5, 3.0)


class Followers:
    def __init__(self) -> None:
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.on_change: OnChange = lambda job_id=None: None
        self.notices = 0  # job ends seen (for tests and /metrics-like checks)

    def follow(self, client: SSHClient) -> None:
        """Make sure the events of CLIENT's identity are followed (idempotent, cheap)."""
        if not client.settings.follow_completions:
            return
        key = (client.cluster, client.login)
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = asyncio.create_task(self._run(client))

    async def _run(self, client: SSHClient) -> None:
        events = events_path(client.settings.work_root, client.login)
        command = follow_command(events)
        while True:
            try:
                await self._follow_once(client, command)
            except asyncio.CancelledError:
                raise
            except BackendError as exc:
                log.info("following job ends on %s as %s: %s; again in %g s", client.cluster, client.login, exc,
                         RETRY_S)
            except Exception:
                log.exception("following job ends on %s as %s failed; again in %g s", client.cluster, client.login,
                              RETRY_S)
            await asyncio.sleep(RETRY_S)

    async def _follow_once(self, client: SSHClient, command: str) -> None:
        pending = ""
        # no byte for three heartbeats means the channel is dead: stream() raises, and we start again
        async for chunk in client.stream(command, CHUNK, timeout=3 * BEAT_S):
            pending += chunk.decode(errors="replace")
            complete, _, pending = pending.rpartition("\n")
            if not complete:
                continue
            kinds = [kind for kind, _ in parse_notices(complete + "\n")]
            if "done" in kinds:
                self.notices += kinds.count("done")
                loop = asyncio.get_running_loop()
                for delay in WAKE_AFTER_S:
                    loop.call_later(delay, self._wake)
            if "following" in kinds:
                log.info("following job ends on %s as %s", client.cluster, client.login)
                self.on_change()  # a job that ended while no one followed is found by this poll

    def _wake(self) -> None:
        self.on_change()

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        loop = asyncio.get_running_loop()
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # its loop already closed: the task is gone with it
                task.cancel()
        # only this loop's tasks can be awaited here: one started from another loop (a backend shared by tests
        # that each run their own loop) would never finish for this one, and close() would hang
        mine = [t for t in tasks if t.get_loop() is loop]
        with contextlib.suppress(Exception):
            await asyncio.gather(*mine, return_exceptions=True)
