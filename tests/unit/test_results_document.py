"""A file asked for by value is inlined only if the bytes read fit: the `size` in outputs.json is the job's
word, not a fact."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hpgc.jobs.documents import INLINE_LIMIT, build_results_document
from hpgc.jobs.results import OutputFile
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


# statusInfo ----------------------------------------------------------------------------------------------------
def _status(status: str, **kw: object) -> dict:
    from hpgc.jobs.documents import status_document

    row = {"id": "j", "process_id": "echo", "status": status, "message": "m", "created": 100.5, "started": None,
           "finished": None, "updated": 200.0, "progress": 3, **kw}
    return status_document(row, "http://h")


def _links(doc: dict) -> list[tuple[str, str, str, str]]:
    return [(link["href"], link["rel"], link["type"], link["title"]) for link in doc["links"]]


COMMON = [("http://h/jobs/j", "self", "application/json", "this job's status"),
          ("http://h/jobs/j?f=html", "alternate", "text/html", "this job's status as HTML"),
          ("http://h/jobs/j/logs", "logs", "application/json", "stdout, stderr and the event log")]
UP = ("http://h/processes/echo", "up", "application/json", "the process")


def test_status_document_of_a_successful_job_links_its_results() -> None:
    doc = _status("successful", started=150.0, finished=200.0)
    assert _links(doc) == [*COMMON, ("http://h/jobs/j/results", "http://www.opengis.net/def/rel/ogc/1.0/results",
                                     "application/json", "results"), UP]
    assert (doc["jobID"], doc["processID"], doc["status"], doc["message"], doc["progress"], doc["type"]) == (
        "j", "echo", "successful", "m", 3, "process")
    assert (doc["created"], doc["started"], doc["finished"], doc["updated"]) == (
        "1970-01-01T00:01:40.500000Z", "1970-01-01T00:02:30Z", "1970-01-01T00:03:20Z", "1970-01-01T00:03:20Z")


def test_status_document_of_a_failed_job_links_its_exception() -> None:
    doc = _status("failed")
    assert _links(doc) == [*COMMON, ("http://h/jobs/j/results", "http://www.opengis.net/def/rel/ogc/1.0/exceptions",
                                     "application/problem+json", "why the job failed"), UP]
    assert "started" not in doc and "finished" not in doc


def test_status_document_of_other_jobs_has_no_results_link() -> None:
    for status in ("accepted", "running", "dismissed"):
        assert _links(_status(status)) == [*COMMON, UP]


def test_iso() -> None:
    from hpgc.jobs.documents import iso

    assert iso(None) is None
    assert iso(0.0).isoformat() == "1970-01-01T00:00:00+00:00"  # type: ignore[union-attr]


# results document ----------------------------------------------------------------------------------------------
async def test_results_document_modes_and_selection() -> None:
    from hpgc.jobs.results import OutputValue

    reads: list[str] = []

    async def read(oid: str) -> bytes:
        reads.append(oid)
        return {"txt": b"caf\xc3\xa9", "bin": b"\x00\x01", "js": b'{"a": 1}', "pub": b"x", "dflt": b"a,b",
                "xml": b"<a/>"}[oid]

    outputs = {
        "val": OutputValue([1, 2]), "ref": OutputValue("r"),
        "txt": OutputFile(path="a.txt", media_type="text/plain", size=5),
        "bin": OutputFile(path="a.bin", media_type="image/tiff"),
        "js": OutputFile(path="a.json", media_type="application/geo+json"),
        "xml": OutputFile(path="a.gml", media_type="application/gml+xml"),
        "pub": OutputFile(path="p.tif", media_type="image/tiff", public_url="https://files/p.tif"),
        "dflt": OutputFile(path="d.csv", media_type="text/csv"),
    }
    req = Execute.model_validate({"outputs": {
        "val": {}, "ref": {"transmissionMode": "reference"}, "txt": {"transmissionMode": "value"},
        "bin": {"transmissionMode": "value"}, "js": {"transmissionMode": "value"}, "xml": {"transmissionMode": "value"},
        "pub": {"transmissionMode": "reference"}, "dflt": {}, "absent": {"transmissionMode": "value"}}})
    doc = await build_results_document("j1", outputs, req, "http://h", read)
    enclosure = "http://www.opengis.net/def/rel/iana/1.0/enclosure"
    assert doc == {
        "val": [1, 2],
        "ref": {"href": "http://h/jobs/j1/results/ref", "type": "application/json"},
        "txt": {"value": "café", "mediaType": "text/plain"},
        "bin": {"value": "AAE=", "mediaType": "image/tiff", "encoding": "base64"},
        "js": {"value": '{"a": 1}', "mediaType": "application/geo+json"},
        "xml": {"value": "<a/>", "mediaType": "application/gml+xml"},
        "pub": {"href": "https://files/p.tif", "type": "image/tiff", "rel": enclosure},
        "dflt": {"value": "a,b", "mediaType": "text/csv"},  # listed without a mode: 1.0's default is value
    }
    assert sorted(reads) == ["bin", "dflt", "js", "txt", "xml"]  # only what was asked for by value


async def test_results_document_without_outputs_asked_gives_all_with_files_by_reference() -> None:
    from hpgc.jobs.results import OutputValue

    async def read(oid: str) -> bytes:
        raise AssertionError("nothing is asked for by value")

    outputs = {"v": OutputValue("x"), "f": OutputFile(path="a.xml", media_type="application/xml")}
    doc = await build_results_document("j1", outputs, Execute(), "http://h", read)
    assert doc == {"v": "x", "f": {"href": "http://h/jobs/j1/results/f", "type": "application/xml",
                                   "rel": "http://www.opengis.net/def/rel/iana/1.0/enclosure"}}


async def test_a_file_exactly_at_the_limit_is_inlined() -> None:
    doc = await _document(b"x" * INLINE_LIMIT, INLINE_LIMIT)
    assert doc["out"]["mediaType"] == "text/plain" and len(doc["out"]["value"]) == INLINE_LIMIT
    assert INLINE_LIMIT == 8 * 1024 * 1024


async def test_a_text_file_that_is_not_utf8_is_inlined_with_replacement_characters() -> None:
    assert (await _document(b"a\xffb", 3))["out"] == {"value": "a\ufffdb", "mediaType": "text/plain"}


@pytest.mark.parametrize("row", [
    {"status": "successful", "started": 150.0, "finished": 200.25, "message": "done", "progress": 100},
    {"status": "failed", "started": 150.0, "finished": 1_700_000_000.0, "message": "x", "progress": 0},
    {"status": "accepted", "message": None, "progress": None, "updated": None},
    {"status": "running", "started": 1_700_000_000.000001, "progress": 50, "resources": {"cpus": 2}},
    {"status": "dismissed", "finished": 0.0, "usage": {"cpu_s": 1.5}, "resources": {"cpus": 1}},
    {"status": "running", "usage": {"cpu_s": 1.5}},  # usage only once the job ended
])
def test_status_document_is_what_the_status_info_model_would_write(row: dict) -> None:
    """status_document builds its dict without the models (the hot path of every poll): it must be exactly
    StatusInfo's wire form, with the same keys in the same order, and valid against the model."""
    from hpgc.models.ogc import Link, StatusInfo

    doc = _status(**row)
    extensions = {k: doc.pop(k) for k in ("hpgc:resources", "hpgc:usage") if k in doc}
    model = StatusInfo(processID="echo", jobID="j", status=row["status"], message=row.get("message", "m"),
                       created=datetime.fromtimestamp(100.5, UTC),
                       started=_dt(row.get("started")), finished=_dt(row.get("finished")),
                       updated=_dt(row.get("updated", 200.0)), progress=row.get("progress", 3),
                       links=[Link(**link) for link in doc["links"]])
    assert json.dumps(doc) == json.dumps(model.wire())
    assert StatusInfo.model_validate(doc).wire() == doc
    assert ("hpgc:usage" in extensions) == ("usage" in row and row["status"] != "running")


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)
