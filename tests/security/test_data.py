"""Data paths against the real server process (auth on, the local backend): `file:///` inputs only under
`local.data_roots`, after every symlink, never the server's own files or another user's upload, whatever the
spelling (`..`, percent-encoding, a host, shell syntax); uploads that are not yours do not exist."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import Attacked, attacked_server
from tests.security.test_net import _deploy_catfile


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-paths")


@pytest.fixture(scope="module")
def shared(base: Path) -> Path:
    root = base / "shared"
    root.mkdir()
    (root / "scene.txt").write_text("shared scene\n")
    (base / "secret.txt").write_text("outside the shared folder\n")
    os.symlink(base / "secret.txt", root / "link-out.txt")
    os.symlink(root / "scene.txt", root / "link-in.txt")
    return root


@pytest.fixture(scope="module")
def server(base: Path, shared: Path) -> Iterator[Attacked]:
    """One server for the module (each test's requests stand alone): catfile deployed by the administrator."""
    for srv in attacked_server(base, {"HPGC_LOCAL__DATA_ROOTS": f'["{shared}"]'}):
        _deploy_catfile(srv)
        yield srv


def run(client: httpx.Client, href: str) -> httpx.Response:
    return client.post("/processes/catfile/execution", json={"inputs": {"f": {"href": href}}})


def test_a_shared_file_runs_in_place(server: Attacked, shared: Path) -> None:
    resp = run(server.alice, f"file://{shared}/scene.txt")
    assert resp.status_code == 200 and resp.text == "shared scene\n", resp.text
    resp = run(server.alice, f"file://{shared}/link-in.txt")  # a link that stays inside is fine
    assert resp.status_code == 200 and resp.text == "shared scene\n", resp.text


def test_paths_outside_the_roots_are_refused(server: Attacked, shared: Path, base: Path) -> None:
    data = server.server.data_dir
    refused = {
        "file:///etc/passwd": 403,
        f"file://{data}/hpgc.sqlite": 403,  # the server's own database
        f"file://{shared}/link-out.txt": 403,  # a symlink inside a root to a file outside it
        f"file://{shared}/../secret.txt": 400,
        f"file://{shared}/%2e%2e/secret.txt": 400,  # '..' percent-encoded
        f"file://{shared}/./scene.txt": 400,
        f"file://{shared}//scene.txt": 400,
        f"file://evil.example{shared}/scene.txt": 400,
        f"file://{shared}/scene.txt%0a": 400,
        f"file://{shared}/$(touch {base}/pwned)": 403,
        f"file://{shared}/nope; touch {base}/pwned": 403,
        f"file://{shared}/scene.txt?x=1": 400,
        "file:relative/path": 400,
        f"file://{shared}": 403,  # a folder
    }
    jobs_before = len(server.alice.get("/jobs").json()["jobs"])
    for href, status in refused.items():
        resp = run(server.alice, href)
        assert resp.status_code == status, (href, resp.text)
        body = resp.json()
        assert "outside the shared folder" not in resp.text and "SQLite" not in resp.text
        assert body["detail"].startswith("input 'f'"), body
    assert not (base / "pwned").exists()
    assert len(server.alice.get("/jobs").json()["jobs"]) == jobs_before  # nothing ran


def test_uploads_of_others_do_not_exist(server: Attacked) -> None:
    doc = server.alice.post("/files", content=b"alice's data\n", headers={"Content-Type": "text/plain"}).json()
    for path in (f"/files/{doc['id']}", "/files/..%2f..%2fhpgc.sqlite", "/files/%00"):
        assert server.bob.get(path).status_code == 404
        assert server.bob.delete(path).status_code == 404
    resp = run(server.bob, doc["href"])
    assert resp.status_code == 400 and "alice" not in resp.text
    assert run(server.alice, doc["href"]).text == "alice's data\n"
    assert server.admin.get(f"/files/{doc['id']}").status_code == 404  # files are their owner's only
