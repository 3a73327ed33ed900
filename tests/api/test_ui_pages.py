"""The web pages with a session (hpgc/api/ui/): the run form generated from the inputs and its answer, inline
errors, re-run with changes, deploy and its 400 in place, dismiss, the job page's previews, live events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.ui.forms import FormErrors, fields_of, inputs_of, values_of
from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from hpgc.models.run import JobRef
from tests.api.fake_backend import FakeBackend
from tests.api.ui_helpers import sign_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings,
                 fake_backend: FakeBackend) -> TestClient:
    return await aiohttp_client(create_app(settings.model_copy(update={"auth": AuthSettings()}),
                                           backends={"local": fake_backend}))


async def test_the_process_page_has_a_run_form_from_its_inputs(client: TestClient) -> None:
    await sign_in(client)
    html = await (await client.get("/processes/echo?f=html")).text()
    assert f'action="http://127.0.0.1:{client.port}/ui/processes/echo/run"' in html
    for name in ("in.stringInput", "in.doubleInput", "in.arrayInput", "in.enumInput"):
        assert f'name="{name}"' in html
    assert '<option>value2</option>' in html and 'name="csrf"' in html


async def test_running_from_the_form_starts_a_job_with_typed_inputs(client: TestClient) -> None:
    csrf = await sign_in(client)
    resp = await client.post("/ui/processes/echo/run", allow_redirects=False, data={
        "csrf": csrf, "in.stringInput": "from a form", "in.doubleInput": "2.5", "in.arrayInput": "1\n2\n3",
        "in.enumInput": "value3", "mode": "async"})
    assert resp.status == 303, await resp.text()
    job = resp.headers["Location"].split("/jobs/")[1].split("?")[0]
    inputs = (await (await client.get(f"/jobs/{job}/inputs")).json())["inputs"]
    assert inputs == {"stringInput": "from a form", "doubleInput": 2.5, "arrayInput": [1, 2, 3],
                      "enumInput": "value3"}
    rerun = await (await client.get(f"/ui/processes/echo/run?from={job}")).text()
    assert 'value="from a form"' in rerun and ">1\n2\n3</textarea>" in rerun and "<option selected>value3" in rerun


async def test_form_errors_are_shown_beside_their_input(client: TestClient) -> None:
    csrf = await sign_in(client)
    resp = await client.post("/ui/processes/echo/run", data={"csrf": csrf, "in.stringInput": "x",
                                                             "in.doubleInput": "many", "in.arrayInput": "1\ntwo"})
    html = await resp.text()
    assert resp.status == 400 and html.count('role="alert"') == 2
    assert 'value="x"' in html  # what was typed stays
    missing = await client.post("/ui/processes/echo/run", data={"csrf": csrf})
    assert missing.status == 400 and "this input is required" in await missing.text()


async def test_deploy_shows_the_400_in_place_then_deploys(client: TestClient) -> None:
    csrf = await sign_in(client, "admin", perms=("execute", "deploy", "admin"))
    bad = await client.post("/ui/deploy", data={"csrf": csrf, "document": "cwlVersion: v1.2\nclass: Nothing\n"})
    text = await bad.text()
    assert bad.status == 400 and 'id="deploy-error"' in text and "class: Nothing" in text
    cwl = ("cwlVersion: v1.2\nclass: CommandLineTool\nid: hello\nbaseCommand: echo\ninputs:\n  who:\n    type: string\n"
           "    inputBinding: {position: 1}\noutputs: []\n")
    ok = await client.post("/ui/deploy", data={"csrf": csrf, "document": cwl}, allow_redirects=False)
    assert ok.status == 303 and ok.headers["Location"].endswith("/processes/hello?f=html"), await ok.text()
    page = await (await client.get("/processes/hello?f=html")).text()
    assert "Undeploy" in page and 'name="in.who"' in page
    gone = await client.post("/ui/processes/hello/undeploy", data={"csrf": csrf}, allow_redirects=False)
    assert gone.status == 303 and (await client.get("/processes/hello")).status == 404


async def test_the_job_page_previews_an_image_and_dismiss_works(client: TestClient,
                                                                   fake_backend: FakeBackend) -> None:
    async def outputs(job: JobRef) -> dict[str, Any]:
        fake_backend.files[(job.job_id, "/jobs/quick.png")] = PNG
        fake_backend.files[(job.job_id, "/jobs/meta.json")] = b'{"a":[1,2]}'
        return {"image": {"class": "File", "path": "/jobs/quick.png"},
                "meta": {"class": "File", "path": "/jobs/meta.json"}, "count": 3}

    fake_backend.outputs = outputs  # type: ignore[method-assign]
    csrf = await sign_in(client)
    run = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}},
                            headers={"X-CSRF-Token": csrf, "Prefer": "respond-async, wait=10"})
    job = (await run.json())["jobID"]
    html = await (await client.get(f"/jobs/{job}?f=html")).text()
    assert f'<img src="http://127.0.0.1:{client.port}/jobs/{job}/results/image?exp=' in html
    assert '[\n    1,\n    2\n  ]' in html  # JSON pretty-printed
    assert "Inputs as submitted" in html and "Re-run with changes" in html
    img = html.split('<img src="')[1].split('"')[0].replace("&amp;", "&")
    client.session.cookie_jar.clear()
    assert await (await client.get(img.split(str(client.port))[1])).read() == PNG  # the signed link alone
    csrf = await sign_in(client)
    gone = await client.post(f"/ui/jobs/{job}/dismiss", data={"csrf": csrf}, allow_redirects=False)
    assert gone.status == 303 and (await (await client.get(f"/jobs/{job}")).json())["status"] == "dismissed"


async def test_live_events_follow_a_job_until_it_ends(client: TestClient, fake_backend: FakeBackend) -> None:
    csrf = await sign_in(client)
    run = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}},
                            headers={"X-CSRF-Token": csrf, "Prefer": "respond-async"})
    job = (await run.json())["jobID"]
    stream = await client.get(f"/ui/events?job={job}")
    assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
    events = []
    async with asyncio.timeout(20):
        async for line in stream.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["status"] in ("successful", "failed"):
                    break
    assert events[-1]["status"] == "successful" and all(e["id"] == job for e in events)


async def test_another_users_job_has_no_events_and_no_page(client: TestClient) -> None:
    csrf = await sign_in(client, "alice")
    run = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}},
                            headers={"X-CSRF-Token": csrf, "Prefer": "respond-async"})
    job = (await run.json())["jobID"]
    client.session.cookie_jar.clear()
    csrf = await sign_in(client, "bob")
    assert (await client.get(f"/ui/events?job={job}")).status == 404
    assert (await client.get(f"/jobs/{job}?f=html")).status == 404
    assert (await client.get(f"/ui/processes/echo/run?from={job}")).status == 404
    assert (await client.post(f"/ui/jobs/{job}/dismiss", data={"csrf": csrf})).status == 404


def test_forms_cover_every_kind_of_input() -> None:
    fields = fields_of({
        "s": {"schema": {"type": "string"}}, "n": {"schema": {"type": "number"}},
        "i": {"schema": {"type": "integer"}, "minOccurs": 0}, "b": {"schema": {"type": "boolean"}},
        "e": {"schema": {"type": "string", "enum": ["a", "b"]}},
        "f": {"schema": {"type": "string", "contentMediaType": "image/tiff"}},
        "fl": {"schema": {"oneOf": [{"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png"}]},
               "maxOccurs": 4},
        "box": {"schema": {"$ref": "http://schemas.opengis.net/ogcapi/bbox.yaml"}},
        "arr": {"schema": {"type": "array", "items": {"type": "integer"}}},
        "obj": {"schema": {"type": "object"}, "minOccurs": 0}})
    assert {f.id: f.kind for f in fields} == {"s": "text", "n": "number", "i": "integer", "b": "boolean",
                                              "e": "choice", "f": "file", "fl": "list", "box": "bbox",
                                              "arr": "list", "obj": "json"}
    form = {"in.s": "t", "in.n": "1.5", "in.b": "false", "in.e": "b", "in.f": "https://x.example/a.tif",
            "in.fl": "https://x.example/1.png\nhttps://x.example/2.png", "in.box.minx": "1", "in.box.miny": "2",
            "in.box.maxx": "3", "in.box.maxy": "4", "in.arr": "5\n6"}
    inputs = inputs_of(fields, form)
    assert inputs == {"s": "t", "n": 1.5, "b": False, "e": "b", "f": {"href": "https://x.example/a.tif"},
                      "fl": [{"href": "https://x.example/1.png"}, {"href": "https://x.example/2.png"}],
                      "box": {"bbox": [1.0, 2.0, 3.0, 4.0]}, "arr": [5, 6]}
    assert inputs_of(fields, {**values_of(fields, inputs)}) == inputs  # shown again, read again: the same
    with pytest.raises(FormErrors) as bad:
        inputs_of(fields, {**form, "in.f": "file:///etc/passwd", "in.n": "nan", "in.e": "z", "in.box.minx": "9"})
    assert set(bad.value.errors) == {"f", "n", "e", "box"}


async def test_a_geotiff_result_gets_a_png_quicklook(client: TestClient, fake_backend: FakeBackend) -> None:
    import io

    import numpy as np
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, (np.arange(300 * 200, dtype="float32").reshape(200, 300)))

    async def outputs(job: JobRef) -> dict[str, Any]:
        fake_backend.files[(job.job_id, "/jobs/ndvi.tif")] = buffer.getvalue()
        fake_backend.files[(job.job_id, "/jobs/broken.tif")] = b"II*\0 not really a tiff"
        return {"ndvi": {"class": "File", "path": "/jobs/ndvi.tif"},
                "broken": {"class": "File", "path": "/jobs/broken.tif"}}

    fake_backend.outputs = outputs  # type: ignore[method-assign]
    csrf = await sign_in(client)
    run = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}},
                            headers={"X-CSRF-Token": csrf, "Prefer": "respond-async, wait=10"})
    job = (await run.json())["jobID"]
    html = await (await client.get(f"/jobs/{job}?f=html")).text()
    assert f"/ui/jobs/{job}/quicklook/ndvi" in html
    look = await client.get(f"/ui/jobs/{job}/quicklook/ndvi")
    png = await look.read()
    assert look.status == 200 and png.startswith(b"\x89PNG")
    from PIL import Image

    assert Image.open(io.BytesIO(png)).size == (300, 200)
    broken = await client.get(f"/ui/jobs/{job}/quicklook/broken")
    assert broken.status == 422 and broken.content_type == "application/problem+json"
    assert (await client.get(f"/ui/jobs/{job}/quicklook/nothing")).status == 404


async def test_with_auth_off_the_forms_take_no_post_from_another_site(
        aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, fake_backend: FakeBackend) -> None:
    client = await aiohttp_client(create_app(settings, backends={"local": fake_backend}))  # auth off
    cwl = "cwlVersion: v1.2\nclass: CommandLineTool\nid: forged\nbaseCommand: 'true'\ninputs: {}\noutputs: []\n"
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = await client.post("/ui/deploy", data={"document": cwl}, headers=headers)
        assert resp.status == 403 and (await resp.json())["error"] == "csrf"
    assert (await client.get("/processes/forged")).status == 404
    same = await client.post("/ui/deploy", data={"document": cwl}, allow_redirects=False,
                             headers={"Origin": str(client.make_url("")).rstrip("/")})
    assert same.status == 303  # the page's own form (auth off: everyone is the administrator)
