"""Attacks on identity and on what the server says about itself, against the real server process:
a foreign Host header that would end up in links and Location, a Range header that made a negative
Content-Length, and a user name that auth maps but no Unix/Slurm account can have.

Introspection answers without exp/aud/iss and tokens without sub are attacked through the HTTP API with a
fake OpenID provider (tests/api/test_identity_http.py, tests/unit/test_auth_verifier.py): the server
process here trusts only its development issuer, which mints JWTs."""

from __future__ import annotations

import socket
import time

import httpx

from tests.security.conftest import Attacked

ECHO = {"inputs": {"stringInput": "mine"}}
TEN_BYTES = """cwlVersion: v1.2
class: CommandLineTool
id: ten-bytes
baseCommand: [printf, "0123456789"]
inputs: {}
stdout: ten.txt
outputs:
  ten: {type: File, outputBinding: {glob: ten.txt}}
"""


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"]
    return body


def wait(client: httpx.Client, job_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/jobs/{job_id}").json()
        if doc["status"] in ("successful", "failed", "dismissed"):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {doc['status']}")


def raw(url: str, request: bytes) -> bytes:
    """The server's whole answer, status line and headers included, to these bytes."""
    parts = httpx.URL(url)
    with socket.create_connection((parts.host, parts.port or 80), timeout=30) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_foreign_host_never_reaches_links_or_location(target: Attacked) -> None:
    evil = {"Host": "evil.example"}
    jobs_before = target.admin.get("/jobs").json()["jobs"]
    for resp in (
        httpx.get(target.url + "/", headers=evil),                    # public pages too
        httpx.get(target.url + "/api", headers=evil),
        httpx.get(target.url + "/?f=html", headers=evil),
        target.alice.get("/processes", headers=evil),
        target.alice.post("/processes/echo/execution", json=ECHO, headers={**evil, "Prefer": "respond-async"}),
        httpx.get(target.url + "/jobs", headers=evil),                # same answer with or without a token
    ):
        body = assert_problem(resp, 400)
        assert "Location" not in resp.headers and "Link" not in resp.headers
        assert "evil.example" not in resp.text, body
    assert target.admin.get("/jobs").json()["jobs"] == jobs_before, "a refused request created a job"
    # a proxy's headers are not believed either: links keep the address the client used
    resp = target.alice.post("/processes/echo/execution", json=ECHO,
                             headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
                                      "Forwarded": "host=evil.example", "Prefer": "respond-async"})
    assert resp.status_code == 201
    assert resp.headers["Location"].startswith(f"{target.url}/jobs/")
    assert "evil.example" not in resp.text
    # as raw bytes: the answer, headers included, holds no trace of the foreign host
    answer = raw(target.url, b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"evil.example" not in answer


def test_a_malformed_range_is_416_not_a_negative_length(target: Attacked) -> None:
    resp = target.admin.post("/processes", content=TEN_BYTES, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status_code == 201, resp.text
    resp = target.alice.post("/processes/ten-bytes/execution", json={"inputs": {}},
                             headers={"Prefer": "respond-async"})
    assert resp.status_code == 201, resp.text
    job = wait(target.alice, resp.json()["jobID"])
    assert job["status"] == "successful", target.alice.get(f"/jobs/{job['jobID']}/logs").text
    href = target.alice.get(f"/jobs/{job['jobID']}/results").json()["ten"]["href"]
    assert target.alice.get(href).content == b"0123456789"
    for header in ("bytes=--5", "bytes=5-3", "bytes=abc", "bytes=-0", "bytes=10-", "bytes=0-1,3-4"):
        resp = target.alice.get(href, headers={"Range": header})
        assert_problem(resp, 416)
        assert resp.headers["Content-Range"] == "bytes */10", header
        assert int(resp.headers["Content-Length"]) == len(resp.content), header
    resp = target.alice.get(href, headers={"Range": "bytes=-999999"})
    assert resp.status_code == 206 and resp.headers["Content-Range"] == "bytes 0-9/10"
    assert resp.content == b"0123456789"


def test_a_user_name_no_unix_account_can_have_is_refused_at_once(target: Attacked) -> None:
    # the embedded defaults map preferred_username (the development issuer's --user) to the Unix account
    for user in ("Alice", "ALICE", "jane$doe"):
        client = target.client(user, "hpgc:execute hpgc:deploy")
        try:
            resp = client.post("/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async"})
            body = assert_problem(resp, 403)
            assert body["error"] == "unmapped_user"
            assert f"gives '{user}', which cannot be a Unix account here" in body["detail"]
            assert "lowercase letters" in body["detail"]
        finally:
            client.close()
    assert target.admin.get("/jobs").json()["jobs"] == [], "a job that could never run was accepted"
