"""Making the server fetch for us: `href` inputs, redirects, compression bombs, executionUnit.href, callbacks.

The attacker is an ordinary user. The prize is the `internal_service` on loopback (what a metadata service or an
intranet host would be): its `hits` must stay empty, and no answer may carry its body. A deployed `catfile`
process (cat of its file input, returned as a string) would hand every fetched byte straight back.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import Attacked, InternalService, attacked_server

SECRET = "internal secret"
ALLOWED_HOST = "127.0.0.2"  # named in HPGC_OUTBOUND__ALLOWED_NETWORKS: stands for a public host
ALLOW = {"HPGC_OUTBOUND__ALLOWED_NETWORKS": f'["{ALLOWED_HOST}/32"]'}
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
    outputBinding:
      glob: out.txt
      loadContents: true
      outputEval: $(self[0].contents)
"""
BOMB_CAP = 1024 * 1024
BOMB = gzip.compress(b"\0" * (64 * BOMB_CAP), 9)  # ~64 KB on the wire, 64 MiB once decoded


class _Outside(http.server.BaseHTTPRequestHandler):
    """A host the server may reach: a plain file, a redirect to `internal`, a gzip bomb, a non-CWL document."""

    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.server.internal + "/via-redirect")  # type: ignore[attr-defined]
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, extra = b"public data\n", {}
        if self.path == "/bomb.tif":
            body, extra = BOMB, {"Content-Encoding": "gzip"}
        elif self.path == "/tool.cwl":
            body = f"{SECRET} (an intranet page, not CWL)\n".encode()
        self.send_response(200)
        for key, value in {"Content-Length": str(len(body)), **extra}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def outside(internal_service: InternalService) -> Iterator[tuple[str, list[str]]]:
    httpd = http.server.ThreadingHTTPServer((ALLOWED_HOST, 0), _Outside)
    httpd.hits = []  # type: ignore[attr-defined]
    httpd.internal = internal_service.url  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{ALLOWED_HOST}:{httpd.server_address[1]}", httpd.hits  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()


@pytest.fixture
def allowing(tmp_path: Path) -> Iterator[Attacked]:
    """The server with one outside host allowed, and a small per-job staging cap for the bomb."""
    yield from attacked_server(tmp_path, {**ALLOW, "HPGC_OUTBOUND__MAX_JOB_BYTES": str(BOMB_CAP)})


