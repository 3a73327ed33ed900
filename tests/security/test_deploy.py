"""Attacks through deploy (and the parsing of every body): a user with `hpgc:deploy` tries to make the server
read its own files, reach loopback, or stall everyone with a hostile document."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hpgc.auth.dev_issuer import KEYS_FILE
from tests.hostile_documents import alias_bomb_tool, echo_tool
from tests.security.conftest import Attacked, InternalService, attacked_server

CWL = {"Content-Type": "application/cwl+yaml"}
PKG = {"Content-Type": "application/ogcapppkg+json"}


# An ordinary deployer reaches the document parser wherever deployed processes run on a cluster; on the
# embedded default (local backend) deploying needs admin unless the administrator opts in. The attacks are
# made by alice, a deployer who is no admin, so the server opts in: what is tested is the parser, not the gate.
DEPLOYERS = {"HPGC_LOCAL__ALLOW_USER_DEPLOY": "true"}


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Attacked]:
    yield from attacked_server(tmp_path, DEPLOYERS)


@pytest.fixture
def quick_target(tmp_path: Path) -> Iterator[Attacked]:
    """The server with a short deploy time limit, so hostile deploys end within a test."""
    yield from attacked_server(tmp_path, {**DEPLOYERS, "HPGC_DEPLOY__TIMEOUT_S": "8"})


def assert_refused(resp: httpx.Response, *needles: str) -> dict:
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    problem = resp.json()
    for needle in needles:
        assert needle in problem["detail"], problem
    return problem


def assert_nowhere(target: Attacked, secret: str, pid: str) -> None:
    """The secret appears in no answer about the process: it was never deployed."""
    for path in (f"/processes/{pid}", f"/processes/{pid}/package", "/processes"):
        resp = target.alice.get(path)
        assert secret not in resp.text
    assert target.alice.get(f"/processes/{pid}").status_code == 404


def test_include_of_a_server_file_is_refused(target: Attacked) -> None:
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    resp = target.alice.post("/processes", content=echo_tool("peek", "doc: {$include: /etc/passwd}\n"), headers=CWL)
    assert_refused(resp, "/doc/$include", "self-contained")
    assert passwd not in resp.text
    assert_nowhere(target, passwd, "peek")


def test_include_of_the_dev_issuers_keys_is_refused(target: Attacked) -> None:
    key_file = target.server.data_dir / "auth" / KEYS_FILE
    private = json.loads(key_file.read_text())["keys"][0]["d"]
    for where in (str(key_file), key_file.as_uri()):
        doc = echo_tool("keys", f"doc: {{$include: '{where}'}}\n")
        resp = target.alice.post("/processes", content=doc, headers=CWL)
        assert_refused(resp, "$include")
        assert private not in resp.text
    # the same, inline in an OGC application package
    unit = {"type": "application/cwl", "unit": {**json.loads(json.dumps(_yaml_tool("keys"))),
                                                "doc": {"$include": str(key_file)}}}
    resp = target.alice.post("/processes", json={"executionUnit": unit}, headers=PKG)
    assert_refused(resp, "/doc/$include")
    assert_nowhere(target, private, "keys")


def _yaml_tool(pid: str) -> dict:
    return {"cwlVersion": "v1.2", "class": "CommandLineTool", "id": pid, "baseCommand": "echo",
            "inputs": {"msg": "string"}, "outputs": {}}


def test_import_and_run_of_a_loopback_url_are_refused_and_never_fetched(
        target: Attacked, internal_service: InternalService) -> None:
    url = f"{internal_service.url}/tool.cwl"
    attacks = {
        "requirements": echo_tool("imp", f"requirements: [{{$import: '{url}'}}]\n"),
        "run": f"""cwlVersion: v1.2
class: Workflow
id: wf
inputs: {{}}
outputs: {{}}
steps:
  s:
    run: {url}
    in: {{}}
    out: []
