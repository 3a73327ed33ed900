"""What the operations team asks of the service: the store's numbers for /metrics and the checks of
/health/ready (the database, each backend's clusters, the callback outbox). Each answers within its time
limit whatever is stuck: a check that does not answer in time has failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from hpgc.jobs.metrics import StoreCollector
from hpgc.jobs.parts import ServiceParts, log


class Operations(ServiceParts):
    async def collect_store_metrics(self, collector: StoreCollector, outbox_stuck_s: float) -> None:
        """Jobs by state and the outbox, read now (one GROUP BY and one indexed count in the worker thread)."""
        now = time.time()

        def read() -> tuple[list[tuple[str, str, str, str, int]], dict[str, int | float | None]]:
            return self.store.job_counts(), dict(self.store.outbox_stats(now - outbox_stuck_s))

        counts, outbox = await self.db(read)
        collector.update(counts, outbox, now)  # type: ignore[arg-type]

    async def readiness(self, timeout_s: float, outbox_stuck_s: float) -> dict[str, bool]:
        """Check name → passed: `database`, `callbacks` (no callback overdue by more than `outbox_stuck_s`)
        and each backend's own checks (backend.health), all run at once, each within `timeout_s`."""

        async def database() -> dict[str, bool]:
            overdue = (await self.db(self.store.outbox_stats, time.time() - outbox_stuck_s))["overdue"]
            return {"database": True, "callbacks": overdue == 0}

        async def bounded(name: str, check: Awaitable[dict[str, bool]]) -> dict[str, bool]:
            try:
                async with asyncio.timeout(timeout_s):
                    return await check
            except Exception as exc:  # a timeout or an error: failed, and the log (not the body) says why
                log.warning("health check %s failed: %s", name, exc or type(exc).__name__)
                return {name: False}

        checks = [bounded("database", database())]
        checks += [bounded(f"backend:{name}", b.health(timeout_s)) for name, b in self.backends.items()]
        out: dict[str, bool] = {}
        for result in await asyncio.gather(*checks):
            out.update(result)
        if not out.get("database"):
            out.setdefault("callbacks", False)  # unknown without the database
        return out
