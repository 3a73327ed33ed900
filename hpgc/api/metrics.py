"""Prometheus metrics over HTTP: the request middleware (labelled by the matched route's pattern, never the
raw path, so a scan of random URLs adds no series), /metrics, its optional listener of its own, and the
reference of every metric (docs/operations.md, `hpgc metrics-docs`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

import hpgc.backends.metrics  # noqa: F401 (its metrics register with the process-wide registry)
from hpgc.api.keys import JOBS, SETTINGS
from hpgc.api.principal import principal
from hpgc.auth.principal import require_admin
from hpgc.jobs.metrics import StoreCollector

UNMATCHED = "(unmatched)"  # 404s and 405s: one series for every path no route knows
REQUESTS = Counter("hpgc_http_requests", "HTTP requests answered, by route (the pattern, e.g. /jobs/{job_id}), "
                   "method and status.", ["route", "method", "status"])
REQUEST_SECONDS = Histogram("hpgc_http_request_seconds", "Time to answer an HTTP request (until the handler "
                            "returns; a streamed body may take longer), by route and method.", ["route", "method"])
# the classic text format, which generate_latest writes and every Prometheus reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COLLECTOR: web.AppKey[StoreCollector] = web.AppKey("store_collector")
STORE_REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("store_registry")


# a client may send any token as its method: the others count as one, so that they add no series either
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "(other)"


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


@lru_cache(maxsize=4096)  # routes × methods × statuses: bounded; labels() costs a lock and a tuple per call
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    return REQUESTS.labels(route, method, str(status)), REQUEST_SECONDS.labels(route, method)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        method = request.method if request.method in METHODS else OTHER_METHOD
        count, seconds = _series(route_of(request), method, status)
        count.inc()
        seconds.observe(time.monotonic() - started)


async def exposition(app: web.Application) -> bytes:
    """The process-wide registry, then this app's store numbers (read now, in the store's worker thread)."""
    settings = app[SETTINGS]
    await app[JOBS].collect_store_metrics(app[COLLECTOR], settings.health.outbox_stuck_s)
    return generate_latest(REGISTRY) + generate_latest(app[STORE_REGISTRY])


async def metrics(request: web.Request) -> web.Response:
    require_admin(principal(request))  # anyone when auth is off, as every other route
    return web.Response(body=await exposition(request.app), headers={"Content-Type": CONTENT_TYPE})


def setup_metrics(app: web.Application) -> None:
    """/metrics on the app (admin scope) and, with `metrics.listen`, on a listener of its own (no auth)."""
    settings = app[SETTINGS].metrics
    if not settings.enabled:
        return
    app[COLLECTOR] = StoreCollector()
    app[STORE_REGISTRY] = CollectorRegistry(auto_describe=True)
    app[STORE_REGISTRY].register(app[COLLECTOR])
    app.router.add_get("/metrics", metrics, allow_head=False)
    if settings.listen:
        app.cleanup_ctx.append(_listener)


async def _listener(app: web.Application) -> AsyncIterator[None]:
    host, _, port = app[SETTINGS].metrics.listen.rpartition(":")  # type: ignore[union-attr]

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=await exposition(app), headers={"Content-Type": CONTENT_TYPE})

    side = web.Application()
    side.router.add_get("/metrics", serve, allow_head=False)
    runner = web.AppRunner(side, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    yield
    await runner.cleanup()


def openapi_paths(app: web.Application, doc: dict[str, Any]) -> None:
    if not app[SETTINGS].metrics.enabled:
        return
    doc["paths"]["/metrics"] = {"get": {
        "summary": "Prometheus metrics (an administrator's token when authentication is on)",
        "operationId": "getMetrics", "tags": ["Operations"], "parameters": [],
        "responses": {"200": {"description": "metrics in Prometheus' text format (docs/operations.md)",
                              "content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}}}}


def reference() -> str:
    """docs/operations.md's table of metrics: every hpgc_ metric with its type, labels and help text."""
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    store = CollectorRegistry(auto_describe=True)
    store.register(StoreCollector())
    families = {m.name: m for reg in (REGISTRY, store) for m in reg.collect() if m.name.startswith("hpgc_")}
    for name in sorted(families):
        family = families[name]
        shown = f"{name}_total" if family.type == "counter" else name
        labels = getattr(family, "_labelnames", ()) or _declared_labels(name)
        lines.append(f"| `{shown}` | {family.type} | {', '.join(labels)} | {family.documentation} |")
    return "\n".join(lines) + "\n"


def _declared_labels(name: str) -> tuple[str, ...]:
    """Labels of a metric that has no sample yet (a labelled metric shows none until first used)."""
    for collector in list(REGISTRY._collector_to_names):  # the client offers no public listing
        if getattr(collector, "_name", None) == name:
            return tuple(getattr(collector, "_labelnames", ()))
    return ()