""",
        "schemadef": echo_tool(
            "sd", f"requirements:\n  - class: SchemaDefRequirement\n    types: [{{$import: '{url}'}}]\n"),
        "mixin": echo_tool("mx", f"hints: [{{$mixin: '{url}'}}]\n"),
        "schemas": echo_tool("sc", f"$schemas: ['{url}']\n"),
    }
    for name, doc in attacks.items():
        resp = target.alice.post("/processes", content=doc, headers=CWL)
        problem = assert_refused(resp)
        assert "internal secret" not in resp.text, name
        assert any(k in problem["detail"] for k in ("$import", "$mixin", "$schemas", "/run")), (name, problem)
    assert internal_service.hits == []


def test_file_default_pointing_at_a_server_file_is_refused(target: Attacked) -> None:
    doc = echo_tool("fdef").replace("inputs:\n", "inputs:\n  f:\n    type: File\n    default: {class: File, "
                                            "location: 'file:///etc/passwd'}\n")
    resp = target.alice.post("/processes", content=doc, headers=CWL)
    assert_refused(resp, "/inputs/f/default/location")
    assert target.alice.get("/processes/fdef").status_code == 404


def test_alias_bomb_is_refused_quickly_and_does_not_stall_other_requests(quick_target: Attacked) -> None:
    bomb = alias_bomb_tool()
    answer: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answer.append(
        quick_target.alice.post("/processes", content=bomb, headers=CWL)))
    sender.start()
    slowest = 0.0
    with httpx.Client(base_url=quick_target.url, timeout=30) as anon:
        while sender.is_alive() or not slowest:
            t0 = time.monotonic()
            assert anon.get("/conformance").status_code == 200
            slowest = max(slowest, time.monotonic() - t0)
    sender.join(30)
    assert slowest < 2.0, f"GET /conformance took {slowest:.1f} s during the bomb's deploy"
    assert answer and 400 <= answer[0].status_code < 500, answer[0].text if answer else "no answer"
    assert quick_target.alice.get("/processes/bomb").status_code == 404


def test_a_document_that_keeps_cwltool_busy_hits_the_time_limit(quick_target: Attacked) -> None:
    # 30^4 = 810,000 nodes once expanded: under the parser's cap, but cwltool needs far more than 8 s for it
    levels = "    d0: &d0 [" + ",".join(['"lolololol"'] * 30) + "]\n"
    for i in range(3):
        levels += f"    d{i + 1}: &d{i + 1} [" + ",".join([f"*d{i}"] * 30) + "]\n"
    doc = echo_tool("busy", "hints:\n  - class: 'x:Big'\n" + levels + "$namespaces: {x: 'http://example.org/'}\n")
    t0 = time.monotonic()
    with httpx.Client(base_url=quick_target.url, timeout=60) as anon:
        answer: list[httpx.Response] = []
        sender = threading.Thread(target=lambda: answer.append(
            quick_target.alice.post("/processes", content=doc, headers=CWL)))
        sender.start()
        while sender.is_alive():
            s0 = time.monotonic()
            assert anon.get("/conformance").status_code == 200
            assert time.monotonic() - s0 < 2.0
        sender.join()
    assert time.monotonic() - t0 < 40
    resp = answer[0]
    assert resp.status_code == 400, resp.text
    assert "deploy.timeout_s" in resp.json()["detail"] or "deploy.memory_mb" in resp.json()["detail"]
    # the worker was replaced: an ordinary deploy works
    ok = quick_target.alice.post("/processes", content=echo_tool("fine"), headers=CWL)
    assert ok.status_code == 201, ok.text


DEEP_JSON = "[" * 10_000 + "]" * 10_000


def test_deep_json_and_yaml_are_400_without_a_traceback(target: Attacked) -> None:
    execute = target.alice.post("/processes/echo/execution", content='{"inputs": {"s": ' + DEEP_JSON + "}}",
                                headers={"Content-Type": "application/json"})
    assert_refused(execute, "nests deeper")
    deploy_json = target.alice.post("/processes", content='{"executionUnit": ' + DEEP_JSON + "}", headers=PKG)
    assert_refused(deploy_json, "nests deeper")
    deploy_cwl_json = target.alice.post("/processes", content=DEEP_JSON,
                                        headers={"Content-Type": "application/cwl+json"})
    assert_refused(deploy_cwl_json, "nests deeper")
    deep_yaml = echo_tool("deep", "doc: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert_refused(target.alice.post("/processes", content=deep_yaml, headers=CWL), "nests deeper")
    block_yaml = echo_tool("deep2", "hints:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(3_000)))
    assert_refused(target.alice.post("/processes", content=block_yaml, headers=CWL), "nests deeper")
    log = target.log()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]
