"""Fixtures for tests against the real Slurm test cluster (slurm-test-cluster/, started with its `up`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncssh
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hpgc.api.app import create_app
from hpgc.auth.settings import AuthSettings
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.config import Settings
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.net import OutboundSettings

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = REPO / "slurm-test-cluster"
CLUSTER_JSON = CLUSTER_DIR / ".state" / "cluster.json"


@pytest.fixture(scope="session")
def cluster() -> dict:
    """The running test cluster's description (host, port, users -> key paths, known_hosts, ...)."""
    if not CLUSTER_JSON.exists():
        msg = f"no test cluster: {CLUSTER_JSON} is missing (run `sudo slurm-test-cluster/up`)"
        if os.environ.get("HPGC_REQUIRE_CLUSTER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return json.loads(CLUSTER_JSON.read_text())


def connect(cluster: dict, user: str = "alice", **kwargs) -> asyncssh.connection._ConnectionContextManager:
    """An asyncssh connection to the login node as `user`, verifying its host key.

    Use as `async with connect(cluster) as conn: await conn.run(...)`.
    """
    options = dict(
        port=cluster["port"],
        username=user,
        client_keys=[cluster["users"][user]],
        known_hosts=cluster["known_hosts"],
        agent_path=None,  # only the cluster key, whatever the caller's environment has
        config=None,  # and no ~/.ssh/config
        connect_timeout=20,
    )
    options.update(kwargs)
    return asyncssh.connect(cluster["host"], **options)


async def ssh_run_async(cluster: dict, command: str, user: str = "alice", timeout: float = 120,
                        check: bool = False) -> asyncssh.SSHCompletedProcess:
    """Run one shell command on the login node over a fresh connection."""
    async with connect(cluster, user) as conn:
        return await conn.run(command, check=check, timeout=timeout)


def ssh_run(cluster: dict, command: str, user: str = "alice", timeout: float = 120,
            check: bool = False) -> asyncssh.SSHCompletedProcess:
    """Blocking form of ssh_run_async, for synchronous tests."""
    return asyncio.run(ssh_run_async(cluster, command, user=user, timeout=timeout, check=check))


@pytest.fixture
def ssh(cluster):
    """`ssh("cmd", user="alice", check=True)` -> asyncssh.SSHCompletedProcess (stdout, stderr, exit_status)."""

    def run(command: str, user: str = "alice", timeout: float = 120, check: bool = True):
        return ssh_run(cluster, command, user=user, timeout=timeout, check=check)

    return run


@pytest.fixture
def ssh_connect(cluster):
    """`async with ssh_connect("alice") as conn:` -> an asyncssh connection to the login node."""

    def make(user: str = "alice", **kwargs):
        return connect(cluster, user, **kwargs)

    return make


@pytest.fixture
async def api(cluster: dict, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    test_cluster = ClusterSettings(
        host=cluster["host"], port=cluster["port"], known_hosts=cluster["known_hosts"], user="alice",
        key_file=cluster["users"]["alice"], work_root=cluster["work_root"], image_cache=cluster["image_cache"],
        container_runtime=cluster.get("container_runtime", "apptainer"), partition=cluster.get("partition"),
        account=cluster.get("account"), poll_min_s=0.5, poll_max_s=2,
    )
    settings = Settings(data_dir=tmp_path / "data", auth=AuthSettings(enabled=False), default_backend="slurm",
                        clusters={"test": test_cluster},
                        callbacks=CallbackSettings(secret="s3cret"),
                        outbound=OutboundSettings(allowed_networks=["127.0.0.0/8"]))
    return await aiohttp_client(create_app(settings))


@contextlib.asynccontextmanager
async def files_served(files: dict[str, bytes], content_type: str = "image/tiff") -> AsyncIterator[str]:
    """An HTTP server on 127.0.0.1 serving `files` (path → bytes); yields its base URL."""
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=files[request.path], content_type=content_type)

    app = web.Application()
    for path in files:
        app.router.add_get(path, serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
