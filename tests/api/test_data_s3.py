"""s3:// inputs and output destinations through the API, on the real local backend and a real S3 endpoint on
loopback (moto's server): the server stages the input, runs the job, delivers its file outputs under the
requested prefix with their SHA-256 before the job is `successful`, and links to them from the results."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.config import Settings
from tests.s3_server import SECRET, S3Server

COPY = """cwlVersion: v1.2
class: CommandLineTool
id: copyfile
baseCommand: [cp]
inputs:
  f: {type: File, inputBinding: {position: 1}}
arguments: [{position: 2, valueFrom: copy.tif}]
outputs:
  copy: {type: File, outputBinding: {glob: copy.tif}}
  note: {type: string, outputBinding: {outputEval: $(inputs.f.basename)}}
"""
Client = Callable[..., Awaitable[TestClient]]
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
async def client(aiohttp_client: Client, settings: Settings, s3: S3Server) -> TestClient:
    s3.make_bucket("data-in")
    s3.make_bucket("data-out")
    app = create_app(settings.model_copy(update={"storage": s3.settings(["data-in", "data-out", "not-there"])}))
    c = await aiohttp_client(app)
    resp = await c.post("/processes", data=COPY, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    return c


async def test_an_s3_input_runs_and_the_outputs_are_delivered(client: TestClient, s3: S3Server) -> None:
    data = b"II*\0" + bytes(range(256)) * 4000
    s3.put("data-in", "scenes/a.tif", data)
    body = {"inputs": {"f": {"href": "s3://data-in/scenes/a.tif"}},
            "hpgc:outputs": {"destination": "s3://data-out/run-1/"}, "response": "document"}
    resp = await client.post("/processes/copyfile/execution", json=body)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert doc["copy"]["href"] == "s3://data-out/run-1/copy.tif"
    assert doc["copy"]["hpgc:sha256"] == hashlib.sha256(data).hexdigest() and doc["copy"]["hpgc:size"] == len(data)
    assert doc["note"].endswith(".tif")  # a value output is left as it is
    assert s3.get("data-out", "run-1/copy.tif") == data  # byte-equal to what the job wrote
    jobs = await (await client.get("/jobs")).json()
    job_id = jobs["jobs"][0]["jobID"]
    status = await (await client.get(f"/jobs/{job_id}")).json()
    assert status["status"] == "successful" and status["message"] == "outputs delivered to s3://data-out/run-1/"
    assert (await client.get(f"/jobs/{job_id}/results/copy")).status == 200  # the job's own copy stays readable


@pytest.mark.parametrize("body, detail", [
    ({"inputs": {"f": {"href": "s3://elsewhere/a.tif"}}}, "input 'f': no S3 endpoint of this server serves the "
                                                          "bucket 'elsewhere'"),
    ({"inputs": {"f": {"href": "s3://data-in/../a.tif"}}}, "input 'f': the key has a '.' or '..' segment"),
    ({"inputs": {"f": {"href": "s3://data-in/a"}}, "hpgc:outputs": {"destination": "s3://data-out/x"}},
     "must end with '/'"),
    ({"inputs": {"f": {"href": "s3://data-in/a"}}, "hpgc:outputs": {"destination": "ftp://host/x/"}},
     "must be an s3://bucket/prefix/ or file:///folder/ URL"),
    ({"inputs": {"f": {"href": "s3://data-in/a"}}, "hpgc:outputs": {"destination": "s3://elsewhere/"}},
     "hpgc:outputs.destination: no S3 endpoint"),
    ({"inputs": {"f": {"href": "s3://data-in/a"}}, "hpgc:outputs": {"destination": "s3://data-out/", "x": 1}},
     ""),
])
async def test_urls_the_server_cannot_serve_are_400_before_a_job(client: TestClient, body: dict, detail: str) -> None:
    resp = await client.post("/processes/copyfile/execution", json=body, headers=ASYNC)
    assert resp.status == 400, await resp.text()
    assert detail in (await resp.json())["detail"]
    assert (await (await client.get("/jobs")).json())["jobs"] == []


async def test_a_failed_delivery_fails_the_job_saying_why(client: TestClient, s3: S3Server) -> None:
    s3.put("data-in", "b.tif", b"some bytes")
    body = {"inputs": {"f": {"href": "s3://data-in/b.tif"}}, "hpgc:outputs": {"destination": "s3://not-there/p/"}}
    resp = await client.post("/processes/copyfile/execution", json=body)
    assert resp.status == 500, await resp.text()
    problem = await resp.json()
    assert "its outputs could not be delivered to s3://not-there/p/: s3://not-there/p/copy.tif: no such object or " \
           "bucket; they stay in the job's directory" in problem["detail"]
    assert SECRET not in problem["detail"]


async def test_a_missing_input_object_fails_the_job(client: TestClient) -> None:
    resp = await client.post("/processes/copyfile/execution", json={"inputs": {"f": {"href": "s3://data-in/none"}}})
    assert resp.status == 500
    assert "s3://data-in/none: no such object or bucket" in (await resp.json())["detail"]


async def test_a_folder_destination_is_403_on_the_local_backend(client: TestClient) -> None:
    """Local jobs run as the server's account: it copies into no folder outside the job for a user."""
    body = {"inputs": {"f": {"href": "s3://data-in/a"}}, "hpgc:outputs": {"destination": "file:///tmp/"}}
    resp = await client.post("/processes/copyfile/execution", json=body, headers=ASYNC)
    assert resp.status == 403, await resp.text()
    assert "writes outputs to no folder outside the job" in (await resp.json())["detail"]
