"""Process ids and image cache names (hpgc/models/names.py) and where they are enforced below the API."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpgc.backends.base import BackendError
from hpgc.backends.local.backend import LocalBackend
from hpgc.backends.local.settings import LocalBackendSettings
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.script import render
from hpgc.errors import InvalidPackage
from hpgc.models.names import ImageNameError, image_cache_name, is_process_id, normalise_reference, process_id_problem
from hpgc.models.run import Container, RunSpec
from hpgc.packages.command import container_of
from hpgc.store import Store


@pytest.mark.parametrize("value", ["echo", "BandMath", "band-ratio", "a.b_c-1", "_x", "9", "a" * 128, "a..b"])
def test_valid_process_ids(value: str) -> None:
    assert is_process_id(value) and process_id_problem(value) is None


@pytest.mark.parametrize("value", ["", ".", "..", "../../etc", "a/b", ".hidden", "-rf", "a b", "é", "a" * 129,
                                   "x\r\nSet-Cookie: a=b", "x\x00", "a%2Fb", 7, None])
def test_invalid_process_ids(value: object) -> None:
    assert not is_process_id(value)
    problem = process_id_problem(value)
    assert problem is not None and "\r" not in problem and "\n" not in problem


def test_a_refused_id_is_quoted_escaped_and_cut() -> None:
    problem = process_id_problem("x\r\nSet-Cookie: a=b" + "y" * 300)
    assert problem is not None
    assert "'x\\r\\nSet-Cookie: a=b" in problem and "y" * 100 not in problem


def test_colliding_references_get_distinct_cache_names() -> None:
    # all three were a_b_c.sif: one deployer could pull an image into the file another's process runs
    assert image_cache_name("docker://a/b_c") == "a_b_c-a780b26c0f2884f6.sif"
    assert image_cache_name("docker://a_b/c") == "a_b_c-25400f655020b94d.sif"
    assert image_cache_name("docker://a/b:c") == "a_b_c-97679ef11a12e241.sif"
    assert image_cache_name("docker://otbtf/4.1.0-cpu") == "otbtf_4.1.0-cpu-41faafe128236ad4.sif"
    # one reference, one name, however it is spelt
    assert image_cache_name("python:3.11-slim") == image_cache_name("docker://python:3.11-slim") \
        == "python_3.11-slim-140b2cc2492dfd1b.sif"
    assert image_cache_name("https://h.example/x/tool.sif") == "tool-f69141cacb2cc7fa.sif"


@pytest.mark.parametrize("ref", ["/home/bob/evil.sif", "../x", "file:///etc/passwd", "docker-archive:/tmp/x.tar",
                                 "oci-archive:/x", "docker://a b", "docker://../x", "Upper/Case", "x\ny",
                                 "ftp://h/x.sif", "docker://"])
def test_not_pullable_references(ref: str) -> None:
    with pytest.raises(ImageNameError):
        normalise_reference(ref)


def test_container_of_a_package() -> None:
    assert container_of(None, None) is None
    assert container_of(None, "docker://a/b_c") == Container(image="a_b_c-a780b26c0f2884f6.sif",
                                                             source="docker://a/b_c")
    # a bare .sif name: the site's file, read only, never pulled into
    assert container_of(None, "site.sif") == Container(image="site.sif")
    assert container_of("site.sif", None) == Container(image="site.sif")
    # the HPGC notebooks' form: the site's file where it exists, else the reference under its own name
    assert container_of("otbtf_4.1.0-cpu.sif", "docker://otbtf/4.1.0-cpu") == Container(
        image="otbtf_4.1.0-cpu-41faafe128236ad4.sif", source="docker://otbtf/4.1.0-cpu",
        site_image="otbtf_4.1.0-cpu.sif")
    assert container_of("docker://a/b:c", None).image == "a_b_c-97679ef11a12e241.sif"  # type: ignore[union-attr]


@pytest.mark.parametrize(("named", "image"), [
    (None, "/data/images/other.sif"), (None, "../x.sif"), (None, ".x.sif"), (None, "file:///etc/passwd"),
    ("a/b.sif", None), ("../b.sif", None), ("/abs/b.sif", "docker://a/b"),
    # a name of the shape hpgc pulls into: pointing at it would let a later pull change what this runs
    (None, "a_b_c-a780b26c0f2884f6.sif"), ("a_b_c-25400f655020b94d.sif", "docker://a/b_c"),
    ("docker://a/b", "docker://a/c"),
])
def test_images_a_deploy_may_not_name(named: str | None, image: str | None) -> None:
    with pytest.raises(InvalidPackage):
        container_of(named, image)


def _spec(container: Container) -> RunSpec:
    return RunSpec(job_id="j", process_id="p", kind="command", argv=["tool", "-x"], container=container)


def _fake_apptainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """An `apptainer` first on PATH: the shell commands hpgc sends to a cluster run here unchanged."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "apptainer").write_text(f"#!/bin/sh\n{body}\n")
    (folder / "apptainer").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")


def test_slurm_script_prefers_the_site_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_apptainer(tmp_path, monkeypatch, 'echo "$@"')
    cluster = ClusterSettings(host="h", known_hosts=Path("/dev/null"), user="u", work_root="/w",
                              container_runtime="apptainer", image_cache=str(tmp_path))
    text = render(_spec(Container(image="t-0123456789abcdef.sif", source="docker://t", site_image="t.sif")),
                  cluster, "/w/u/j")
    command = text.split("# --- command\n", 1)[1].split("\ncode=$?", 1)[0]
    run = lambda: subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout.split()  # noqa: E731
    assert run() == ["exec", f"{tmp_path}/t-0123456789abcdef.sif", "tool", "-x"]
    (tmp_path / "t.sif").write_text("site")
    assert run() == ["exec", f"{tmp_path}/t.sif", "tool", "-x"]


