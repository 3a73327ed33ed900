"""The HPGC notebooks' calls, made with the published client `gmu-hpgc-api==0.1.0` (package `openapi_client`).

Run with the python of the client's own venv (it needs pydantic<2), never the project's:

    python gmu_client_script.py URL [TOKEN]

Every call goes through the client. Where the client's own generated code cannot handle an answer that the
OGC 1.0 schemas allow (see docs/clients.md, "gmu-hpgc-api 0.1.0: what fails in the client"), the typed call is
still made, must fail with exactly that documented client error (anything else fails this script), and the
same operation is then made the way the notebooks do: `*_with_http_info(..., _preload_content=False)` and
the model's `from_json`, or the raw JSON. Prints one line per step; exits non-zero on the first failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openapi_client as oc
from openapi_client.api.copy2_dru_api import DRUApi
from openapi_client.models.copy2_ogcapppkg import Ogcapppkg
from openapi_client.models.copy2_process import Process2
from openapi_client.models.status_info import StatusInfo

REPO = Path(__file__).resolve().parents[2]
BANDMATH = REPO / "appkgs" / "BandMath" / "package.json"
REL = "http://www.opengis.net/def/rel/ogc/1.0"
CONF1 = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
CONF2 = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf"

# The client's own errors, documented in docs/clients.md; the markers are parts of their messages.
NESTED_SCHEMA = "into SchemaOneOfAllOfInner with oneOf schemas: Reference"  # inline items/oneOf schemas
NO_200_MODEL = "OneOfstringnumberintegerobjectarraybooleanfilemap' has no attribute 'from_dict'"  # sync 200
AMBIGUOUS_VALUE = "Multiple matches found when setting `actual_instance` in InputValueNoObject"  # str/int result
ENUM_PROCESS_ID = "value is not a valid enumeration member"  # DRUApi.replace/undeploy: ProcessesList enum
LIST_PARAMETERS = "AdditionalParameter2 expected dict not str"  # Process2: additionalParameters as a list only


def quiet(fn: Callable[[], Any]) -> Any:
    """The client prints every request and response (headers, token included) to stdout: swallow that."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def step(name: str, detail: str = "") -> None:
    print(f"ok   {name}{': ' + detail if detail else ''}", flush=True)


def client_bug(name: str, call: Callable[[], Any], marker: str) -> Any:
    """Make a typed call the client is known to mishandle: it either works (a fixed client) or fails with
    exactly the documented client error."""
    try:
        result = quiet(call)
    except Exception as exc:  # the client raises ValueError, AttributeError, ValidationError
        if marker not in str(exc):
            raise AssertionError(f"{name}: not the documented client error: {exc!s:.2000}") from exc
        print(f"bug  {name}: the client's documented error ({marker})", flush=True)
        return None
    step(name, "typed call worked")
    return result


def raw_json(response: oc.ApiResponse) -> Any:
    return json.loads(response.raw_data)


