"""The images of deployed command packages (hpgc/jobs/catalog.py): pulled where the jobs will run, removed from
there once no process uses them, never a site's own file; packages without an image pull nothing; a removal
that fails is logged and the undeploy still succeeds; the deploy counters count each action."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from hpgc.backends.base import BackendError
from hpgc.jobs import catalog as catalog_module
from hpgc.models.run import Container
from tests.api.fake_backend import FakeBackend

REPO = Path(__file__).resolve().parents[2]
BANDMATH = json.loads((REPO / "appkgs/BandMath/package.json").read_text())
PKG = {"Content-Type": "application/ogcapppkg+json"}
TOOL_IMAGE = "owner_tool_1-dba8d83154b9561a.sif"  # docker://owner/tool:1 in the cache
PULLED = "otbtf_4.1.0-cpu-41faafe128236ad4.sif"  # BandMath's docker://otbtf/4.1.0-cpu in the cache
TOOL = """cwlVersion: v1.2
class: CommandLineTool
id: wc
baseCommand: [wc, -c]
inputs:
  f: {type: File, inputBinding: {position: 1}}
stdout: count.txt
outputs:
  count: {type: File, outputBinding: {glob: count.txt}}
"""


def _package(process_id: str, image: str | None = None, cluster: str | None = None) -> dict:
    """A command package running /app/tool, in `image` (a reference, or a site's .sif) or in no container."""
    params: list[dict] = [{"name": "entry-point", "value": "/app/tool"}]
    if cluster:
        params.append({"name": "cluster", "value": cluster})
    unit: dict = {"type": "docker" if image else "SLURM", "deployment": "hpc"}
    if image:
        unit["image"] = image
    return {"processDescription": {"id": process_id, "version": "1.0.0", "inputs": {}, "outputs": {},
                                   "additionalParameters": params}, "executionUnit": unit}


def _record_images(fake: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str | None]]:
    """(action, image, cluster) of every ensure_image and remove_image call."""
    calls: list[tuple[str, str, str | None]] = []

    async def ensure(container: Container, cluster: str | None = None) -> None:
        calls.append(("pull", container.image, cluster))

    async def remove(container: Container, cluster: str | None = None) -> None:
        calls.append(("remove", container.image, cluster))

    monkeypatch.setattr(fake, "ensure_image", ensure)
    monkeypatch.setattr(fake, "remove_image", remove)
    return calls


async def _deploy(client: TestClient, package: dict) -> dict:
    resp = await client.post("/processes", json=package, headers=PKG)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_a_site_image_is_never_removed(client: TestClient, fake_backend: FakeBackend) -> None:
    assert "hpgc:status" not in await _deploy(client, _package("site", image="otbtf.sif"))  # ready
    assert fake_backend.pulled == ["otbtf.sif"]  # checked to be there (the fake records every ensure_image)
    assert (await client.delete("/processes/site")).status == 204
    assert fake_backend.removed_images == []


async def test_a_package_without_an_image_pulls_and_removes_nothing(
        client: TestClient, fake_backend: FakeBackend) -> None:
    summary = await _deploy(client, _package("bare"))
    assert "hpgc:status" not in summary  # ready at once: nothing to pull
    assert fake_backend.pulled == []
    assert (await client.delete("/processes/bare")).status == 204
    assert fake_backend.removed_images == []


async def test_a_cwl_process_is_undeployed_without_an_image(client: TestClient, fake_backend: FakeBackend) -> None:
    resp = await client.post("/processes", data=TOOL, headers={"Content-Type": "application/cwl+yaml"})
    assert resp.status == 201, await resp.text()
    assert (await client.delete("/processes/wc")).status == 204
    assert fake_backend.pulled == [] and fake_backend.removed_images == []