def _deploy_catfile(srv: Attacked) -> None:
    # deployed by the administrator (deploying may need it on the local backend); run by ordinary users
    resp = srv.admin.post("/processes", content=CATFILE, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status_code == 201, resp.text


def _run(client: httpx.Client, href: str) -> httpx.Response:
    return client.post("/processes/catfile/execution", json={"inputs": {"f": {"href": href}}},
                       headers={"Prefer": "respond-async"})


def _final(client: httpx.Client, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/jobs/{job_id}").json()
        if status["status"] in ("successful", "failed", "dismissed"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def _refused_400(resp: httpx.Response, *needles: str) -> str:
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    detail = resp.json()["detail"]
    assert SECRET not in resp.text
    for needle in needles:
        assert needle in detail, detail
    return detail


def _failed_without_secret(client: httpx.Client, job_id: str, *needles: str) -> str:
    status = _final(client, job_id)
    assert status["status"] == "failed", status
    for needle in needles:
        assert needle in (status.get("message") or ""), status
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results", f"/jobs/{job_id}/logs"):
        assert SECRET not in client.get(path).text
    return str(status["message"])


def test_href_input_to_loopback_is_refused(target: Attacked, internal_service: InternalService) -> None:
    _deploy_catfile(target)
    port = internal_service.url.rsplit(":", 1)[1]
    # a literal address: refused at submission, naming the input
    _refused_400(_run(target.alice, f"{internal_service.url}/latest/meta-data"), "input 'f'", "refused by policy")
    # a name resolving to loopback: refused where the connection would be made; the job fails and says why
    resp = _run(target.alice, f"http://localhost:{port}/latest/meta-data")
    assert resp.status_code == 201, resp.text
    _failed_without_secret(target.alice, resp.json()["jobID"], "refused by policy: localhost resolves to a loopback")
    assert internal_service.hits == []


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[2002:7f00:1::]", "[64:ff9b::7f00:1]", "[::127.0.0.1]"])
def test_ipv6_literals_embedding_loopback_are_refused(target: Attacked, internal_service: InternalService,
                                                      host: str) -> None:
    _deploy_catfile(target)
    url = f"http://{host}:{internal_service.url.rsplit(':', 1)[1]}/x"
    _refused_400(_run(target.alice, url), "input 'f'", "refused by policy")
    cb = target.alice.post("/processes/echo/execution", headers={"Prefer": "respond-async"},
                           json={"inputs": {"stringInput": "x"}, "subscriber": {"successUri": url}})
    _refused_400(cb, "subscriber.successUri", "refused by policy")
    assert internal_service.hits == []


def test_redirect_from_an_allowed_host_to_an_internal_one(allowing: Attacked, internal_service: InternalService,
                                                          outside: tuple[str, list[str]]) -> None:
    _deploy_catfile(allowing)
    base, outside_hits = outside
    # the allowed host itself works: the pipe from href to answer is open
    ok = _run(allowing.alice, f"{base}/public.txt").json()["jobID"]
    assert _final(allowing.alice, ok)["status"] == "successful"
    assert allowing.alice.get(f"/jobs/{ok}/results").json()["text"] == "public data\n"
    # ... but where it redirects is checked again
    job = _run(allowing.alice, f"{base}/redirect").json()["jobID"]
    message = _failed_without_secret(allowing.alice, job, "redirects to a URL or address that is refused by policy")
    assert internal_service.url not in message and "/via-redirect" not in message
    assert "/redirect" in outside_hits and internal_service.hits == []


def test_gzip_bomb_is_capped_after_decoding(allowing: Attacked, outside: tuple[str, list[str]]) -> None:
    _deploy_catfile(allowing)
    base, _ = outside
    job = _run(allowing.alice, f"{base}/bomb.tif").json()["jobID"]
    _failed_without_secret(allowing.alice, job, "outbound.max_job_bytes")
    staged = [p for p in (allowing.server.data_dir / "jobs" / job).rglob("*") if p.is_file()]
    assert all(p.stat().st_size <= BOMB_CAP for p in staged), [(p.name, p.stat().st_size) for p in staged]


def test_execution_unit_href_to_loopback_at_deploy(target: Attacked, internal_service: InternalService) -> None:
    pkg = {"processDescription": {"id": "stolen"},
           "executionUnit": [{"href": f"{internal_service.url}/tool.cwl", "type": "application/cwl"}]}
    # alice may not deploy on the local backend at all (403 before the body is read); the admin's deploy
    # reaches the fetch and is refused by the guard
    resp = target.alice.post("/processes", json=pkg, headers={"Content-Type": "application/ogcapppkg+json"})
    assert resp.status_code == 403 and "local.allow_user_deploy" in resp.json()["detail"]
    resp = target.admin.post("/processes", json=pkg, headers={"Content-Type": "application/ogcapppkg+json"})
    _refused_400(resp, "executionUnit.href", "refused by policy")
    assert internal_service.hits == []
    assert target.alice.get("/processes/stolen").status_code == 404


def test_execution_unit_href_body_is_never_quoted(allowing: Attacked, outside: tuple[str, list[str]]) -> None:
    base, hits = outside
    pkg = {"processDescription": {"id": "quoted"},
           "executionUnit": [{"href": f"{base}/tool.cwl", "type": "application/cwl"}]}
    resp = allowing.admin.post("/processes", json=pkg, headers={"Content-Type": "application/ogcapppkg+json"})
    _refused_400(resp, "executionUnit.href", "not quoted")
    assert hits == ["/tool.cwl"]


def test_callback_to_loopback_is_refused_with_one_allowed_networks(
    allowing: Attacked, internal_service: InternalService,
) -> None:
    """Callbacks obey the same outbound.allowed_networks as downloads: 127.0.0.2 is allowed, 127.0.0.1 is not."""
    port = internal_service.url.rsplit(":", 1)[1]
    for url in (f"{internal_service.url}/hook", f"http://localhost:{port}/hook"):
        resp = allowing.alice.post("/processes/echo/execution", headers={"Prefer": "respond-async"},
                                   json={"inputs": {"stringInput": "x"}, "subscriber": {"successUri": url}})
        _refused_400(resp, "subscriber.successUri", "refused by policy")
    fine = allowing.alice.post("/processes/echo/execution", headers={"Prefer": "respond-async"},
                               json={"inputs": {"stringInput": "x"},
                                     "subscriber": {"successUri": f"http://{ALLOWED_HOST}:9/hook"}})
    assert fine.status_code == 201, fine.text
    assert internal_service.hits == []