def main(url: str, token: str | None) -> None:
    config = oc.Configuration(host=url)
    if token:
        # Configuration(access_token=...) is stored but never sent (no operation declares a security
        # scheme): the header has to be a default header of the ApiClient.
        api = oc.ApiClient(config, header_name="Authorization", header_value=f"Bearer {token}")
        ignored = oc.ApiClient(oc.Configuration(host=url, access_token=token))
        try:
            quiet(lambda: oc.JobsApi(ignored).get_jobs())
            raise AssertionError("Configuration(access_token=...) was sent: update docs/clients.md")
        except oc.ApiException as exc:
            assert exc.status == 401, exc
        step("auth", "Configuration.access_token is ignored (401); ApiClient(header_name=...) works")
    else:
        api = oc.ApiClient(config)
    processes = oc.ProcessesApi(api)
    jobs = oc.JobsApi(api)

    # landing page, conformance, processes ---------------------------------------------------------------
    landing = quiet(lambda: oc.LandingPageApi(api).get_landing_page())
    rels = {link.rel: link.href for link in landing.links}
    for rel in ("self", "service-desc", "service-doc", f"{REL}/conformance", f"{REL}/processes", f"{REL}/job-list"):
        assert rel in rels, (rel, rels)
    assert rels[f"{REL}/processes"] == f"{url}/processes", rels
    step("landing page", f"{landing.title!r}, {len(landing.links)} links")

    conformance = quiet(lambda: oc.ConformanceApi(api).get_conformance())
    for cls in (f"{CONF1}/core", f"{CONF1}/job-list", f"{CONF1}/dismiss", f"{CONF2}/deploy-replace-undeploy",
                f"{CONF2}/ogcapppkg"):
        assert cls in conformance.conforms_to, (cls, conformance.conforms_to)
    step("conformance", f"{len(conformance.conforms_to)} classes")

    plist = quiet(lambda: processes.get_processes())
    ids = [p.id for p in plist.processes]
    assert "echo" in ids and "sleep" in ids, ids
    echo_summary = next(p for p in plist.processes if p.id == "echo")
    assert {o.value for o in echo_summary.job_control_options} >= {"sync-execute", "async-execute"}
    step("processes", ", ".join(ids))

    # describe ---------------------------------------------------------------------------------------------
    sleep = quiet(lambda: processes.get_process_description("sleep"))
    assert sleep.id == "sleep" and "seconds" in sleep.inputs, sleep
    step("describe sleep", f"inputs {sorted(sleep.inputs)}")
    client_bug("describe echo (typed)", lambda: processes.get_process_description("echo"), NESTED_SCHEMA)
    raw = quiet(lambda: processes.get_process_description_with_http_info("echo", _preload_content=False))
    echo = Process2.from_json(raw.raw_data)  # the notebooks' package model takes inline schemas
    assert sorted(echo.inputs) == ["arrayInput", "doubleInput", "enumInput", "stringInput"], echo
    assert json.loads(raw.raw_data)["inputs"]["arrayInput"]["schema"] == {"type": "array", "items": {"type": "integer"}}
    step("describe echo (Process2.from_json)", f"inputs {sorted(echo.inputs)}")

    # DRU: deploy, replace, undeploy BandMath --------------------------------------------------------------
    # The notebooks' models and API: the client's copy2 modules (the exported Ogcapppkg cannot parse it).
    text = BANDMATH.read_text()
    client_bug("openapi_client.Ogcapppkg.from_json(BandMath)", lambda: oc.Ogcapppkg.from_json(text), NESTED_SCHEMA)
    package = Ogcapppkg.from_json(text)
    assert package.to_dict() == json.loads(text), "the client does not round-trip the package"
    step("Ogcapppkg.from_json(BandMath package)", "copy2_ogcapppkg round-trips it exactly")
    dru = DRUApi(api)
    resp = quiet(lambda: dru.deploy_with_http_info(package, w="BandMath"))
    assert resp.status_code == 201, resp.status_code
    assert resp.headers["Location"] == f"{url}/processes/BandMath", resp.headers
    summary = json.loads(resp.raw_data)
    assert summary["id"] == "BandMath" and summary["version"] == "1.0.0", summary
    step("deploy BandMath", f"201, Location {resp.headers['Location']}")
    try:
        quiet(lambda: dru.deploy(package, w="BandMath"))
        raise AssertionError("a second deploy of BandMath was accepted")
    except oc.ApiException as exc:
        assert exc.status == 409 and "duplicated-process" in exc.body, (exc.status, exc.body)
    step("deploy BandMath again", "409 duplicated-process")

    listed = {p.id: p for p in quiet(lambda: processes.get_processes()).processes}
    assert listed["BandMath"].additional_parameters.parameters[0].name == "entry-point", listed["BandMath"]
    step("processes", "BandMath listed, its additionalParameters parsed by the typed ProcessSummary")
    client_bug("describe BandMath (typed)", lambda: processes.get_process_description("BandMath"), NESTED_SCHEMA)
    raw = quiet(lambda: processes.get_process_description_with_http_info("BandMath", _preload_content=False))
    client_bug("describe BandMath (Process2.from_json)", lambda: Process2.from_json(raw.raw_data), LIST_PARAMETERS)
    described = raw_json(raw)
    assert set(described["inputs"]) == {"il", "out", "ram", "exp"}, described["inputs"]
    assert described["inputs"]["il"]["maxOccurs"] == 1024
    assert [s["contentMediaType"] for s in described["inputs"]["il"]["schema"]["oneOf"]] == \
        ["image/tiff", "image/jpeg", "image/png"], described["inputs"]["il"]
    assert described["inputs"]["out"]["schema"]["default"] == "float"
    assert set(described["outputs"]) == {"out"}
    parameters = described["additionalParameters"]["parameters"]  # the 1.0 form, though a list was deployed
    assert {"name": "entry-point", "value": ["singularity exec otbtf_4.1.0-cpu.sif /opt/otbtf/bin/otbcli_BandMath"]} \
        in parameters, parameters
    step("describe BandMath (raw)", f"inputs {sorted(described['inputs'])}, additionalParameters in the 1.0 form")

    changed = json.loads(text)
    changed["processDescription"]["version"] = "1.1.0"
    changed["processDescription"]["inputs"]["ram"]["schema"]["default"] = 256
    replacement = Ogcapppkg.from_json(json.dumps(changed))
    client_bug("replace with the exported DRUApi", lambda: oc.DRUApi(api).replace("BandMath", replacement),
               ENUM_PROCESS_ID)
    resp = quiet(lambda: dru.replace_with_http_info("BandMath", replacement))
    assert resp.status_code == 204, resp.status_code
    after = raw_json(quiet(lambda: processes.get_process_description_with_http_info(
        "BandMath", _preload_content=False)))
    assert after["version"] == "1.1.0" and after["inputs"]["ram"]["schema"]["default"] == 256, after
    step("replace BandMath", "204; now version 1.1.0, ram defaults to 256")

    resp = quiet(lambda: dru.undeploy_with_http_info("BandMath"))
    assert resp.status_code == 204, resp.status_code
    try:
        quiet(lambda: processes.get_process_description("BandMath"))
        raise AssertionError("BandMath still described after undeploy")
    except oc.ApiException as exc:
        assert exc.status == 404 and "no-such-process" in exc.body, (exc.status, exc.body)
    assert "BandMath" not in [p.id for p in quiet(lambda: processes.get_processes()).processes]
    step("undeploy BandMath", "204, then 404 no-such-process")

    # execute: async ---------------------------------------------------------------------------------------
    request = {
        "inputs": {"stringInput": "Hello, HPC!", "arrayInput": [1, 2, 3], "doubleInput": 2.5},
        "outputs": {"stringOutput": {"transmissionMode": "reference"}, "arrayOutput": {}, "doubleOutput": {}},
        "response": "document",
    }
    status = quiet(lambda: processes.execute("echo", request, prefer="respond-async"))
    assert isinstance(status, StatusInfo) and status.process_id == "echo", status
    assert status.status.value in ("accepted", "running", "successful"), status
    step("execute echo async (typed)", f"job {status.job_id} {status.status.value}")
    resp = quiet(lambda: processes.execute_with_http_info("echo", request, prefer="respond-async",
                                                           _preload_content=False))
    assert resp.status_code == 201 and resp.headers["Location"].startswith(f"{url}/jobs/"), resp.headers
    second = StatusInfo.from_json(resp.raw_data)
    assert resp.headers["Location"] == f"{url}/jobs/{second.job_id}"
    step("execute echo async (StatusInfo.from_json)", f"job {second.job_id} {second.status.value}")

    job_id = status.job_id
    deadline = time.monotonic() + 60
    seen = []
    while True:
        info = quiet(lambda: jobs.get_status(job_id))
        if not seen or seen[-1] != info.status.value:
            seen.append(info.status.value)
        if info.status.value in ("successful", "failed", "dismissed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert info.status.value == "successful", (info, seen)
    assert info.progress == 100 and info.finished is not None, info
    step("job status", " → ".join(seen))

    listed = quiet(lambda: jobs.get_jobs())
    assert job_id in [j.job_id for j in listed.jobs] and second.job_id in [j.job_id for j in listed.jobs]
    step("job list", f"{len(listed.jobs)} jobs")

    results = quiet(lambda: jobs.get_result(job_id))
    assert results["arrayOutput"].actual_instance.actual_instance == [1, 2, 3], results
    assert results["doubleOutput"].actual_instance.actual_instance == 2.5, results
    link = results["stringOutput"].actual_instance
    # with auth on, a signed link: the output's URL with its expiry and signature in the query (docs/api.md)
    assert link.href.split("?")[0] == f"{url}/jobs/{job_id}/results/stringOutput", link
    assert ("&sig=" in link.href) == (token is not None), link
    value = quiet(lambda: api.call_api(link.href.removeprefix(url), "GET", response_types_map={"200": "object"},
                                       _return_http_data_only=True))
    assert value == "Hello, HPC!", value
    step("results (typed)", f"arrayOutput [1, 2, 3], doubleOutput 2.5, stringOutput by reference {value!r}")

    # the whole document by value: a plain string result is beyond the client's models
    by_value = quiet(lambda: processes.execute("echo", {"inputs": {"stringInput": "by value"}},
                                               prefer="respond-async;wait=30"))
    assert by_value.status.value == "successful", by_value
    client_bug("results by value (typed)", lambda: jobs.get_result(by_value.job_id), AMBIGUOUS_VALUE)
    doc = raw_json(quiet(lambda: jobs.get_result_with_http_info(by_value.job_id, _preload_content=False)))
    assert doc == {"stringOutput": "by value"}, doc
    step("results by value (raw)", json.dumps(doc))

    # execute: sync ----------------------------------------------------------------------------------------
    sync = {"inputs": {"stringInput": "now"}, "outputs": {"stringOutput": {}}}
    client_bug("execute echo sync (typed)", lambda: processes.execute("echo", sync), NO_200_MODEL)
    resp = quiet(lambda: processes.execute_with_http_info("echo", sync, _preload_content=False))
    assert resp.status_code == 200 and resp.raw_data == b"now", (resp.status_code, resp.raw_data)
    assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers
    step("execute echo sync, raw", "200 'now' (text/plain)")
    resp = quiet(lambda: processes.execute_with_http_info(
        "echo", {**sync, "response": "document"}, _preload_content=False))
    assert resp.status_code == 200 and raw_json(resp) == {"stringOutput": "now"}, resp.raw_data
    step("execute echo sync, document", resp.raw_data.decode())

    # dismiss ----------------------------------------------------------------------------------------------
    long = quiet(lambda: processes.execute("sleep", {"inputs": {"seconds": 60}}, prefer="respond-async"))
    gone = quiet(lambda: jobs.dismiss(long.job_id))
    assert gone.job_id == long.job_id and gone.status.value == "dismissed", gone
    step("dismiss", f"job {long.job_id} dismissed")
    print("ALL OK", flush=True)



if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2] if len(sys.argv) > 2 else None)
