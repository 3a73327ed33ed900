"""OGC API - Processes Part 1 through the aiohttp test client, every JSON answer checked against the
official schemas."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate as validate_openapi

from tests.api.fake_backend import FakeBackend
from tests.api.waits import job_reaches
from tests.ogc_schemas import validate

OGC = "http://www.opengis.net/def/rel/ogc/1.0"
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
ECHO = {"inputs": {"stringInput": "hello", "doubleInput": 1.5, "arrayInput": [1, 2]}}


async def test_landing_links_have_exact_rel_type_pairs(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc, "landingPage.yaml")
    pairs = {(link["rel"], link["type"]): link["href"] for link in doc["links"]}
    assert pairs[("service-desc", "application/vnd.oai.openapi+json;version=3.0")].endswith("/api")
    assert pairs[("service-doc", "text/html")].endswith("/api.html")
    assert pairs[(f"{OGC}/conformance", "application/json")].endswith("/conformance")
    assert pairs[(f"{OGC}/processes", "application/json")].endswith("/processes")
    assert pairs[(f"{OGC}/job-list", "application/json")].endswith("/jobs")
    assert any(rel == "self" for rel, _ in pairs)


async def test_landing_html_for_browsers(client: TestClient) -> None:
    resp = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "/processes?f=html" in await resp.text()
    forced = await client.get("/?f=json", headers={"Accept": "text/html"})
    assert forced.content_type == "application/json"


async def test_conformance(client: TestClient) -> None:
    doc = await (await client.get("/conformance")).json()
    validate(doc, "confClasses.yaml")
    base = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
    for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "dismiss"):
        assert base + name in doc["conformsTo"]


async def test_openapi_document_is_valid(client: TestClient) -> None:
    resp = await client.get("/api")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/vnd.oai.openapi+json;version=3.0")
    doc = await resp.json()
    validate_openapi(doc)
    for path in ("/", "/conformance", "/processes", "/processes/{processId}", "/processes/{processId}/execution",
                 "/jobs", "/jobs/{jobId}", "/jobs/{jobId}/results"):
        assert path in doc["paths"]


async def test_swagger_ui_served_locally(client: TestClient) -> None:
    page = await client.get("/api.html")
    text = await page.text()
    assert page.status == 200 and "swagger-ui-bundle.js" in text and "http" not in text.split("<body>")[1][:200]
    js = await client.get("/api.html/static/swagger-ui-bundle.js")
    assert js.status == 200 and len(await js.read()) > 100_000


async def test_process_list_and_description(client: TestClient) -> None:
    doc = await (await client.get("/processes")).json()
    validate(doc, "processList.yaml")
    ids = [p["id"] for p in doc["processes"]]
    assert {"echo", "sleep"} <= set(ids)
    page = await (await client.get("/processes?limit=1")).json()
    assert len(page["processes"]) == 1
    assert any(link["rel"] == "next" for link in page["links"])
    echo = await (await client.get("/processes/echo")).json()
    validate(echo, "process.yaml")
    assert echo["inputs"]["stringInput"]["schema"] == {"type": "string"}
    assert echo["inputs"]["doubleInput"]["minOccurs"] == 0
    assert echo["inputs"]["arrayInput"]["schema"]["type"] == "array"
    assert any(link["rel"].endswith("/execute") for link in echo["links"])


async def test_unknown_process_is_404_problem(client: TestClient) -> None:
    resp = await client.get("/processes/nope")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    validate(body, "exception.yaml")
    assert body["type"] == f"{EXC}/no-such-process"


async def test_sync_execute_document(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json={**ECHO, "response": "document"})
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    validate(doc, "results.yaml")
    assert doc["stringOutput"] == "hello" and doc["arrayOutput"] == [1, 2]
    assert doc["report"]["href"].endswith("/results/report")


async def test_outputs_not_produced_are_left_out_not_null(client: TestClient) -> None:
    """Optional inputs not given → echo's optional outputs are CWL nulls; the 1.0 results schema has no
    null (and the gmu-hpgc-api client's models reject it), so they are absent."""
    resp = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "hello"},
                                                                "response": "document"})
    doc = await resp.json()
    validate(doc, "results.yaml")
    assert doc["stringOutput"] == "hello" and "doubleOutput" not in doc and "arrayOutput" not in doc
    job = resp.headers["Location"].rsplit("/", 1)[1]
    validate(await (await client.get(f"/jobs/{job}/results")).json(), "results.yaml")
    missing = await client.get(f"/jobs/{job}/results/doubleOutput")
    assert missing.status == 404 and (await missing.json())["type"] == f"{EXC}/no-such-output"


