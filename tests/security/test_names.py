"""Names and limits, attacked through the real server: process ids that are paths or headers, image cache
files shared between deployers, one user flooding the server with jobs or processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.conftest import Attacked, attacked_server

PKG = {"Content-Type": "application/ogcapppkg+json"}
BAD_IDS = ["../../etc", "a/b", "x\r\nSet-Cookie: a=b", "a" * 200]


def package(process_id: str, image: str | None = None, entry: str = "/bin/true") -> bytes:
    unit: dict[str, Any] = {"type": "SLURM", **({"image": image} if image else {})}
    # json.dumps turns CR/LF into \r\n escapes: the server decodes them into real control characters
    return json.dumps({"processDescription": {
        "id": process_id, "version": "1.0.0", "jobControlOptions": ["async-execute"], "inputs": {}, "outputs": {},
        "additionalParameters": [{"name": "entry-point", "value": entry}]}, "executionUnit": unit}).encode()


def deploy(target: Attacked, client: httpx.Client, body: bytes) -> httpx.Response:
    """Deploy as `client`; where deploying is for administrators only (local backend), as the admin."""
    resp = client.post("/processes", content=body, headers=PKG)
    if resp.status_code == 403 and client is not target.admin:
        resp = target.admin.post("/processes", content=body, headers=PKG)
    return resp


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    return resp.json()


def ids(client: httpx.Client) -> list[str]:
    return [p["id"] for p in client.get("/processes").json()["processes"]]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_process_ids_that_are_paths_or_headers_are_refused(target: Attacked, bad: str) -> None:
    for client in (target.alice, target.admin):
        resp = deploy(target, client, package(bad))
        body = assert_problem(resp, 400)
        assert repr(bad[:60]) in body["detail"]  # named, escaped
        assert "Location" not in resp.headers and "set-cookie" not in resp.headers
        # the same id as ?w= (URL-encoded) and as a CWL document's id
        resp = client.post("/processes", params={"w": bad}, headers={"Content-Type": "application/cwl+yaml"},
                           content=f"cwlVersion: v1.2\nclass: CommandLineTool\nid: {json.dumps(bad)}\n"
                                   "baseCommand: [echo]\ninputs: []\noutputs: []\n".encode())
        assert resp.status_code in (400, 403), resp.text
        assert resp.status_code == 400 or client is not target.admin
    assert ids(target.admin) == ["echo", "sleep"]
    assert target.admin.get("/processes/a").status_code == 404


def test_a_different_bad_id_in_a_replace_is_refused(target: Attacked) -> None:
    assert deploy(target, target.alice, package("mine")).status_code == 201
    for bad in BAD_IDS:
        for client in (target.alice, target.admin):
            resp = client.put("/processes/mine", content=package(bad), headers=PKG)
            assert resp.status_code in (400, 403), resp.text
            assert resp.status_code == 400 or client is not target.admin
    assert ids(target.admin) == ["echo", "mine", "sleep"]


@pytest.fixture
def with_images(tmp_path: Path) -> Iterator[Attacked]:
    """The server with a container runtime that pulls by writing the reference into the image file and runs
    an image by printing it: what a job ran is in its stdout."""
    runtime = tmp_path / "apptainer"
    runtime.write_text('#!/bin/sh\nif [ "$1" = pull ]; then echo "$3" > "$2"; else cat "$2"; fi\n')
    runtime.chmod(0o755)
    cache = tmp_path / "images"
    cache.mkdir()
    (cache / "site.sif").write_text("the site's image\n")
    yield from attacked_server(tmp_path, env={"HPGC_LOCAL__CONTAINER_RUNTIME": str(runtime),
                                              "HPGC_LOCAL__IMAGE_CACHE": str(cache)})


def ran(client: httpx.Client, process_id: str) -> str:
    job = client.post(f"/processes/{process_id}/execution", json={"inputs": {}},
                      headers={"Prefer": "respond-async"})
    assert job.status_code == 201, job.text
    url = job.headers["Location"].split("/jobs/", 1)[1]
    deadline = time.monotonic() + 60
    while client.get(f"/jobs/{url}").json()["status"] in ("accepted", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return str(client.get(f"/jobs/{url}/logs").json()["stdout"])


def test_one_deployer_cannot_poison_the_image_another_runs(with_images: Attacked, tmp_path: Path) -> None:
    target = with_images
    # the attacker's reference had the victim's cache name (a_b_c.sif): pulled first, it was what the victim ran
    assert deploy(target, target.alice, package("attack", "docker://a_b/c")).status_code == 201
    assert deploy(target, target.bob, package("victim", "docker://a/b_c")).status_code == 201
    assert deploy(target, target.bob, package("victim2", "docker://a/b:c")).status_code == 201
    assert ran(target.bob, "victim").strip() == "docker://a/b_c"
    assert ran(target.bob, "victim2").strip() == "docker://a/b:c"
    assert ran(target.alice, "attack").strip() == "docker://a_b/c"
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "a_b_c-25400f655020b94d.sif", "a_b_c-97679ef11a12e241.sif", "a_b_c-a780b26c0f2884f6.sif", "site.sif"]
    # nor point a process at, or pull into, a file of the cache by its name or path
    for image, entry in [("/etc/passwd", "/bin/true"), ("../x.sif", "/bin/true"),
                         ("a_b_c-a780b26c0f2884f6.sif", "/bin/true"),
                         ("docker://evil/x", "singularity exec a_b_c-a780b26c0f2884f6.sif /bin/true"),
                         ("docker-archive:/tmp/x.tar", "/bin/true"), ("file:///etc/passwd", "/bin/true")]:
        assert_problem(deploy(target, target.alice, package("attack2", image, entry)), 400)
    # a site image can be named (and is only ever read); the evil reference goes to its own file
    assert deploy(target, target.alice, package("site", "docker://evil/x", "singularity exec site.sif x")
                  ).status_code == 201
    assert ran(target.alice, "site").strip() == "the site's image"
    assert (tmp_path / "images" / "site.sif").read_text() == "the site's image\n"
    assert ran(target.bob, "victim").strip() == "docker://a/b_c"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Attacked]:
    yield from attacked_server(tmp_path, env={"HPGC_LIMITS__ACTIVE_JOBS_PER_USER": "5",
                                              "HPGC_LIMITS__PROCESSES_PER_USER": "3",
                                              "HPGC_LIMITS__RETRY_AFTER_S": "11"})


def test_one_user_cannot_flood_the_server_with_jobs(limited: Attacked) -> None:
    def sleep(client: httpx.Client) -> httpx.Response:
        return client.post("/processes/sleep/execution", json={"inputs": {"seconds": 60}},
                           headers={"Prefer": "respond-async"})

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: sleep(limited.alice), range(20)))
    accepted = [r for r in answers if r.status_code == 201]
    assert len(accepted) == 5, [r.status_code for r in answers]
    for resp in answers:
        if resp.status_code != 201:
            body = assert_problem(resp, 429)
            assert resp.headers["Retry-After"] == "11"
            assert body["limit"] == "active_jobs_per_user" and body["setting"] == "limits.active_jobs_per_user"
    listed = limited.alice.get("/jobs", params={"limit": 100}).json()["jobs"]
    assert len(listed) == 5
    other = sleep(limited.bob)  # another user is not affected
    assert other.status_code == 201, other.text
    for resp in [*accepted, other]:
        job = resp.json()["jobID"]
        (limited.bob if resp is other else limited.alice).delete(f"/jobs/{job}")


def test_one_user_cannot_deploy_without_end(limited: Attacked) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: deploy(limited, limited.alice, package(f"p{i}")), range(8)))
    assert sorted(r.status_code for r in answers) == [201] * 3 + [429] * 5, [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["Retry-After"] == "11"
    assert assert_problem(refused, 429)["setting"] == "limits.processes_per_user"
    assert len([p for p in ids(limited.admin) if p.startswith("p")]) == 3
    # the limit is per owner: another one still deploys (bob, or the admin if only admins may deploy here)
    mine = limited.bob.post("/processes", content=package("bobs"), headers=PKG)
    if mine.status_code == 403:
        mine = deploy(limited, limited.alice, package("more"))
        assert mine.status_code == 429  # the admin deployed the three above: its own limit is what stops it
    else:
        assert mine.status_code == 201, mine.text