async def test_the_image_is_pulled_and_removed_on_the_packages_cluster(
        client: TestClient, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_backend.cluster_names = ["small", "gpu"]
    calls = _record_images(fake_backend, monkeypatch)
    await _deploy(client, _package("tool", image="docker://owner/tool:1", cluster="gpu"))
    assert (await client.delete("/processes/tool")).status == 204
    assert calls == [("pull", TOOL_IMAGE, "gpu"), ("remove", TOOL_IMAGE, "gpu")]


async def test_an_image_used_on_another_cluster_still_goes_from_this_one(
        client: TestClient, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_backend.cluster_names = ["small", "gpu"]
    calls = _record_images(fake_backend, monkeypatch)
    await _deploy(client, _package("on-gpu", image="docker://owner/tool:1", cluster="gpu"))
    await _deploy(client, _package("on-small", image="docker://owner/tool:1", cluster="small"))
    assert (await client.delete("/processes/on-gpu")).status == 204
    assert calls == [("pull", TOOL_IMAGE, "gpu"), ("pull", TOOL_IMAGE, "small"), ("remove", TOOL_IMAGE, "gpu")]


@pytest.mark.parametrize("error", [BackendError("permission denied"), OSError("permission denied")])
async def test_an_image_that_cannot_be_removed_is_logged(
        client: TestClient, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, error: Exception) -> None:
    await _deploy(client, BANDMATH)

    async def refuse(container: Container, cluster: str | None = None) -> None:
        raise error

    monkeypatch.setattr(fake_backend, "remove_image", refuse)
    with caplog.at_level(logging.WARNING, logger="hpgc"):
        assert (await client.delete("/processes/BandMath")).status == 204
    assert (await client.get("/processes/BandMath")).status == 404
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"the image {PULLED} of process BandMath could not be removed: permission denied"]


def _deploys(action: str) -> float:
    return REGISTRY.get_sample_value("hpgc_deploys_total", {"action": action}) or 0.0


async def test_each_action_is_counted(client: TestClient) -> None:
    before = {a: _deploys(a) for a in ("deploy", "replace", "undeploy")}
    await _deploy(client, BANDMATH)
    assert (await client.put("/processes/BandMath", json=BANDMATH, headers=PKG)).status == 204
    assert (await client.put("/processes/BandMath", json=BANDMATH, headers=PKG)).status == 204
    assert (await client.delete("/processes/BandMath")).status == 204
    after = {a: _deploys(a) - before[a] for a in ("deploy", "replace", "undeploy")}
    assert after == {"deploy": 1.0, "replace": 2.0, "undeploy": 1.0}


def _pulls(result: str) -> float:
    return REGISTRY.get_sample_value("hpgc_image_pulls_total", {"backend": "local", "result": result}) or 0.0


def _pull_seconds() -> float:
    return REGISTRY.get_sample_value("hpgc_image_pull_seconds_sum", {"backend": "local"}) or 0.0


def _pull_durations() -> float:
    return REGISTRY.get_sample_value("hpgc_image_pull_seconds_count", {"backend": "local"}) or 0.0


async def test_each_pull_is_counted_by_result_and_timed(
        client: TestClient, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 102.5, 200.0, 200.25, 300.0, 301.0])  # each pull's start and end, as monotonic() tells
    monkeypatch.setattr(catalog_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    before = (_pulls("ok"), _pulls("failed"), _pull_durations(), _pull_seconds())
    await _deploy(client, BANDMATH)
    await _deploy(client, _package("tool", image="docker://owner/tool:1"))
    fake_backend.pull_error = "manifest unknown"
    assert "manifest unknown" in (await _deploy(client, _package("broken", image="docker://owner/tool:2")))[
        "hpgc:status"]
    assert (_pulls("ok") - before[0], _pulls("failed") - before[1], _pull_durations() - before[2]) == (2, 1, 3)
    assert _pull_seconds() - before[3] == pytest.approx(3.75, abs=1e-9)  # 2.5 + 0.25 + 1: failed pulls are timed too