async def test_sync_execute_raw_single_output(client: TestClient) -> None:
    body = {**ECHO, "outputs": {"stringOutput": {}}, "response": "raw"}
    resp = await client.post("/processes/echo/execution", json=body)
    assert resp.status == 200
    assert await resp.text() == "hello"


async def test_async_execute_with_real_client_prefer(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json=ECHO,
                             headers={"Prefer": "respond-async;return=representation"})
    assert resp.status == 201
    assert resp.headers["Preference-Applied"] == "respond-async"
    info = await resp.json()
    validate(info, "statusInfo.yaml")
    assert info["type"] == "process" and info["processID"] == "echo" and info["status"] == "accepted"
    assert resp.headers["Location"].endswith(f"/jobs/{info['jobID']}")
    assert {"created", "links"} <= set(info)
    status = await job_reaches(client, info["jobID"])
    assert status["status"] == "successful" and status["progress"] == 100
    validate(status, "statusInfo.yaml")
    assert any(link["rel"] == f"{OGC}/results" for link in status["links"])
    results = await (await client.get(f"/jobs/{info['jobID']}/results")).json()
    validate(results, "results.yaml")
    assert results["stringOutput"] == "hello"


async def test_prefer_wait_is_honoured(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async, wait=5"})
    assert resp.status == 201
    assert "wait=5" in resp.headers["Preference-Applied"]
    assert (await resp.json())["status"] == "successful"


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"inputs": {}}, "stringInput"),
        ({"inputs": {"stringInput": 3}}, "stringInput"),
        ({"inputs": {"stringInput": "x", "doubleInput": "a"}}, "doubleInput"),
        ({"inputs": {"stringInput": "x", "bogus": 1}}, "bogus"),
        ({"inputs": {"stringInput": "x", "enumInput": "value9"}}, "enumInput"),
        ({"inputs": {"stringInput": ["a", "b"]}}, "stringInput"),
        ({"inputs": {"stringInput": "x"}, "outputs": {"nope": {}}}, "nope"),
    ],
)
async def test_invalid_inputs_name_the_input(client: TestClient, body: dict, names: str) -> None:
    resp = await client.post("/processes/echo/execution", json=body)
    assert resp.status == 400, await resp.text()
    problem = await resp.json()
    validate(problem, "exception.yaml")
    assert names in problem["detail"]


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400),
        (b'{"inputs": {"stringInput": "x"}, "unknownMember": 1}', {"Content-Type": "application/json"}, 400),
        (b"<xml/>", {"Content-Type": "application/xml"}, 415),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400),
    ],
)
async def test_malformed_bodies(client: TestClient, data: bytes, headers: dict, status: int) -> None:
    resp = await client.post("/processes/echo/execution", data=data, headers=headers)
    assert resp.status == status
    assert resp.content_type == "application/problem+json"
    validate(await resp.json(), "exception.yaml")


async def test_oversized_body_is_413_before_reading(client: TestClient, settings) -> None:
    big = b"x" * (settings.max_body_bytes + 1)
    resp = await client.post("/processes/echo/execution", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["status"] == 413


async def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    resp = await client.get("/nothing/here")
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    resp = await client.put("/conformance")
    assert resp.status == 405 and resp.content_type == "application/problem+json"


async def test_failed_job_results_give_its_exception(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "fail"}},
                             headers={"Prefer": "respond-async"})
    job_id = (await resp.json())["jobID"]
    status = await job_reaches(client, job_id)
    assert status["status"] == "failed" and "code 3" in status["message"]
    resp = await client.get(f"/jobs/{job_id}/results")
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    validate(body, "exception.yaml")
    assert "code 3" in body["detail"]


