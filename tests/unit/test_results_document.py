"""A file asked for by value is inlined only if the bytes read fit: the `size` in outputs.json is the job's
word, not a fact."""

from __future__ import annotations

from hpgc.jobs.documents import INLINE_LIMIT, build_results_document
from hpgc.jobs.service import OutputFile
from hpgc.models.ogc import Execute

BY_VALUE = Execute.model_validate({"outputs": {"out": {"transmissionMode": "value"}}})


async def _document(data: bytes, size: int | None) -> dict:
    async def read(oid: str) -> bytes:
        return data

    outputs = {"out": OutputFile(path="out.txt", media_type="text/plain", size=size)}
    return await build_results_document("j1", outputs, BY_VALUE, "http://h", read)


async def test_a_small_file_is_inlined() -> None:
    assert (await _document(b"hello", 5))["out"] == {"value": "hello", "mediaType": "text/plain"}


async def test_a_file_that_lied_about_its_size_goes_by_reference() -> None:
    doc = await _document(b"x" * (INLINE_LIMIT + 1), 0)  # the reader stops one byte past the limit
    assert doc["out"]["href"] == "http://h/jobs/j1/results/out"
    assert "value" not in doc["out"]


async def test_a_file_declared_too_big_is_not_read() -> None:
    async def read(oid: str) -> bytes:
        raise AssertionError("read although outputs.json says it is too big to inline")

    outputs = {"out": OutputFile(path="out.txt", media_type="text/plain", size=INLINE_LIMIT + 1)}
    doc = await build_results_document("j1", outputs, BY_VALUE, "http://h", read)
    assert doc["out"]["href"] == "http://h/jobs/j1/results/out"
