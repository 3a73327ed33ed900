"""The answer of a synchronous execute in each form it can take (hpgc/api/results.py): a document, one raw
value, one file by reference (204 + Link) or by value, a binary file, several outputs; and the headers of a
streamed result file."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp.test_utils import TestClient

from hpgc.backends.base import BackendError
from hpgc.jobs.documents import INLINE_LIMIT
from hpgc.models.run import JobRef
from tests.api.fake_backend import FakeBackend

INPUTS = {"stringInput": "hello", "arrayInput": [1, 2]}


async def execute(client: TestClient, outputs: dict[str, Any] | None, response: str = "raw") -> Any:
    body: dict[str, Any] = {"inputs": INPUTS, "response": response}
    if outputs is not None:
        body["outputs"] = outputs
    return await client.post("/processes/echo/execution", json=body)


def only_a_file(fake_backend: FakeBackend, oid: str, data: bytes, name: str = "out.txt") -> None:
    """The backend's results become one output `oid`: a file `name` holding `data` (its type from its name)."""

    async def outputs(job: JobRef) -> dict[str, Any]:
        fake_backend.files[(job.job_id, f"/jobs/{name}")] = data
        return {oid: {"class": "File", "path": f"/jobs/{name}"}}

    fake_backend.outputs = outputs  # type: ignore[method-assign]


async def test_one_raw_string_is_text_plain(client: TestClient) -> None:
    resp = await execute(client, {"stringOutput": {}})
    assert resp.status == 200 and resp.content_type == "text/plain" and await resp.text() == "hello"
    assert resp.headers["Location"].startswith("http://") and "/jobs/" in resp.headers["Location"]


async def test_one_raw_json_value_is_application_json(client: TestClient) -> None:
    resp = await execute(client, {"arrayOutput": {}})
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.text() == "[1, 2]" and "/jobs/" in resp.headers["Location"]


async def test_a_raw_string_that_mentions_media_type_is_still_text(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "value mediaType"},
                                                                "outputs": {"stringOutput": {}}, "response": "raw"})
    assert resp.status == 200 and resp.content_type == "text/plain" and await resp.text() == "value mediaType"


async def test_a_raw_json_object_value_is_application_json(client: TestClient, fake_backend: FakeBackend) -> None:
    async def an_object(job: JobRef) -> dict[str, Any]:
        return {"stringOutput": {"class": "Record", "a": 1}}

    fake_backend.outputs = an_object  # type: ignore[method-assign]
    resp = await execute(client, None)
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == {"class": "Record", "a": 1} and "/jobs/" in resp.headers["Location"]


async def test_one_raw_file_by_reference_is_204_with_a_link(client: TestClient, fake_backend: FakeBackend) -> None:
    only_a_file(fake_backend, "report", b"report for hello")
    resp = await execute(client, None)
    assert resp.status == 204 and await resp.read() == b""
    job = resp.headers["Location"].rsplit("/", 1)[1]
    host = resp.headers["Location"].split("/jobs/")[0]
    assert resp.headers["Link"] == f'<{host}/jobs/{job}/results/report>; rel="report"; type="text/plain"'


async def test_one_raw_text_file_by_value_is_its_bytes(client: TestClient, fake_backend: FakeBackend) -> None:
    only_a_file(fake_backend, "stringOutput", b"report for hello")
    resp = await execute(client, {"stringOutput": {"transmissionMode": "value"}})
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert await resp.read() == b"report for hello"


async def test_one_raw_binary_file_by_value_is_decoded(client: TestClient, fake_backend: FakeBackend) -> None:
    data = bytes(range(256))
    only_a_file(fake_backend, "stringOutput", data, "out.png")
    resp = await execute(client, {"stringOutput": {"transmissionMode": "value"}}, response="document")
    doc = (await resp.json())["stringOutput"]
    assert (doc["encoding"], doc["mediaType"]) == ("base64", "image/png") and base64.b64decode(doc["value"]) == data
    resp = await execute(client, {"stringOutput": {"transmissionMode": "value"}})
    assert resp.status == 200 and resp.content_type == "image/png" and await resp.read() == data
    assert "/jobs/" in resp.headers["Location"]


async def test_several_outputs_or_a_document_are_json(client: TestClient) -> None:
    resp = await execute(client, {"stringOutput": {}, "arrayOutput": {}})
    assert resp.status == 200 and await resp.json() == {"stringOutput": "hello", "arrayOutput": [1, 2]}
    resp = await execute(client, {"stringOutput": {}}, response="document")
    assert resp.status == 200 and await resp.json() == {"stringOutput": "hello"}


