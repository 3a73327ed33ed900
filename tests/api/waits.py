"""Waiting in API tests on the event itself, never on time: a job's status change as the job service
announces it to its listeners, with a deadline that only turns a hang into a failure."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from hpgc.api.keys import JOBS

FINAL = ("successful", "failed", "dismissed")


async def job_reaches(client: TestClient, job_id: str, *statuses: str, timeout: float = 10) -> dict[str, Any]:
    """The job's statusInfo (GET /jobs/{id}) once its status is one of `statuses` (default: a final one)."""
    wanted = statuses or FINAL
    service = client.app[JOBS]
    reached = asyncio.Event()

    def listen(row: dict[str, Any]) -> None:
        if row.get("id") == job_id and row.get("status") in wanted:
            reached.set()

    service.listeners.append(listen)  # before the first look: a change in between is not missed
    try:
        doc = await (await client.get(f"/jobs/{job_id}")).json()
        if doc.get("status") not in wanted:
            try:
                await asyncio.wait_for(reached.wait(), timeout)
            except TimeoutError:
                raise AssertionError(f"job {job_id} never reached {wanted}: {doc}") from None
            doc = await (await client.get(f"/jobs/{job_id}")).json()
        assert doc["status"] in wanted, doc
        return doc
    finally:
        service.listeners.remove(listen)