async def test_results_not_ready_while_running(client: TestClient) -> None:
    resp = await client.post("/processes/sleep/execution", json={"inputs": {"seconds": 30}},
                             headers={"Prefer": "respond-async"})
    job_id = (await resp.json())["jobID"]
    resp = await client.get(f"/jobs/{job_id}/results")
    assert resp.status == 404
    assert (await resp.json())["type"] == f"{EXC}/result-not-ready"


async def test_dismiss_cancels_in_backend(client: TestClient, fake_backend: FakeBackend) -> None:
    resp = await client.post("/processes/sleep/execution", json={"inputs": {"seconds": 30}},
                             headers={"Prefer": "respond-async"})
    job_id = (await resp.json())["jobID"]
    await job_reaches(client, job_id, "running")
    resp = await client.delete(f"/jobs/{job_id}")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc, "statusInfo.yaml")
    assert doc["status"] == "dismissed"
    assert job_id in fake_backend.cancelled
    again = await (await client.get(f"/jobs/{job_id}")).json()
    assert again["status"] == "dismissed"
    await fake_backend.until(lambda: job_id in fake_backend.removed, f"job {job_id} removed")
    assert fake_backend.removed == [job_id]  # OGC: dismiss removes the job's files


async def test_unknown_job_is_404(client: TestClient) -> None:
    for method, path in (("GET", "/jobs/x"), ("GET", "/jobs/x/results"), ("DELETE", "/jobs/x"),
                         ("GET", "/jobs/x/logs")):
        resp = await client.request(method, path)
        assert resp.status == 404, path
        assert (await resp.json())["type"] == f"{EXC}/no-such-job"


async def test_job_list_filters_and_paging(client: TestClient) -> None:
    ids = []
    for i in range(5):
        resp = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": f"s{i}"}},
                                 headers={"Prefer": "respond-async"})
        ids.append((await resp.json())["jobID"])
    sleeper = await client.post("/processes/sleep/execution", json={"inputs": {"seconds": 30}},
                                headers={"Prefer": "respond-async"})
    for job_id in ids:
        await job_reaches(client, job_id)
    await job_reaches(client, (await sleeper.json())["jobID"], "running")
    doc = await (await client.get("/jobs?limit=2&processID=echo")).json()
    validate(doc, "jobList.yaml")
    assert len(doc["jobs"]) == 2
    seen = [j["jobID"] for j in doc["jobs"]]
    while (nxt := next((link["href"] for link in doc["links"] if link["rel"] == "next"), None)):
        doc = await (await client.get(nxt.split("://", 1)[1].split("/", 1)[1].join(["/", ""]))).json()
        seen += [j["jobID"] for j in doc["jobs"]]
    assert sorted(seen) == sorted(ids)  # every echo job once, none twice, across pages
    assert seen == list(reversed(ids))  # newest first
    prev = next(link["href"] for link in doc["links"] if link["rel"] == "prev")
    back = await (await client.get("/" + prev.split("://", 1)[1].split("/", 1)[1])).json()
    assert [j["jobID"] for j in back["jobs"]] == seen[-3:-1]
    running = await (await client.get("/jobs?status=running")).json()
    assert [j["processID"] for j in running["jobs"]] == ["sleep"]
    assert (await (await client.get("/jobs?type=other")).json())["jobs"] == []
    assert len((await (await client.get("/jobs?datetime=2000-01-01T00:00:00Z/..")).json())["jobs"]) == 6
    assert (await (await client.get("/jobs?datetime=../2000-01-01T00:00:00Z")).json())["jobs"] == []
    assert len((await (await client.get("/jobs?minDuration=0&limit=100")).json())["jobs"]) == 6
    assert (await (await client.get("/jobs?minDuration=3600")).json())["jobs"] == []


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "limit=x", "status=bogus", "datetime=yesterday",
                                   "minDuration=-1", "next=%%%", "f=xml"])
