"""The deploy worker pool: results and errors come back, a task over its time or memory is a 400 and its
worker is replaced, and nothing is left running after close."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from hpgc.errors import InvalidPackage, WorkflowNotFound
from hpgc.packages.workers import DeploySettings, DeployWorkers


def answer(x: int) -> int:
    return x * 2


def refuse() -> None:
    raise WorkflowNotFound("no such workflow")


def spin() -> None:
    while True:
        pass


def hog() -> bytes:
    return b"x" * (4 << 30)  # 4 GiB: over any limit set here


def pid() -> int:
    return os.getpid()


def crash() -> None:
    raise KeyError("odd document")


@pytest.fixture
async def pool() -> AsyncIterator[DeployWorkers]:
    workers = DeployWorkers(DeploySettings(timeout_s=3, memory_mb=512, workers=1, start_with_server=False))
    yield workers
    await workers.close()


async def test_results_and_errors_cross_the_process_boundary(pool: DeployWorkers) -> None:
    assert await pool.run(answer, 21) == 42
    with pytest.raises(WorkflowNotFound, match="no such workflow"):
        await pool.run(refuse)
    with pytest.raises(InvalidPackage, match="KeyError"):
        await pool.run(crash)
    assert await pool.run(pid) != os.getpid()


async def test_a_task_over_its_time_is_a_400_and_the_worker_is_replaced(pool: DeployWorkers) -> None:
    first = await pool.run(pid)
    with pytest.raises(InvalidPackage, match=r"longer than 3 s.*deploy.timeout_s"):
        await pool.run(spin)
    second = await pool.run(pid)
    assert second != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)


async def test_a_task_over_its_memory_is_a_400_and_the_worker_is_replaced(pool: DeployWorkers) -> None:
    first = await pool.run(pid)
    with pytest.raises(InvalidPackage, match=r"more than 512 MiB.*deploy.memory_mb"):
        await pool.run(hog)
    assert await pool.run(pid) != first


async def test_close_leaves_no_worker_behind(pool: DeployWorkers) -> None:
    worker_pid = await pool.run(pid)
    await pool.close()  # waits for (reaps) every worker it started
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
