"""Typed keys for the services the app shares with its handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

if TYPE_CHECKING:
    from hpgc.config import Settings
    from hpgc.jobs.service import JobService
    from hpgc.net import GuardedClient
    from hpgc.packages.registry import ProcessRegistry
    from hpgc.packages.workers import DeployWorkers
    from hpgc.store import Store

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORE: web.AppKey[Store] = web.AppKey("store")
REGISTRY: web.AppKey[ProcessRegistry] = web.AppKey("registry")
JOBS: web.AppKey[JobService] = web.AppKey("jobs")
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates")
OUTBOUND: web.AppKey[GuardedClient] = web.AppKey("outbound")
DEPLOY_WORKERS: web.AppKey[DeployWorkers] = web.AppKey("deploy_workers")
