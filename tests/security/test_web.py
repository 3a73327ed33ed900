"""Attacks on the web interface against the real server process: a session cookie used on another user's job,
cross-site request forgery (no token, a wrong one, another origin), a session id the server never issued, and
the development issuer's sign-in page reached through a proxy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.security.conftest import Attacked, attacked_server

ECHO = {"inputs": {"stringInput": "mine"}}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attacked]:
    """One server for the module: the attacks here change nothing another one relies on."""
    yield from attacked_server(tmp_path_factory.mktemp("web"))


def browser(target: Attacked, user: str) -> tuple[httpx.Client, str]:
    """A cookie-keeping client signed in as `user` through the pages, and its CSRF token."""
    web = httpx.Client(base_url=target.url, timeout=60, headers={"Accept": "text/html"})
    start = web.get("/ui/signin", params={"next": "/jobs"})
    assert start.status_code == 303
    params = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["Location"]).query).items()}
    done = web.post("/auth/authorize", data={**params, "user": user, "perm": ["execute", "deploy"]})
    assert done.status_code == 303, done.text
    landed = web.get(done.headers["Location"])
    assert landed.status_code == 303 and "hpgc_session" in web.cookies
    page = web.get("/jobs?f=html")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None
    return web, csrf.group(1)


def test_a_session_never_reaches_another_users_job(target: Attacked) -> None:
    job = target.alice.post("/processes/echo/execution", json=ECHO, headers={"Prefer": "respond-async"}).json()
    job_id = job["jobID"]
    bob, csrf = browser(target, "bob")
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}?f=html", f"/jobs/{job_id}/inputs", f"/jobs/{job_id}/logs",
                 f"/jobs/{job_id}/results", f"/ui/events?job={job_id}", f"/ui/processes/echo/run?from={job_id}"):
        assert bob.get(path).status_code == 404, path
    assert bob.post(f"/ui/jobs/{job_id}/dismiss", data={"csrf": csrf}).status_code == 404
    assert bob.delete(f"/jobs/{job_id}", headers={"X-CSRF-Token": csrf}).status_code == 404
    assert job_id not in bob.get("/jobs?f=json").text
    assert target.alice.get(f"/jobs/{job_id}").json()["status"] != "dismissed"


def test_forged_posts_are_refused(target: Attacked) -> None:
    alice, csrf = browser(target, "alice")
    cwl = "cwlVersion: v1.2\nclass: CommandLineTool\nid: forged\nbaseCommand: 'true'\ninputs: {}\noutputs: []\n"
    attempts = [({"document": cwl}, {}),  # no token
                ({"document": cwl, "csrf": "guess"}, {}),  # a wrong token
                ({"document": cwl, "csrf": csrf}, {"Origin": "https://evil.example"}),  # another origin
                ({"document": cwl, "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"})]
    for form, headers in attempts:
        resp = alice.post("/ui/deploy", data=form, headers=headers)
        assert resp.status_code == 403 and resp.json()["error"] == "csrf", (form, headers)
    json_forgery = alice.post("/processes/echo/execution", json=ECHO, headers={"Origin": "https://evil.example"})
    assert json_forgery.status_code == 403
    assert target.alice.get("/processes/forged").status_code == 404
    assert alice.post("/ui/signout", data={}).status_code == 403  # not even a forged sign-out


def test_a_session_id_the_server_never_gave_opens_nothing(target: Attacked) -> None:
    forged = httpx.Client(base_url=target.url, timeout=60, cookies={"hpgc_session": "A" * 43})
    assert forged.get("/jobs").status_code == 401
    page = forged.get("/jobs", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["Location"].startswith("/ui/signin")


def test_the_dev_sign_in_page_refuses_proxied_requests(target: Attacked) -> None:
    web = httpx.Client(base_url=target.url, timeout=60)
    location = web.get("/ui/signin").headers["Location"]
    resp = web.get(location, headers={"X-Forwarded-For": "198.51.100.7"})
    assert resp.status_code == 403 and "this machine" in resp.text