async def test_job_list_bad_parameters(client: TestClient, query: str) -> None:
    resp = await client.get(f"/jobs?{query}")
    assert resp.status == 400, query
    validate(await resp.json(), "exception.yaml")


async def test_logs_and_script(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async"})
    job_id = (await resp.json())["jobID"]
    await job_reaches(client, job_id)
    logs = await (await client.get(f"/jobs/{job_id}/logs")).json()
    assert logs["stdout"] == "out" and logs["stderr"] == "err"
    assert next(e["status"] for e in logs["events"]) == "accepted"
    assert logs["events"][-1]["status"] == "successful"
    script = await client.get(f"/jobs/{job_id}/script")
    assert "echo fake" in await script.text()


async def test_result_file_with_range(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json={**ECHO, "response": "document"})
    href = (await resp.json())["report"]["href"]
    path = "/" + href.split("://", 1)[1].split("/", 1)[1]
    whole = await client.get(path)
    assert await whole.text() == "report for hello" and whole.headers["Accept-Ranges"] == "bytes"
    part = await client.get(path, headers={"Range": "bytes=0-5"})
    assert part.status == 206 and await part.text() == "report"
    assert part.headers["Content-Range"] == "bytes 0-5/16"
    bad = await client.get(path, headers={"Range": "bytes=100-200"})
    assert bad.status == 416


@pytest.mark.parametrize("path", ["/processes?f=html", "/processes/echo?f=html", "/jobs?f=html",
                                  "/conformance?f=html"])
async def test_html_pages(client: TestClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "<h1>" in await resp.text()


async def test_job_html(client: TestClient) -> None:
    resp = await client.post("/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async"})
    job_id = (await resp.json())["jobID"]
    page = await client.get(f"/jobs/{job_id}", headers={"Accept": "text/html"})
    assert page.content_type == "text/html" and job_id in await page.text()


async def test_oversized_chunked_body_is_413(client: TestClient, settings) -> None:
    async def chunks():
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    resp = await client.post("/processes/echo/execution", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


async def test_swagger_init_uses_relative_urls_and_client_id(client: TestClient) -> None:
    js = await (await client.get("/api.html/static/hpgc-swagger.js")).text()
    assert 'url: here + "api"' in js and "var clientId = null;" in js


async def test_request_or_package_chooses_the_cluster(client: TestClient, fake_backend: FakeBackend) -> None:
    from tests.api.fake_backend import submitted

    fake_backend.cluster_names = ["small", "big"]
    resp = await client.post("/processes/echo/execution?cluster=big", json=ECHO, headers={"Prefer": "respond-async"})
    assert resp.status == 201
    assert (await submitted(fake_backend, (await resp.json())["jobID"])).cluster == "big"
    resp = await client.post("/processes/echo/execution?cluster=nope", json=ECHO)
    assert resp.status == 400 and "small, big" in (await resp.json())["detail"]
    resp = await client.post("/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async"})
    assert (await submitted(fake_backend, (await resp.json())["jobID"])).cluster is None  # the default one


async def test_paging_links_keep_the_filters_escaped(client: TestClient) -> None:
    for i in range(2):
        await client.post("/processes/echo/execution", json={"inputs": {"stringInput": f"p{i}"}},
                          headers={"Prefer": "respond-async"})
    doc = await (await client.get("/jobs", params={"limit": "1", "processID": "echo,x&y=z"})).json()
    nxt = next(link["href"] for link in doc["links"] if link["rel"] == "next")
    query = nxt.split("?", 1)[1]
    assert query.startswith("limit=1&processID=echo%2Cx%26y%3Dz&next=") and "=" not in query.rsplit("next=", 1)[1]
    older = await (await client.get("/" + nxt.split("://", 1)[1].split("/", 1)[1])).json()
    assert len(older["jobs"]) == 1 and older["jobs"][0]["jobID"] != doc["jobs"][0]["jobID"]
