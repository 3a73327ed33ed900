"""The app factory: settings in, a ready aiohttp application out (services wired through web.AppKey)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import jinja2
from aiohttp import web

from hpgc.api import (
    callbacks,
    cors,
    deploy,
    files,
    health,
    job_inputs,
    jobs,
    landing,
    metrics,
    processes,
    request_id,
    tasks,
)
from hpgc.api.bearer import auth_middleware, setup_auth
from hpgc.api.heap import tune_collector
from hpgc.api.hosts import host_middleware
from hpgc.api.keys import DEPLOY_WORKERS, JOBS, OUTBOUND, REGISTRY, SETTINGS, STORE, TEMPLATES
from hpgc.api.links import openapi_links, setup_links
from hpgc.api.metrics import metrics_middleware, setup_metrics
from hpgc.api.openapi import OPENAPI_EXTENSIONS
from hpgc.api.problems import body_limit_middleware, problem_middleware
from hpgc.api.request_id import request_id_middleware
from hpgc.api.ui.events import setup_events
from hpgc.api.ui.pages import setup_pages
from hpgc.api.ui.sessions import ui_forms_middleware
from hpgc.api.ui.signin import csrf_field, setup_signin
from hpgc.backends.base import Backend
from hpgc.backends.local.backend import LocalBackend
from hpgc.config import Settings
from hpgc.datadir import secure_data_dir
from hpgc.jobs.callbacks.notifier import Notifier
from hpgc.jobs.monitor import Monitor
from hpgc.jobs.retention import RetentionSweeper
from hpgc.jobs.service import JobService
from hpgc.jobs.uploads import sweep_uploads
from hpgc.net import GuardedClient
from hpgc.packages.registry import ProcessRegistry
from hpgc.packages.workers import DeployWorkers
from hpgc.storage import ObjectStores
from hpgc.store import Store

log = logging.getLogger(__name__)
MONITORS: web.AppKey[dict[str, Monitor]] = web.AppKey("monitors")


def default_backends(settings: Settings, outbound: GuardedClient | None = None,
                     storage: ObjectStores | None = None) -> dict[str, Backend]:
    backends: dict[str, Backend] = {"local": LocalBackend(settings.local, settings.data_dir / "jobs", outbound,
                                                          poll_max_s=settings.poll_interval_s, storage=storage)}
    if settings.clusters:
        from hpgc.backends.slurm.backend import SlurmBackend

        backends["slurm"] = SlurmBackend(settings.clusters, outbound, storage)
    return backends


def create_app(settings: Settings, backends: dict[str, Backend] | None = None,
               server_process: bool = False) -> web.Application:
    """The application; `server_process` when it is the process's one app (`hpgc serve`): its garbage
    collector is then tuned for latency (hpgc/api/heap.py)."""
    app = web.Application(
        middlewares=[request_id_middleware, metrics_middleware, problem_middleware, host_middleware,
                     cors.cors_middleware, body_limit_middleware, ui_forms_middleware, auth_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.PackageLoader("hpgc.api", "templates"), autoescape=True, trim_blocks=True,
        lstrip_blocks=True,
    )
    app[TEMPLATES].globals.update(session_of=lambda request: None, csrf_field=csrf_field,
                                  signin_offered=lambda request: False)  # signed-in pages: hpgc/api/ui/signin.py
    app.add_routes(landing.routes)
    app.add_routes(processes.routes)
    app.add_routes(jobs.routes)
    app.add_routes(callbacks.routes)
    app.add_routes(deploy.routes)
    app.add_routes(job_inputs.routes)
    app.add_routes(tasks.routes)
    app.add_routes(health.routes)
    app.add_routes(files.routes)
    app[landing.EXTRA_CONFORMANCE] = [*deploy.CONFORMANCE_PART2]
    setup_metrics(app)
    app.on_response_prepare.append(request_id.on_prepare)
    app.on_response_prepare.append(cors.on_prepare)
    app.setdefault(OPENAPI_EXTENSIONS, []).extend([deploy.openapi_paths, job_inputs.openapi_paths,
                                                   health.openapi_paths, metrics.openapi_paths, tasks.openapi_paths,
                                                   files.openapi_paths])
    setup_auth(app, settings)
    setup_links(app)
    setup_signin(app)
    setup_pages(app)
    setup_events(app)
    app[OPENAPI_EXTENSIONS].append(openapi_links)

    async def services(app: web.Application) -> AsyncIterator[None]:
        store = Store(await asyncio.to_thread(secure_data_dir, settings.data_dir))  # 0700 dir, 0600 database
        registry = ProcessRegistry(store, owner_only=settings.auth.deployed_process_visibility == "owner",
                                   max_deployed=settings.limits.processes_per_user,
                                   retry_after_s=settings.limits.retry_after_s)
        loaded = await asyncio.to_thread(registry.load_builtins, settings.appkgs_dir,
                                         settings.builtin_processes)
        log.info("built-in processes: %s", ", ".join(loaded) or "none")
        # the one client for every request made on a user's behalf: backends, callbacks, deploy
        outbound = GuardedClient(settings.outbound)
        storage = ObjectStores(settings.storage)  # s3:// inputs and output destinations (docs/data.md)
        chosen = backends if backends is not None else default_backends(settings, outbound, storage)
        service = JobService(store, registry, chosen, settings.default_backend, settings.max_inputs,
                             settings.limits)
        service.outbound = outbound
        service.upload_settings = settings.uploads
        service.storage = storage
        monitors: dict[str, Monitor] = {}
        for name, backend in chosen.items():
            lo, hi = backend.poll_intervals
            monitors[name] = Monitor(service, backend, lo, hi)
            await backend.start(monitors[name].wake)
        service.on_submitted = lambda name: monitors[name].wake()
        app[STORE], app[REGISTRY], app[JOBS], app[MONITORS] = store, registry, service, monitors
        app[OUTBOUND] = outbound
        notifier = Notifier(service, settings.callbacks, settings.base_url, outbound)
        await notifier.start()  # before recover(): status changes from here on carry their callbacks
        await service.recover()
        for monitor in monitors.values():
            monitor.start()
        retention = RetentionSweeper(service, settings.retention)
        retention.start()
        uploads_sweep = asyncio.create_task(sweep_uploads(service, settings.uploads.sweep_interval_s))
        yield
        uploads_sweep.cancel()
        await retention.stop()
        for monitor in monitors.values():
            await monitor.stop()
        await notifier.stop()
        for backend in chosen.values():
            await backend.close()
        await outbound.close()
        service.close()
        store.close()

    app.cleanup_ctx.append(services)
    app[DEPLOY_WORKERS] = DeployWorkers(settings.deploy)

    async def deploy_workers(app: web.Application) -> AsyncIterator[None]:
        if settings.deploy.start_with_server:
            await app[DEPLOY_WORKERS].start()  # they import cwltool while the server starts, not on a deploy
        yield
        await app[DEPLOY_WORKERS].close()

    app.cleanup_ctx.append(deploy_workers)
    if server_process:
        tune_collector(app)
    return app
