"""poller.py on recorded answers, without SSH: what a poll makes of sacct, squeue and the stderr tails, and
what it does when reading the tails fails. Expected values are written out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from hpgc.backends.slurm.commands import MARK
from hpgc.backends.slurm.commands.poll import FIELDS, parse_poll
from hpgc.backends.slurm.commands.pull_image import pull_image_command
from hpgc.backends.slurm.commands.tails import tails_input
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobid import SlurmJobId
from hpgc.backends.slurm.poller import PolledJob, Poller
from hpgc.backends.slurm.ssh import Result, SSHError
from hpgc.models.ogc import StatusCode
from hpgc.models.run import Container, JobRef


def _sacct(job_id: str, name: str, state: str, code: str) -> str:
    row = dict.fromkeys(FIELDS, "")
    row.update(JobID=job_id, JobName=name, State=state, ExitCode=code, Start="2026-12-01T10:00:00")
    return "|".join(row[f] for f in FIELDS)


class _Client:
    """Answers the poll command with `poll`, the tails command with `tails` (or raises it)."""

    def __init__(self, poll: str, tails: str | Exception, tmp_path: Path) -> None:
        self.cluster = "c1"
        self.last_ok = 0.0
        known = tmp_path / "known_hosts"
        known.write_text("")
        self.settings = ClusterSettings(host="h", known_hosts=known, user="svc", work_root="/w")
        self.poll, self.tails = poll, tails
        self.commands: list[str] = []

    async def run(self, command: str, input: Any = None, **kw: Any) -> Result:
        self.commands.append("tails" if "tail -c" in command else "poll")
        if "tail -c" in command:
            if isinstance(self.tails, Exception):
                raise self.tails
            return Result(0, self.tails, "")
        return Result(0, self.poll, "")


def _job(job_id: str, sid: str) -> PolledJob:
    return PolledJob(JobRef(job_id=job_id, external_id=f"c1:{sid}"), SlurmJobId.parse(sid), f"/w/u/{job_id}")


async def test_failed_jobs_get_their_stderr_tail_in_a_second_round_trip(tmp_path: Path) -> None:
    answer = "\n".join([f"{MARK} sacct", _sacct("7", "hpgc-a", "FAILED", "2:0"),
                        _sacct("8", "hpgc-b", "RUNNING", "0:0"), f"{MARK} files"])
    client = _Client(answer, f"{MARK} stderr 7 boom\n", tmp_path)
    out = await Poller().poll_group(client, [_job("a", "7"), _job("b", "8")])  # type: ignore[arg-type]
    assert out["a"].message == "the job exited with code 2. stderr: boom" and out["a"].details["stderr_tail"] == "boom"
    assert out["b"].status == StatusCode.running and client.commands == ["poll", "tails"]


async def test_unreadable_tails_leave_the_statuses_and_say_why(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    answer = "\n".join([f"{MARK} sacct", _sacct("7", "hpgc-a", "OUT_OF_MEMORY", "0:0"), f"{MARK} files"])
    client = _Client(answer, SSHError("connection lost"), tmp_path)
    with caplog.at_level(logging.WARNING, logger="hpgc.backends.slurm.poller"):
        out = await Poller().poll_group(client, [_job("a", "7")])  # type: ignore[arg-type]
    assert out["a"].message == "OUT_OF_MEMORY: the job ran out of memory and Slurm stopped it"
    assert [r.getMessage() for r in caplog.records] == ["reading the stderr of failed jobs on c1: connection lost"]


async def test_a_queued_id_that_names_another_job_is_lost(tmp_path: Path) -> None:
    """Slurm reused the id (its records were reset): squeue's job of that id is someone else's."""
    answer = "\n".join([f"{MARK} sacct", f"{MARK} files", f"{MARK} squeue", "9|PENDING|Priority|hpgc-other",
                        "10|PENDING|Priority|hpgc-c"])
    client = _Client(answer, "", tmp_path)
    out = await Poller().poll_group(client, [_job("b", "9"), _job("c", "10")])  # type: ignore[arg-type]
    assert out["b"].status == StatusCode.failed
    assert out["b"].message == ("Slurm job 9 on cluster c1 is now 'hpgc-other', not this job: the cluster's job "
                                "records were reset, and this job was lost")
    assert (out["c"].status, out["c"].message) == (StatusCode.accepted, "queued in Slurm: PENDING (Priority)")
    assert client.commands == ["poll"]  # nobody failed in Slurm: no tails


def test_tails_input_refuses_what_would_break_its_lines() -> None:
    assert tails_input([("X1", "/w/u/a"), ("7_1", "/w/u/b")]) == b"X1|/w/u/a\n7_1|/w/u/b\n"
    for key, jd in [("7 8", "/w"), ("7|8", "/w"), ("7", "/w|x"), ("7", "/w\nx"), ("7\n", "/w")]:
        with pytest.raises(ValueError, match="cannot list"):
            tails_input([(key, jd)])


def test_pull_image_command_text() -> None:
    cached = "test -e /c/site.sif || test -e /c/a.sif"  # the site's own file first
    assert pull_image_command("apptainer", "/c/", Container(image="a.sif", site_image="site.sif")) == cached
    assert pull_image_command("apptainer", "/c", Container(image="a.sif", source="docker://x/y")) == (
        "test -e /c/a.sif || { apptainer -s pull --force /c/.a.sif.partial docker://x/y && "
        "{ ln /c/.a.sif.partial /c/a.sif 2>/dev/null || test -e /c/a.sif; } && rm -f /c/.a.sif.partial; }")


def test_remove_image_command_text() -> None:
    from hpgc.backends.slurm.commands.pull_image import remove_image_command

    assert remove_image_command("/c/", "a b.sif") == "rm -f -- '/c/a b.sif'"


async def test_a_record_slurmdbd_has_not_named_yet_is_no_news(tmp_path: Path) -> None:
    """slurmdbd 22.05 may name a batch job 'allocation' until its name arrives (seen on the test cluster):
    not another job's id, not a state to report yet; the job's own queue entry still counts."""
    answer = "\n".join([f"{MARK} sacct", _sacct("9", "allocation", "FAILED", "1:0"),
                        _sacct("10", "allocation", "RUNNING", "0:0"), f"{MARK} files", f"{MARK} squeue",
                        "10|RUNNING|None|hpgc-c"])
    client = _Client(answer, "", tmp_path)
    out = await Poller().poll_group(client, [_job("b", "9"), _job("c", "10")])  # type: ignore[arg-type]
    assert "b" not in out  # no news yet: polled again
    assert out["c"].status == StatusCode.running


async def test_failed_with_exit_0_and_no_end_waits_for_the_real_exit_code(tmp_path: Path) -> None:
    """slurmdbd 22.05 once recorded a job that exited 3 as FAILED 0:0 with no End time, before its real
    record: that record is not reported (the next poll has the code); with its End it is, and after
    squeue_grace_s without one the job fails anyway rather than running for ever."""
    early = "\n".join([f"{MARK} sacct", _sacct("9", "hpgc-b", "FAILED", "0:0"), f"{MARK} files", f"{MARK} squeue"])
    poller, client = Poller(), _Client(early, "", tmp_path)
    assert "b" not in await poller.poll_group(client, [_job("b", "9")])  # type: ignore[arg-type]
    final = _sacct("9", "hpgc-b", "FAILED", "3:0").replace("2026-12-01T10:00:00|", "2026-12-01T10:00:00|"
                                                                 "2026-12-01T10:00:05", 1)
    client.poll = "\n".join([f"{MARK} sacct", final, f"{MARK} files", f"{MARK} squeue"])
    out = await poller.poll_group(client, [_job("b", "9")])  # type: ignore[arg-type]
    assert out["b"].status == StatusCode.failed
    assert out["b"].exit_code == 3
    no_grace = Poller()
    statuses = no_grace.interpret("c1", 0.0, [_job("b", "9")], parse_poll(early), {})
    assert statuses["b"].status == StatusCode.failed