class _LocalShell:
    """Stands in for the SSH pool: runs the backend's remote command with sh on this machine."""

    def client(self, name: str, login: str | None) -> _LocalShell:
        return self

    async def run(self, command: str, timeout: float | None = None) -> SimpleNamespace:
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        return SimpleNamespace(ok=done.returncode == 0, stdout=done.stdout, stderr=done.stderr)


async def test_slurm_pull_never_replaces_a_cached_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpgc.backends.slurm.backend import SlurmBackend

    cache, calls = tmp_path / "images", tmp_path / "calls"
    cache.mkdir()
    # `apptainer -s pull --force PARTIAL SOURCE`: writes the source's name into the partial file
    _fake_apptainer(tmp_path, monkeypatch, f'echo "$@" >> {calls}; echo "$5" > "$4"')
    backend = SlurmBackend({"c": ClusterSettings(host="h", known_hosts=Path("/dev/null"), user="u", work_root="/w",
                                                 container_runtime="apptainer", image_cache=str(cache))})
    backend.pool = _LocalShell()  # type: ignore[assignment]
    image = container_of(None, "docker://a/b_c")
    assert image is not None
    await backend.ensure_image(image, None)
    await backend.ensure_image(image, None)
    assert len(calls.read_text().splitlines()) == 1
    assert (cache / image.image).read_text() == "docker://a/b_c\n"
    assert not list(cache.glob(".*partial"))
    # a file that appeared while the pull ran (another deploy of the same reference) is kept, not replaced
    other = container_of(None, "docker://a_b/c")
    assert other is not None
    (cache / other.image).write_text("first\n")
    await backend.ensure_image(other, None)
    assert (cache / other.image).read_text() == "first\n"
    # a site image: only looked for, never pulled
    with pytest.raises(BackendError):
        await backend.ensure_image(Container(image="missing.sif"), None)
    site = Container(image="t-0123456789abcdef.sif", source="docker://t", site_image="site.sif")
    (cache / "site.sif").write_text("site\n")
    await backend.ensure_image(site, None)
    assert not (cache / site.image).exists() and len(calls.read_text().splitlines()) == 1


async def test_local_backend_prefers_the_site_image(tmp_path: Path) -> None:
    runtime = tmp_path / "apptainer"
    runtime.write_text('#!/bin/sh\n[ "$1" = pull ] && echo pulled > "$2"\n')
    runtime.chmod(0o755)
    cache = tmp_path / "cache"
    backend = LocalBackend(LocalBackendSettings(container_runtime=str(runtime), image_cache=cache), tmp_path / "j")
    with pytest.raises(BackendError, match="not in the image cache"):
        await backend.ensure_image(Container(image="site.sif"), None)
    site = Container(image="t-0123456789abcdef.sif", source="docker://t", site_image="site.sif")
    await backend.ensure_image(site, None)
    assert (cache / site.image).read_text() == "pulled\n"
    assert backend._argv(_spec(site), tmp_path)[2] == str(cache / site.image)
    (cache / "site.sif").write_text("site\n")
    assert backend._argv(_spec(site), tmp_path)[2] == str(cache / "site.sif")


def test_active_jobs_counted_in_the_insert(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    row = {"owner": "alice", "status": "accepted", "process_id": "echo", "created": 1.0, "updated": 1.0}
    assert store.insert_job({**row, "id": "1"}, max_active=2)
    assert store.insert_job({**row, "id": "2"}, max_active=2)
    assert not store.insert_job({**row, "id": "3"}, max_active=2)
    assert store.insert_job({**row, "id": "4", "owner": "bob"}, max_active=2)
    assert store.insert_job({**row, "id": "5"})  # 0: no limit
    store.update_job("1", {"status": "successful"})
    assert store.count_active_jobs("alice") == 2
    plan = " ".join(str(r) for r in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM jobs WHERE owner = ? AND status IN ('accepted', 'running')",
        ["alice"]).fetchall())
    assert "jobs_owner_status" in plan
    store.close()


async def test_slurm_removes_only_the_image_it_pulled(tmp_path: Path) -> None:
    from hpgc.backends.slurm.backend import SlurmBackend
    from hpgc.models.run import Container

    cache = tmp_path / "images"
    cache.mkdir()
    for name in ("b_c-0123456789abcdef.sif", "site.sif"):
        (cache / name).write_text("image")
    backend = SlurmBackend({"c": ClusterSettings(host="h", known_hosts=Path("/dev/null"), user="u", work_root="/w",
                                                 container_runtime="apptainer", image_cache=str(cache))})
    backend.pool = _LocalShell()  # type: ignore[assignment]
    await backend.remove_image(Container(image="site.sif"), None)  # no source: the site's own, kept
    await backend.remove_image(Container(image="b_c-0123456789abcdef.sif", source="docker://a/b_c"), "c")
    assert sorted(p.name for p in cache.iterdir()) == ["site.sif"]
    with pytest.raises(BackendError, match="must be a file name"):
        await backend.remove_image(Container(image="../x.sif", source="docker://a/x"), None)
