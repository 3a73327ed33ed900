"""POST /files and friends against the real local backend: an upload lands streamed in the data dir, its href
runs as a file input (linked into the job, not downloaded), quotas and sizes hold, a cut upload leaves nothing,
other users' files do not exist, expiry spares files an active job uses."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.keys import JOBS, STORE
from hpgc.auth.principal import Principal
from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from hpgc.jobs.upload_settings import UploadSettings
from tests.api.test_auth_http import bearer

CATFILE = """cwlVersion: v1.2
class: CommandLineTool
id: catfile
baseCommand: [cat]
inputs:
  f: {type: File, inputBinding: {position: 1}}
stdout: out.txt
outputs:
  text:
    type: string
    outputBinding: {glob: out.txt, loadContents: true, outputEval: "$(self[0].contents)"}
"""
Client = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def files_client(aiohttp_client: Client, settings: Settings) -> TestClient:
    cfg = settings.model_copy(update={"auth": AuthSettings(), "uploads": UploadSettings(
        max_bytes=1_000_000, quota_bytes=1_500_000, expire_s=100)})
    return await aiohttp_client(create_app(cfg))  # the real local backend


def uploads_dir(client: TestClient) -> Path:
    return client.app[JOBS].backends["local"].uploads_dir  # type: ignore[attr-defined,no-any-return]


def stored(client: TestClient) -> list[str]:
    """The files in the uploads folder (none when no upload ever started)."""
    folder = uploads_dir(client)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def upload(client: TestClient, who: dict[str, str], body: Any, **query: str) -> Any:
    resp = await client.post("/files", data=body, params=query, headers={**who, "Content-Type": "text/plain"})
    return resp.status, await resp.json()


async def test_an_upload_is_an_input_of_a_job_by_its_href(files_client: TestClient) -> None:
    client = files_client
    admin = bearer(client, "root-admin", "hpgc:execute hpgc:deploy hpgc:admin")
    resp = await client.post("/processes", data=CATFILE, headers={**admin, "Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    alice = bearer(client, "alice")
    status, doc = await upload(client, alice, b"hello upload\n", name="my data.txt")
    assert status == 201, doc
    assert doc["size"] == 13 and doc["sha256"] == hashlib.sha256(b"hello upload\n").hexdigest()
    assert doc["href"].endswith(f"/files/{doc['id']}") and doc["name"] == "my data.txt"
    stored = uploads_dir(client) / doc["id"]
    assert stored.read_bytes() == b"hello upload\n" and stored.stat().st_mode & 0o777 == 0o600
    assert list(uploads_dir(client).iterdir()) == [stored]  # no part file left
    resp = await client.post("/processes/catfile/execution", json={"inputs": {"f": {"href": doc["href"]}}},
                             headers=alice)
    assert resp.status == 200, await resp.text()
    assert await resp.text() == "hello upload\n"  # one output: its raw value
    # the owner sees it, and it is kept past its use; bob does not see it, nor can he use its href
    listed = await (await client.get("/files", headers=alice)).json()
    assert [f["id"] for f in listed["files"]] == [doc["id"]]
    bob = bearer(client, "bob")
    assert (await client.get(f"/files/{doc['id']}", headers=bob)).status == 404
    assert (await client.delete(f"/files/{doc['id']}", headers=bob)).status == 404
    assert (await (await client.get("/files", headers=bob)).json())["files"] == []
    resp = await client.post("/processes/catfile/execution", json={"inputs": {"f": {"href": doc["href"]}}},
                             headers=bob)
    assert resp.status == 400 and "no uploaded file" in (await resp.json())["detail"]
    assert (await client.delete(f"/files/{doc['id']}", headers=alice)).status == 204
    assert not stored.exists()
    assert (await client.get(f"/files/{doc['id']}", headers=alice)).status == 404
    resp = await client.post("/processes/catfile/execution", json={"inputs": {"f": {"href": doc["href"]}}},
                             headers=alice)
    assert resp.status == 400, "a deleted upload is a 400 before a job exists"


async def test_sizes_and_quota(files_client: TestClient) -> None:
    client = files_client
    alice = bearer(client, "alice")
    status, doc = await upload(client, alice, b"x" * 1_000_001)
    assert status == 413 and doc["setting"] == "uploads.max_bytes"
    status, first = await upload(client, alice, b"x" * 900_000)
    assert status == 201
    status, doc = await upload(client, alice, b"x" * 700_000)
    assert status == 413 and doc["setting"] == "uploads.quota_bytes", doc

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit is what is left of the quota
        for _ in range(8):
            yield b"y" * 100_000

    status, doc = await upload(client, alice, chunked())
    assert status == 413 and doc["setting"] == "uploads.quota_bytes", doc
    assert sorted(p.name for p in uploads_dir(client).iterdir()) == [first["id"]]
    assert await client.app[STORE].call(client.app[STORE].upload_bytes, "dev:alice") == 900_000
    status, _ = await upload(client, bearer(client, "bob"), b"x" * 900_000)
    assert status == 201, "the quota is per user"
    status, doc = await upload(client, bearer(client, "carol", "hpgc:deploy"), b"x")
    assert status == 403


async def test_a_cut_upload_leaves_nothing(files_client: TestClient) -> None:
    """The body stops in the middle (the connection broke): no file, no part file, no row, no quota held."""
    service, store = files_client.app[JOBS], files_client.app[STORE]
    seen = []

    async def cut() -> AsyncIterator[bytes]:
        yield b"z" * 300_000
        seen.append(stored(files_client))  # the part file is there while the bytes arrive
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await service.upload(Principal(subject="dev:alice"), cut(), None, None, "image/tiff")
    assert len(seen[0]) == 1 and seen[0][0].endswith(".part")
    assert stored(files_client) == []
    assert await store.call(store.list_uploads, "dev:alice") == []
    assert await store.call(store.upload_bytes, "dev:alice") == 0


async def test_expiry_spares_files_in_use(files_client: TestClient) -> None:
    client = files_client
    alice = bearer(client, "alice")
    _, kept = await upload(client, alice, b"kept")
    _, gone = await upload(client, alice, b"gone")
    store, service = client.app[STORE], client.app[JOBS]
    now = time.time()
    job = {"id": "j-1", "process_id": "echo", "owner": "dev:alice", "status": "accepted", "created": now,
           "updated": now, "backend": "local"}
    await store.call(store.insert_job, job)
    await store.call(store.use_uploads, "j-1", [kept["id"]], now + 100)
    assert (await client.delete(f"/files/{kept['id']}", headers=alice)).status == 409
    assert await service.sweep_uploads(now + 1000) == 1
    assert sorted(p.name for p in uploads_dir(client).iterdir()) == [kept["id"]]
    await store.call(store.update_job, "j-1", {"status": "successful"}, "done")
    assert await service.sweep_uploads(now + 1000) == 1
    assert list(uploads_dir(client).iterdir()) == [] and gone["id"] != kept["id"]


@pytest.mark.parametrize("query, header", [({"name": "a\nb"}, "text/plain"), ({"cluster": "../x"}, "text/plain"),
                                           ({}, "bad type"), ({"cluster": "nope"}, "text/plain")])
async def test_bad_parameters_are_400(files_client: TestClient, query: dict[str, str], header: str) -> None:
    alice = bearer(files_client, "alice")
    resp = await files_client.post("/files", data=b"x", params=query, headers={**alice, "Content-Type": header})
    assert resp.status == 400, await resp.text()
    assert stored(files_client) == []


async def test_files_need_a_token(files_client: TestClient) -> None:
    assert (await files_client.post("/files", data=b"x")).status == 401
    assert (await files_client.get("/files")).status == 401


async def test_the_client_uploads_local_files(files_client: TestClient, tmp_path: Path) -> None:
    """`hpgc run -i f=@file`: the client streams it to POST /files and sends its href."""
    from hpgc.client.http import StaticToken, Transport
    from hpgc.client.uploads import LocalFile, with_uploads
    from tests.api.test_auth_http import token

    local = tmp_path / "scene.tif"
    local.write_bytes(b"II*\0" + bytes(range(256)) * 100)
    http = Transport(str(files_client.make_url("")), StaticToken(token(files_client, "alice")))
    try:
        sent = await with_uploads(http, {"f": LocalFile("f", local, "image/tiff"), "n": 3})
    finally:
        await http.close()
    assert sent["n"] == 3 and sent["f"]["type"] == "image/tiff"
    file_id = sent["f"]["href"].rsplit("/", 1)[1]
    assert (uploads_dir(files_client) / file_id).read_bytes() == local.read_bytes()
    doc = await (await files_client.get(f"/files/{file_id}", headers=bearer(files_client, "alice"))).json()
    assert doc["name"] == "scene.tif" and doc["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()


async def test_a_sweep_over_uploads_paths_or_s3_is_a_400_until_sweeps_resolve_them(files_client: TestClient) -> None:
    """A sweep's tasks do not resolve uploads, file:// or s3:// inputs, nor deliver outputs: a clear 400 naming
    the task and input, nothing stored, rather than tasks that fail on the cluster."""
    client = files_client
    admin = bearer(client, "root-admin", "hpgc:execute hpgc:deploy hpgc:admin")
    resp = await client.post("/processes", data=CATFILE, headers={**admin, "Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    alice = bearer(client, "alice")
    status, doc = await upload(client, alice, b"hello\n")
    assert status == 201, doc
    before = client.app[STORE].db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    for href in (doc["href"], "file:///etc/hostname", "s3://bucket/key.tif"):
        body = {"inputs": {}, "hpgc:sweep": {"inputs": {"f": [{"href": "https://example.org/a.txt"}, {"href": href}]}}}
        resp = await client.post("/processes/catfile/execution", json=body,
                                 headers={**alice, "Prefer": "respond-async"})
        problem = await resp.json()
        assert resp.status == 400, problem
        assert "task 1, input 'f'" in problem["detail"] and "not supported in a sweep" in problem["detail"], problem
    body = {"inputs": {}, "hpgc:sweep": {"inputs": {"f": [{"href": "https://example.org/a.txt"}]}},
            "hpgc:outputs": {"destination": "s3://bucket/prefix/"}}
    resp = await client.post("/processes/catfile/execution", json=body, headers={**alice, "Prefer": "respond-async"})
    problem = await resp.json()
    assert resp.status == 400 and "hpgc:outputs cannot be combined with hpgc:sweep" in problem["detail"], problem
    assert client.app[STORE].db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == before
