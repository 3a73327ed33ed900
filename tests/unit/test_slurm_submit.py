"""SubmitBatcher against a scripted client: how submits share commands, and what each job's caller gets."""

from __future__ import annotations

import asyncio
import io
import tarfile
from types import SimpleNamespace

import pytest

from hpgc.backends.base import BackendError
from hpgc.backends.slurm import batcher as submit
from hpgc.backends.slurm.batcher import SlurmBusy, SubmitBatcher
from hpgc.backends.slurm.commands import MARK
from hpgc.backends.slurm.commands.submit import submit_command
from hpgc.backends.slurm.ssh import Result, SSHError

M = MARK


class Client:
    """Answers each command with what `answer` makes of its jobs; held while `gate` is closed."""

    def __init__(self, max_channels: int = 8) -> None:
        self.cluster = "c1"
        self.settings = SimpleNamespace(max_channels=max_channels)
        self.commands: list[tuple[str, bytes]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.answer = lambda rels: Result(0, "".join(f"{M} submitted {r} {100 + i}\n" for i, r in enumerate(rels)),
                                          "")
        self.error: Exception | None = None
        self._arrived = asyncio.Condition()

    async def wait_commands(self, n: int) -> None:
        """Until N commands have been sent (they wait at the gate)."""
        async with asyncio.timeout(10), self._arrived:
            await self._arrived.wait_for(lambda: len(self.commands) >= n)

    async def run(self, command: str, input: bytes | None = None) -> Result:
        self.commands.append((command, input or b""))
        mine = len(self.commands) - 1
        async with self._arrived:
            self._arrived.notify_all()
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.answer(self.rels(mine))

    def rels(self, i: int) -> list[str]:
        """The job dirs of command I, in order (from its `set -- DIR NAME ...` line)."""
        line = next(x for x in self.commands[i][0].splitlines() if x.startswith("set -- "))
        return line.split()[2::2]


def _files(n: int = 1, size: int = 3) -> dict[str, tuple[bytes, int]]:
    return {"job.sbatch": (b"s" * size, 0o644), **{f"inputs/f{i}": (b"x" * size, 0o600) for i in range(n - 1)}}


@pytest.mark.parametrize(("channels", "workers"), [(1, 1), (2, 1), (3, 2), (5, 4), (8, 4), (64, 4)])
def test_workers_follow_the_channels_keeping_one_for_sftp(channels: int, workers: int) -> None:
    assert SubmitBatcher(Client(channels), "/w").max_workers == workers  # type: ignore[arg-type]


async def test_one_submit_is_one_command_with_its_files() -> None:
    client = Client()
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    assert await b.submit("alice/j1", "hpgc-j1", _files(2)) == ("submitted", "100")
    assert b.batches == 1 and len(client.commands) == 1
    command, data = client.commands[0]
    assert command == submit_command("/w", [("alice/j1", "hpgc-j1")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(tar.getnames()) == ["alice/j1/inputs/f0", "alice/j1/job.sbatch"]


async def test_a_burst_is_spread_over_the_workers() -> None:
    client = Client(max_channels=8)  # four workers
    client.gate.clear()
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    runs = asyncio.gather(*(b.submit(f"a/j{i}", f"hpgc-j{i}", _files()) for i in range(10)))
    await client.wait_commands(4)  # each of the four workers took its share of the burst
    assert [len(client.rels(i)) for i in range(len(client.commands))] == [3, 2, 2, 1]
    client.gate.set()
    answers = await runs
    assert [len(client.rels(i)) for i in range(len(client.commands))] == [3, 2, 2, 1, 1, 1]
    assert b.batches == 6
    assert sorted(r for c in range(6) for r in client.rels(c)) == sorted(f"a/j{i}" for i in range(10))
    assert all(kind == "submitted" for kind, _ in answers)


async def test_batches_are_capped_in_jobs_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert submit.MAX_BATCH_JOBS == 64
    client = Client(max_channels=2)  # one worker
    client.gate.clear()
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    runs = asyncio.gather(*(b.submit(f"a/j{i}", f"n{i}", _files()) for i in range(70)))
    client.gate.set()
    await runs
    assert [len(client.rels(i)) for i in range(len(client.commands))] == [64, 6]
    # bytes: each job counts its files' sizes plus 1024 per file
    monkeypatch.setattr(submit, "MAX_BATCH_BYTES", 2 * (500 + 1024))
    client = Client(max_channels=2)
    client.gate.clear()
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    runs = asyncio.gather(*(b.submit(f"a/j{i}", f"n{i}", _files(size=500)) for i in range(5)),
                          b.submit("a/big", "nb", _files(size=5000)))
    client.gate.set()
    await runs
    # two jobs fit exactly; a job larger than the cap still goes, alone
    assert [client.rels(i) for i in range(len(client.commands))] == [
        ["a/j0", "a/j1"], ["a/j2", "a/j3"], ["a/j4"], ["a/big"]]


async def test_the_same_job_twice_in_flight_is_one_submission() -> None:
    client = Client(max_channels=2)
    client.gate.clear()
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    first = asyncio.gather(b.submit("a/j", "n", _files()), b.submit("a/j", "n", _files()))
    client.gate.set()
    assert await first == [("submitted", "100"), ("submitted", "100")]
    assert client.rels(0) == ["a/j"] and len(client.commands) == 1
    # once answered it is no longer in flight: a later submit is a new command (the shell finds it then)
    assert await b.submit("a/j", "n", _files()) == ("submitted", "100")
    assert len(client.commands) == 2


async def test_what_each_caller_gets() -> None:
    client = Client(max_channels=2)
    client.answer = lambda rels: Result(1, "\n".join([
        f"{M} existing a/old 77", f"{M} busy a/busy Slurm is not accepting jobs: retrying",
        f"{M} failed a/bad sbatch: error: Invalid account"]), "tar: something\n")
    client.gate.clear()
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    got = asyncio.gather(*(b.submit(rel, "n", _files()) for rel in ("a/old", "a/busy", "a/bad", "a/none")),
                         return_exceptions=True)
    client.gate.set()
    old, busy, bad, none = await got
    assert old == ("existing", "77")
    assert isinstance(busy, SlurmBusy) and str(busy) == "cluster c1: Slurm is not accepting jobs: retrying"
    assert isinstance(bad, BackendError) and not isinstance(bad, SSHError)
    assert str(bad) == "sbatch on cluster c1 failed: sbatch: error: Invalid account"
    # no line for the job at all: the command's exit status and its stderr say why
    assert isinstance(none, BackendError) and str(none) == "sbatch on cluster c1 failed (exit 1): tar: something"


async def test_no_answer_line_and_no_stderr_reports_stdout() -> None:
    client = Client()
    client.answer = lambda rels: Result(90, "hpgc: cannot write\n" + "x" * 2000, "")
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    with pytest.raises(BackendError) as err:
        await b.submit("a/j", "n", _files())
    assert str(err.value) == "sbatch on cluster c1 failed (exit 90): " + "x" * 1000


async def test_a_failed_command_fails_every_job_of_its_batch_and_the_next_batch_runs() -> None:
    client = Client(max_channels=2)
    client.gate.clear()
    client.error = SSHError("cluster c1: connection lost")
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    got = asyncio.gather(*(b.submit(f"a/j{i}", "n", _files()) for i in range(2)), return_exceptions=True)
    client.gate.set()
    assert [str(e) for e in await got] == ["cluster c1: connection lost"] * 2
    client.error = None
    assert await b.submit("a/j0", "n", _files()) == ("submitted", "100")


async def test_a_caller_that_gave_up_does_not_break_the_others() -> None:
    client = Client(max_channels=2)
    client.gate.clear()
    b = SubmitBatcher(client, "/w")  # type: ignore[arg-type]
    impatient = asyncio.create_task(b.submit("a/j", "n", _files()))
    patient = asyncio.create_task(b.submit("a/j", "n", _files()))
    await client.wait_commands(1)  # both callers wait on the one submission
    impatient.cancel()
    client.gate.set()
    assert await patient == ("submitted", "100")
    assert impatient.cancelled()
