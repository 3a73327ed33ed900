"""What every part of the job service shares: the store, the registry, the backends, the background tasks.

The service is one object (hpgc/jobs/service.py) made of parts, one module each: submission, the state
machine (lifecycle), results, and the process catalogue (deploy, images).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from hpgc.backends.base import Backend
from hpgc.jobs.batching import GroupCommit
from hpgc.jobs.limits import LimitSettings
from hpgc.jobs.upload_settings import UploadSettings
from hpgc.models.run import BackendStatus
from hpgc.net import GuardedClient
from hpgc.packages.registry import ProcessRegistry
from hpgc.storage import ObjectStores
from hpgc.store import Store

log = logging.getLogger("hpgc.jobs.service")
T = TypeVar("T")


class Callbacks(Protocol):
    """What the service asks of the notifier (hpgc/jobs/callbacks/notifier.py); None: no callbacks at all."""

    async def check(self, subscriber: dict[str, str]) -> None:
        """Refuse (InvalidRequest) subscriber URLs this server will not post to."""

    async def rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        """Outbox rows for the change from `before` to `after`, stored in the same transaction."""
        return []


class ServiceParts:
    def __init__(
        self, store: Store, registry: ProcessRegistry, backends: dict[str, Backend], default_backend: str,
        max_inputs: int = 10000, limits: LimitSettings | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or LimitSettings(active_jobs_per_user=0, processes_per_user=0)  # None: no limits
        self.registry = registry
        self.backends = backends
        self.default_backend = default_backend
        self.max_inputs = max_inputs
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # called on every status change
        self.callbacks: Callbacks | None = None
        self.outbound: GuardedClient | None = None  # href inputs are checked with it at submission
        self.on_submitted: Callable[[str], None] = lambda backend: None
        self.upload_settings = UploadSettings()  # the app sets the configured ones (POST /files, hpgc/jobs/uploads.py)
        self.storage: ObjectStores | None = None  # s3:// inputs and destinations (hpgc/jobs/delivery.py)
        self._delivering: set[str] = set()  # jobs whose outputs are being delivered
        self._delivered: dict[str, dict[str, Any]] = {}  # job id → output id → where it went, until applied
        # jobs submitted together (one SSH command) come back together: their ids are one transaction
        self._submitted = GroupCommit[tuple[str, dict[str, Any], str], bool](
            lambda items: self.db(self.store.update_jobs, items), "record-submitted")

    async def deliver_first(self, job_id: str, current: dict[str, Any], st: BackendStatus) -> bool:
        """Whether a job the backend reports successful must first have its outputs delivered (then it is
        applied again when they are: hpgc/jobs/delivery.py)."""
        return False

    def with_delivered(self, job_id: str, results: dict[str, Any]) -> dict[str, Any]:
        """The results manifest with where its files were delivered (hpgc/jobs/delivery.py)."""
        return results

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Store (and registry) work, in the store's one worker thread."""
        return await self.store.call(fn, *args)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
