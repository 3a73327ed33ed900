"""`hpgc serve`'s app freezes what start-up left alive and collects the young generation less often
(hpgc/api/heap.py): the full collections over that heap were the tail of the request latencies."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.heap import YOUNG_THRESHOLD
from hpgc.config import Settings
from tests.api.fake_backend import FakeBackend


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_the_server_process_freezes_its_startup_heap(
    collector: None, aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings
) -> None:
    gc.unfreeze()
    client = await aiohttp_client(create_app(settings, backends={"local": FakeBackend()}, server_process=True))
    assert gc.get_freeze_count() > 10_000  # modules, models, the store, the backends: all frozen
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert (await client.get("/jobs")).status == 200  # and it answers as before
    gc.collect()  # cycles are still collected
    assert gc.isenabled()


async def test_other_apps_leave_the_collector_alone(
    collector: None, aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings
) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    await aiohttp_client(create_app(settings, backends={"local": FakeBackend()}))
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds
