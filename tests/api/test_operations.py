"""Operations over HTTP: /metrics (route labels, job counts, who may read it, its own listener), /health/live
and /health/ready (each check, nothing sensitive in the body, a check that hangs), X-Request-Id."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.bearer import DEV_ISSUER
from hpgc.api.keys import SETTINGS
from hpgc.auth.dev_issuer import dev_issuer_url
from hpgc.auth.settings import AuthSettings
from hpgc.cli import METRICS_BEGIN, METRICS_END
from hpgc.config import Settings
from hpgc.jobs.ops_settings import HealthSettings, MetricsSettings
from tests.api.fake_backend import FakeBackend
from tests.api.waits import job_reaches

Client = Callable[..., Awaitable[TestClient]]
REPO = Path(__file__).resolve().parents[2]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return 0.0


async def scrape(client: TestClient, **kw: object) -> str:
    resp = await client.get("/metrics", **kw)  # type: ignore[arg-type]
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


async def test_requests_are_counted_by_route_pattern_never_the_raw_path(client: TestClient) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/jobs/no-such-job-123")).status == 404
    assert (await client.get("/random/path/9f8e7d")).status == 404
    after = await scrape(client)
    key = {"route": "/jobs/{job_id}", "method": "GET", "status": "404"}
    assert sample(after, "hpgc_http_requests_total", **key) - sample(before, "hpgc_http_requests_total", **key) == 3
    unmatched = {"route": "(unmatched)", "method": "GET", "status": "404"}
    assert sample(after, "hpgc_http_requests_total", **unmatched) - sample(
        before, "hpgc_http_requests_total", **unmatched) == 1
    assert "no-such-job-123" not in after and "9f8e7d" not in after
    assert sample(after, "hpgc_http_request_seconds_count", route="/jobs/{job_id}", method="GET") >= 3


async def test_unknown_methods_are_counted_as_one(client: TestClient) -> None:
    before = await scrape(client)
    for method in ("PROPFIND", "MKCOL"):  # WebDAV: methods the HTTP parser knows, no route here
        assert (await client.request(method, "/jobs")).status == 405
    after = await scrape(client)
    key = {"route": "(unmatched)", "method": "(other)", "status": "405"}
    assert sample(after, "hpgc_http_requests_total", **key) - sample(before, "hpgc_http_requests_total", **key) == 2
    assert "PROPFIND" not in after and "MKCOL" not in after  # no series per method a client makes up


async def test_jobs_by_state_and_submissions_move_with_the_jobs(client: TestClient) -> None:
    before = await scrape(client)
    resp = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "hi"}},
                             headers={"Prefer": "respond-async"})
    assert resp.status == 201
    job_id = (await resp.json())["jobID"]
    await job_reaches(client, job_id, "successful")
    after = await scrape(client)
    labels = {"status": "successful", "process": "echo", "backend": "local", "cluster": ""}
    assert sample(after, "hpgc_jobs", **labels) - sample(before, "hpgc_jobs", **labels) == 1
    ok = {"backend": "local", "result": "ok"}
    assert sample(after, "hpgc_submissions_total", **ok) - sample(before, "hpgc_submissions_total", **ok) == 1
    done = {"backend": "local", "status": "successful"}
    assert sample(after, "hpgc_job_status_changes_total", **done) - sample(
        before, "hpgc_job_status_changes_total", **done) == 1
    assert sample(after, "hpgc_callback_outbox_pending") == 0
    assert sample(after, "hpgc_poll_cycle_seconds_count", backend="local") >= 1


async def test_a_failed_submission_is_counted(client: TestClient, fake_backend: FakeBackend) -> None:
    fake_backend.fail_submit = OSError("sbatch said no")
    before = await scrape(client)
    resp = await client.post("/processes/echo/execution", json={"inputs": {"stringInput": "hi"}},
                             headers={"Prefer": "respond-async"})
    await job_reaches(client, (await resp.json())["jobID"], "failed")
    after = await scrape(client)
    key = {"backend": "local", "result": "failed"}
    assert sample(after, "hpgc_submissions_total", **key) - sample(before, "hpgc_submissions_total", **key) == 1


async def test_metrics_need_an_administrator_when_auth_is_on(aiohttp_client: Client, settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"auth": AuthSettings()}), backends={"local": FakeBackend()})
    client = await aiohttp_client(app)

    def bearer(scope: str) -> dict[str, str]:
        token = app[DEV_ISSUER].mint(dev_issuer_url(app[SETTINGS]), "ops", scope)
        return {"Authorization": f"Bearer {token}"}

    assert (await client.get("/metrics")).status == 401
    refused = await client.get("/metrics", headers=bearer("hpgc:execute"))
    assert refused.status == 403 and (await refused.json())["error"] == "insufficient_scope"
    assert "hpgc_jobs" in await scrape(client, headers=bearer("hpgc:admin"))
    assert (await client.get("/health/live")).status == 200  # health stays public
    assert (await client.get("/health/ready")).status == 200


async def test_metrics_can_be_switched_off(aiohttp_client: Client, settings: Settings) -> None:
    off = settings.model_copy(update={"metrics": MetricsSettings(enabled=False)})
    client = await aiohttp_client(create_app(off, backends={"local": FakeBackend()}))
    assert (await client.get("/metrics")).status == 404
    assert "/metrics" not in (await (await client.get("/api")).json())["paths"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_metrics_listener_of_its_own_needs_no_token(aiohttp_client: Client, settings: Settings) -> None:
    port = _free_port()
    conf = settings.model_copy(update={"auth": AuthSettings(), "metrics": MetricsSettings(listen=f"127.0.0.1:{port}")})
    client = await aiohttp_client(create_app(conf, backends={"local": FakeBackend()}))
    assert (await client.get("/metrics")).status == 401  # the main address still wants a token
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200 and "hpgc_jobs" in await resp.text()
        async with session.get(f"http://127.0.0.1:{port}/jobs") as resp:
            assert resp.status == 404  # only /metrics there


async def test_health_live_and_ready(client: TestClient) -> None:
    live = await client.get("/health/live")
    assert live.status == 200 and await live.json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status == 200
    assert await ready.json() == {"status": "ok", "checks": {"callbacks": "ok", "database": "ok"}}


class SickBackend(FakeBackend):
    """A backend whose clusters fail their check, or whose check never ends."""

    def __init__(self, hang: bool = False) -> None:
        super().__init__()
        self.hang = hang

    async def health(self, timeout_s: float) -> dict[str, bool]:
        if self.hang:
            await asyncio.Event().wait()
        return {"cluster:alpha": True, "cluster:beta": False}


async def test_ready_fails_when_a_cluster_does_and_says_nothing_else(aiohttp_client: Client,
                                                                      settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings, backends={"local": SickBackend()}))
    resp = await client.get("/health/ready")
    assert resp.status == 503
    assert await resp.json() == {"status": "unavailable", "checks": {
        "callbacks": "ok", "cluster:alpha": "ok", "cluster:beta": "failed", "database": "ok"}}


async def test_a_check_that_hangs_fails_within_the_timeout(aiohttp_client: Client, settings: Settings) -> None:
    conf = settings.model_copy(update={"health": HealthSettings(timeout_s=0.05)})
    client = await aiohttp_client(create_app(conf, backends={"local": SickBackend(hang=True)}))
    resp = await client.get("/health/ready")
    assert resp.status == 503
    assert (await resp.json())["checks"] == {"backend:local": "failed", "callbacks": "ok", "database": "ok"}


async def test_request_id_is_sent_back(client: TestClient) -> None:
    given = await client.get("/processes", headers={"X-Request-Id": "proxy-42.a_b"})
    assert given.headers["X-Request-Id"] == "proxy-42.a_b"
    made = await client.get("/processes", headers={"X-Request-Id": "bad id; drop table"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])
    other = await client.get("/processes")
    assert re.fullmatch(r"[0-9a-f]{32}", other.headers["X-Request-Id"]) and other.headers["X-Request-Id"] != \
        made.headers["X-Request-Id"]
    problem = await client.get("/jobs/nope")
    assert problem.status == 404 and re.fullmatch(r"[0-9a-f]{32}", problem.headers["X-Request-Id"])


def test_the_metrics_reference_is_current() -> None:
    from hpgc.api.metrics import reference

    text = (REPO / "docs/operations.md").read_text()
    table = text.split(METRICS_BEGIN, 1)[1].split(METRICS_END, 1)[0]
    assert table == "\n" + reference(), "stale: run `hpgc metrics-docs --output docs/operations.md`"
    for name in ("hpgc_http_requests_total", "hpgc_jobs", "hpgc_submissions_total", "hpgc_poll_cycle_seconds",
                 "hpgc_ssh_round_trips_total", "hpgc_ssh_connections_up", "hpgc_callback_outbox_pending",
                 "hpgc_callback_attempts_total", "hpgc_callback_outbox_oldest_seconds", "hpgc_deploys_total",
                 "hpgc_image_pulls_total"):
        assert f"| `{name}` |" in table, name
