"""Uploads on the Slurm backend, over the fake Slurm behind a real SSH server (tests/unit/slurm_fake.py): the
file goes over SFTP into WORK_ROOT/USER/uploads (0600, in the user's 0700 folder), the job script links it into
the job directory, and the job reads it; a cut upload leaves nothing on the cluster."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.keys import JOBS
from hpgc.auth.principal import Principal
from tests.api.test_api_slurm_fake import fake_slurm_site
from tests.api.test_files import CATFILE

Client = Callable[..., Awaitable[TestClient]]


async def test_an_upload_goes_to_the_cluster_and_runs(tmp_path: Path, aiohttp_client: Client) -> None:
    async with fake_slurm_site(tmp_path, aiohttp_client) as site:
        site.hold(False)
        client = site.client
        resp = await client.post("/processes", data=CATFILE, headers={"Content-Type": "application/cwl+yaml"})
        assert resp.status == 201, await resp.text()
        body = b"on the cluster\n" * 1000
        resp = await client.post("/files", data=body, headers={"Content-Type": "text/plain"})
        assert resp.status == 201, await resp.text()
        doc = await resp.json()
        assert doc["cluster"] == "fake" and doc["sha256"] == hashlib.sha256(body).hexdigest()
        stored = site.work / "alice" / "uploads" / doc["id"]
        assert stored.read_bytes() == body and stored.stat().st_mode & 0o777 == 0o600
        assert (site.work / "alice").stat().st_mode & 0o777 == 0o700
        assert sorted(p.name for p in stored.parent.iterdir()) == [doc["id"]]
        resp = await client.post("/processes/catfile/execution", json={"inputs": {"f": {"href": doc["href"]}}},
                                 headers={"Prefer": "respond-async"})
        assert resp.status == 201, await resp.text()
        job_id = (await resp.json())["jobID"]
        status = await site.job_where(job_id, lambda d: d["status"] in ("successful", "failed"), "ended", 60)
        assert status["status"] == "successful", status
        results = await (await client.get(f"/jobs/{job_id}/results")).json()
        assert results["text"] == body.decode()
        staged = next((site.job_dir(job_id) / "inputs").iterdir())
        assert staged.stat().st_ino == stored.stat().st_ino, "linked, not copied"
        assert (await client.delete(f"/files/{doc['id']}")).status == 204
        assert not stored.exists() and staged.read_bytes() == body  # the job keeps its input


async def test_a_cut_upload_leaves_nothing_on_the_cluster(tmp_path: Path, aiohttp_client: Client) -> None:
    async with fake_slurm_site(tmp_path, aiohttp_client) as site:
        service = site.client.app[JOBS]
        seen: list[list[str]] = []

        async def cut() -> AsyncIterator[bytes]:
            yield b"a" * 500_000
            yield b"b" * 500_000
            seen.append(sorted(p.name for p in (site.work / "alice" / "uploads").iterdir()))
            raise ConnectionResetError("the client went away")

        with pytest.raises(ConnectionResetError):
            await service.upload(Principal(subject="anonymous"), cut(), None, None, "image/tiff")
        assert len(seen[0]) == 1 and seen[0][0].endswith(".part")  # it was being written, as a part file
        assert list((site.work / "alice" / "uploads").iterdir()) == []
        assert await service.uploads(Principal(subject="anonymous")) == []
