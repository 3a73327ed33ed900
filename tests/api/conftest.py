from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, fake_backend: FakeBackend
) -> TestClient:
    return await aiohttp_client(create_app(settings, backends={"local": fake_backend}))
