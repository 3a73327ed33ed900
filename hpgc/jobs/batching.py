"""Group commit: what arrives while one write runs goes together in the next write. Jobs submitted in one
SSH command come back together and become one transaction; a thousand callback deliveries that finish
together are a few commits, not a thousand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Result]]], name: str) -> None:
        self._write = write  # one call per batch; returns a result per item, in order
        self._name = name
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def writer(self) -> asyncio.Task[None] | None:
        """The task writing now, if any (to cancel it when its owner stops)."""
        return self._writer

    async def add(self, item: Item) -> Result:
        """The item's result once its batch is written; the write's exception if it failed. A caller that
        stops waiting does not stop the write."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name=self._name)
        return await asyncio.shield(done)

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for (_, done), result in zip(batch, results, strict=True):
                        if not done.done():
                            done.set_result(result)
        finally:
            self._writer = None
