"""hpgc.client (async and sync) against the real API on a backend that runs nothing (tests/api/fake_backend)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hpgc.api.app import create_app
from hpgc.client import AsyncClient, Client, JobFailed, ProblemError
from hpgc.client.http import StaticToken
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend


@pytest.fixture
async def url(aiohttp_server, settings: Settings, fake_backend: FakeBackend) -> str:
    server = await aiohttp_server(create_app(settings, backends={"local": fake_backend}))
    return str(server.make_url("")).rstrip("/")


async def test_processes_describe_execute_wait_results(url: str) -> None:
    async with AsyncClient(url, credentials=StaticToken(None)) as hpgc:
        assert {p.id for p in await hpgc.processes()} >= {"echo", "sleep"}
        assert "stringInput" in (await hpgc.describe("echo")).inputs
        seen: list[str] = []
        job = await hpgc.execute("echo", {"stringInput": "hi", "arrayInput": [1, 2]}, wait=True,
                                 progress=lambda s: seen.append(s.status.value))
        assert job.status.status.value == "successful"
        assert seen[0] in ("accepted", "running") and seen[-1] == "successful"
        assert (await job.results())["stringOutput"] == "hi"
        assert (await hpgc.request_of(job.id))["inputs"] == {"stringInput": "hi", "arrayInput": [1, 2]}
        again = await hpgc.rerun(job.id, {"stringInput": "again"}, wait=True)
        assert again.id != job.id and (await again.results())["stringOutput"] == "again"
        listed = await hpgc.jobs(process="echo", since="1h")
        assert [j.jobID for j in listed] == [again.id, job.id]
        assert await hpgc.jobs(status="failed") == []


async def test_a_failed_job_raises_job_failed(url: str) -> None:
    async with AsyncClient(url, credentials=StaticToken(None)) as hpgc:
        job = await hpgc.execute("echo", {"stringInput": "fail"})
        with pytest.raises(JobFailed) as info:
            await job.wait()
        assert info.value.exit_code == 1 and info.value.status == "failed"
        assert str(info.value).startswith(f"job {job.id} failed")


async def test_dismiss_and_missing_things_are_problems(url: str) -> None:
    async with AsyncClient(url, credentials=StaticToken(None)) as hpgc:
        job = await hpgc.execute("sleep", {"seconds": 60})
        assert (await job.dismiss()).status.value == "dismissed"
        with pytest.raises(ProblemError, match="job 'nope'") as info:
            await hpgc.status("nope")
        assert info.value.exit_code == 2 and info.value.type is not None and info.value.type.endswith("no-such-job")
        with pytest.raises(ProblemError, match="unknown input 'bogus'"):
            await hpgc.execute("echo", {"bogus": 1})


async def test_download_writes_every_file_of_the_results(url: str, fake_backend: FakeBackend, tmp_path: Path) -> None:
    async with AsyncClient(url, credentials=StaticToken(None)) as hpgc:
        job = await hpgc.execute("echo", {"stringInput": "hi"}, outputs={
            "stringOutput": {"transmissionMode": "reference"}}, wait=True)
        files = await job.download(tmp_path / "out")
    assert sorted(files) == ["results.json", "stringOutput"]
    assert files["stringOutput"].parent == tmp_path / "out"
    assert files["stringOutput"].read_bytes() == b'"hi"'  # a value by reference is served as JSON


async def test_the_sync_client_in_a_thread(url: str) -> None:
    def flow() -> tuple[str, str]:
        with Client(url, "unused-token") as hpgc:
            job = hpgc.execute("echo", {"stringInput": "sync"})
            job.wait()
            return job.status.status.value, hpgc.results(job.id)["stringOutput"]

    assert await asyncio.to_thread(flow) == ("successful", "sync")