async def test_a_file_asked_by_value_that_is_gone_is_404(client: TestClient, fake_backend: FakeBackend) -> None:
    only_a_file(fake_backend, "stringOutput", b"x")
    read_file = fake_backend.read_file

    def gone(job: JobRef, path: str, offset: int = 0, length: int | None = None) -> Any:
        if path == "/jobs/out.txt":
            raise BackendError("deleted")
        return read_file(job, path, offset, length)

    fake_backend.read_file = gone  # type: ignore[method-assign]
    resp = await execute(client, {"stringOutput": {"transmissionMode": "value"}}, response="document")
    assert resp.status == 404
    assert (await resp.json())["detail"] == "output 'stringOutput' is not available: deleted"


async def test_streamed_file_headers_and_head(client: TestClient) -> None:
    resp = await execute(client, None, response="document")
    href = (await resp.json())["report"]["href"]
    path = "/" + href.split("://", 1)[1].split("/", 1)[1]
    whole = await client.get(path)
    assert whole.status == 200 and whole.content_type == "text/plain" and await whole.read() == b"report for hello"
    assert whole.headers["Content-Length"] == "16" and "Content-Range" not in whole.headers
    head = await client.head(path, headers={"Range": "bytes=0-1"})
    assert head.status == 200 and head.headers["Content-Length"] == "16" and await head.read() == b""
    part = await client.get(path, headers={"Range": "bytes=7-9"})
    assert part.status == 206 and await part.read() == b"for" and part.headers["Content-Range"] == "bytes 7-9/16"
    assert part.content_type == "text/plain"
    bad = await client.get(path, headers={"Range": "bytes=16-"})
    assert bad.status == 416 and bad.headers["Accept-Ranges"] == "bytes"
    assert (await bad.json())["detail"] == ("the Range header asks for no single byte range of this 16-byte file "
                                            "(one range only, e.g. bytes=0-1023 or bytes=-1024)")
    assert (await bad.json())["title"] == "Range not satisfiable"
    value = await client.get(path.rsplit("/", 1)[0] + "/arrayOutput")
    assert value.status == 200 and await value.json() == [1, 2]


async def test_a_streamed_file_that_is_gone_is_404(client: TestClient, fake_backend: FakeBackend) -> None:
    resp = await execute(client, None, response="document")
    href = (await resp.json())["report"]["href"]
    path = "/" + href.split("://", 1)[1].split("/", 1)[1]
    fake_backend.files.clear()
    gone = await client.get(path)
    assert gone.status == 404
    assert (await gone.json())["detail"] == "output 'report' is no longer available: no such file"


async def test_a_range_reads_only_its_bytes_from_the_backend(client: TestClient, fake_backend: FakeBackend) -> None:
    read_file = fake_backend.read_file
    reads: list[tuple[str, int, int | None]] = []

    def spy(job: JobRef, path: str, offset: int = 0, length: int | None = None) -> Any:
        reads.append((path, offset, length))
        return read_file(job, path, offset, length)

    fake_backend.read_file = spy  # type: ignore[method-assign]
    resp = await execute(client, None, response="document")
    href = (await resp.json())["report"]["href"]
    path = "/" + href.split("://", 1)[1].split("/", 1)[1]
    assert await (await client.get(path, headers={"Range": "bytes=7-9"})).read() == b"for"
    assert await (await client.get(path, headers={"Range": "bytes=-5"})).read() == b"hello"
    assert await (await client.get(path)).read() == b"report for hello"
    await client.head(path)
    assert reads == [("/jobs/report.txt", 7, 3), ("/jobs/report.txt", 11, 5), ("/jobs/report.txt", 0, 16)], \
        "HEAD reads nothing"


async def test_a_file_by_value_reads_one_byte_past_the_inline_limit(client: TestClient,
                                                                     fake_backend: FakeBackend) -> None:
    """At most INLINE_LIMIT + 1 bytes: enough to tell a file over the limit, never the whole of a huge one; the
    chunks the backend gives are joined as they are."""
    only_a_file(fake_backend, "stringOutput", b"report for hello")
    reads: list[tuple[int, int | None]] = []

    async def in_bytes(job: JobRef, path: str, offset: int = 0, length: int | None = None) -> Any:
        reads.append((offset, length))
        data = fake_backend.files[(job.job_id, path)]
        for i in range(len(data)):
            yield data[i:i + 1]

    fake_backend.read_file = in_bytes  # type: ignore[method-assign]
    resp = await execute(client, {"stringOutput": {"transmissionMode": "value"}})
    assert await resp.read() == b"report for hello"
    assert reads == [(0, INLINE_LIMIT + 1)] and INLINE_LIMIT == 8 * 1024 * 1024
