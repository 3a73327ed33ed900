from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from hpgc.packages.workers import DeploySettings
from tests.fake_issuer import FakeIssuer
from tests.s3_server import S3Server, moto_server

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _umask_restored() -> object:
    """`hpgc.cli.main` run in process (serve, purge, check, token) makes the process's umask 077 on purpose;
    a test must not hand that on to the tests after it (the cluster's `up` inherited it once)."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers",
                            "cluster_lifecycle: restarts the Slurm test cluster; runs after every other test")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a temporary data dir, without auth (auth has its own tests)."""
    return Settings(data_dir=tmp_path / "data", appkgs_dir=REPO / "appkgs", auth=AuthSettings(enabled=False),
                    poll_interval_s=0.2, deploy=DeploySettings(start_with_server=False))


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A real S3 HTTP endpoint on loopback (moto's server), one per test session: each test its own buckets."""
    with moto_server() as server:
        yield server


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FakeIssuer:
    """A stand-in OpenID provider (discovery, JWKS, introspection) on 127.0.0.1."""
    issuer = FakeIssuer()
    server = await aiohttp_server(issuer.app())
    issuer.serve_at(str(server.make_url("")))
    return issuer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two orders, both stable (the order within each group is kept):
    - under mutmut (bench/mutation.py) unit tests run first: a mutant is dead at its first failing test (-x), and
      the unit tests that pin a module's rules take a fraction of a second where the API tests take seconds;
    - a test that restarts the test cluster runs last: every other Slurm test needs the cluster as it was (its
      keys, its jobs), and nothing after it may find it down or new."""
    if os.environ.get("MUTANT_UNDER_TEST"):
        items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/unit/") else 1)
    items.sort(key=lambda item: item.get_closest_marker("cluster_lifecycle") is not None)
