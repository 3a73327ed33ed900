"""GroupCommit (hpgc/jobs/batching.py): what arrives while a write runs goes in the next write, together; each
caller gets its own item's result, or the write's exception; a caller that stops waiting does not stop the
write. The write is a fake that holds until the test lets it go: no sleeps."""

from __future__ import annotations

import asyncio

import pytest

from hpgc.jobs.batching import GroupCommit


class Writes:
    """A write that records its batches and holds each until `release()`; results are the items doubled."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.fail = fail

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.started.set()
        await self.gate.wait()
        self.gate.clear()
        self.started.clear()
        if self.fail is not None:
            raise self.fail
        return [2 * i for i in items]


async def _until(condition: object) -> None:
    """Let the other tasks run until `condition()` holds (bounded: a bug fails the test, not hangs it)."""
    async with asyncio.timeout(10):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0)


async def test_what_arrives_during_a_write_goes_together_in_the_next() -> None:
    write = Writes()
    group: GroupCommit[int, int] = GroupCommit(write, "test-writer")
    assert group.writer is None
    first = asyncio.create_task(group.add(1))
    await write.started.wait()  # the first write holds [1]
    assert group.writer is not None and group.writer.get_name() == "test-writer"
    later = [asyncio.create_task(group.add(i)) for i in (2, 3, 4)]
    await _until(lambda: len(group._pending) == 3)
    assert write.batches == [[1]]
    write.gate.set()
    assert await first == 2
    await write.started.wait()  # the second write: everything that came meanwhile
    assert write.batches == [[1], [2, 3, 4]]
    write.gate.set()
    assert await asyncio.gather(*later) == [4, 6, 8]
    await _until(lambda: group.writer is None)  # idle again: the next add starts a new writer
    write.gate.set()
    assert await group.add(5) == 10
    assert write.batches == [[1], [2, 3, 4], [5]]


async def test_a_failed_write_reaches_every_caller_of_its_batch_and_the_next_batch_is_written() -> None:
    write = Writes(fail=OSError("disk full"))
    group: GroupCommit[int, int] = GroupCommit(write, "w")
    first = asyncio.create_task(group.add(1))
    await write.started.wait()
    later = [asyncio.create_task(group.add(i)) for i in (2, 3)]
    await _until(lambda: len(group._pending) == 2)
    write.gate.set()
    with pytest.raises(OSError, match="disk full"):
        await first
    await write.started.wait()
    write.fail = None  # the next batch is written
    write.gate.set()
    assert await asyncio.gather(*later) == [4, 6]
    await _until(lambda: group.writer is None)


async def test_every_caller_of_a_failed_batch_gets_the_exception() -> None:
    write = Writes(fail=ValueError("bad row"))
    group: GroupCommit[int, int] = GroupCommit(write, "w")
    holder = asyncio.create_task(group.add(0))
    await write.started.wait()
    both = [asyncio.create_task(group.add(i)) for i in (1, 2)]
    await _until(lambda: len(group._pending) == 2)
    write.gate.set()
    await _until(lambda: len(write.batches) == 2)
    write.gate.set()
    results = await asyncio.gather(holder, *both, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["ValueError"] * 3
    assert [str(r) for r in results] == ["bad row"] * 3
    assert write.batches == [[0], [1, 2]]
    await _until(lambda: group.writer is None)


async def test_a_caller_that_stops_waiting_does_not_stop_the_write() -> None:
    write = Writes()
    group: GroupCommit[int, int] = GroupCommit(write, "w")
    impatient = asyncio.create_task(group.add(1))
    await write.started.wait()
    patient = asyncio.create_task(group.add(2))
    await _until(lambda: len(group._pending) == 1)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    writer = group.writer
    assert writer is not None and not writer.cancelled()
    write.gate.set()
    await _until(lambda: len(write.batches) == 2)
    write.gate.set()
    assert await patient == 4
    assert write.batches == [[1], [2]]  # the first write ran to its end


async def test_a_write_that_answers_for_more_items_than_it_was_given_is_an_error() -> None:
    """One result per item, in order, is the write's contract: one too many stops the writer loudly."""

    async def one_too_many(items: list[int]) -> list[int]:
        return [*items, 0]

    group: GroupCommit[int, int] = GroupCommit(one_too_many, "w")
    waiting = asyncio.create_task(group.add(7))
    await _until(lambda: group.writer is not None)
    writer = group.writer
    assert writer is not None
    with pytest.raises(ValueError, match="zip"):
        await writer
    assert await waiting == 7  # its own result was given before the extra one was seen
    assert group.writer is None
