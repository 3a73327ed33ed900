"""The server process's garbage collector, tuned for latency.

Everything alive once the server has started (modules, models, templates, the store, the backends) lives as
long as the process, yet each full collection walked all of it again: 70-110 ms pauses every few seconds under
load, which were the whole tail of the request latencies (docs/performance.md). `gc.freeze()` after start-up
moves those objects out of the collector's sight; the young generation is collected less often, so that the
short-lived objects of a request die by reference counting between collections, as most do. Cycles are still
collected. Only `hpgc serve` asks for it (create_app's `server_process`), not the tests' many apps.
"""

from __future__ import annotations

import gc

from aiohttp import web

YOUNG_THRESHOLD = 20_000  # objects allocated (less freed) between young collections; CPython's default is 700


async def freeze_startup_heap(app: web.Application) -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def tune_collector(app: web.Application) -> None:
    """After every start-up hook (the cleanup contexts run first among them)."""
    app.on_startup.append(freeze_startup_heap)
