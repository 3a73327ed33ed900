"""Subscriber callbacks through the API with the fake backend; receivers are aiohttp servers on 127.0.0.x."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hpgc.api.app import create_app
from hpgc.api.bearer import DEV_ISSUER
from hpgc.api.keys import JOBS, SETTINGS
from hpgc.auth.dev_issuer import dev_issuer_url
from hpgc.auth.settings import AuthSettings
from hpgc.config import Settings
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, RunSpec, StagedFile
from hpgc.net import OutboundSettings
from tests.api.fake_backend import FakeBackend, GateBackend
from tests.ogc_schemas import validate

SECRET = "s3cret"
ECHO = {"inputs": {"stringInput": "hello", "doubleInput": 1.5, "arrayInput": [1, 2]}}
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/callback"


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; `plan[path]` lists the statuses to answer in turn (then 200), `hold[path]` an event
    the answers wait for (a slow receiver, as slow as the test wants)."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    plan: dict[str, list[int]] = field(default_factory=dict)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.path, dict(request.headers), await request.read()))
        self.arrived.set()
        if request.path in self.hold:
            await self.hold[request.path].wait()
        plan = self.plan.get(request.path) or []
        status = plan.pop(0) if plan else 200
        if status in (301, 302, 307):
            # to this same receiver: were redirects followed, it would see the call (and no test traffic
            # ever leaves the loopback interface, whatever the code under test does)
            return web.Response(status=status, headers={"Location": f"{self.url}/landed"})
        return web.Response(status=status, text="nope" if status >= 300 else "ok")

    def at(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    async def wait(self, path: str, n: int = 1, timeout: float = 10) -> list[Call]:
        """The calls to `path` once there are n, woken by each call's arrival (timeout: a deadline only)."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.at(path)) < n:
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            raise AssertionError(f"{path}: {len(self.at(path))} of {n} calls within {timeout} s") from None
        return self.at(path)


Server = Callable[..., Awaitable[TestServer]]


async def _receiver(aiohttp_server: Server, host: str) -> Receiver:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    server = await aiohttp_server(app, host=host)
    rec.url = f"http://{host}:{server.port}"
    return rec


@pytest.fixture
async def receiver(aiohttp_server: Server) -> Receiver:
    return await _receiver(aiohttp_server, "127.0.0.1")


@pytest.fixture
async def other_receiver(aiohttp_server: Server) -> Receiver:
    """A second host (127.0.0.2 is loopback too on Linux): per-host limits treat it apart."""
    return await _receiver(aiohttp_server, "127.0.0.2")


def cb_settings(settings: Settings, allowed_networks: list[str] | None = None, **kw: Any) -> Settings:
    callbacks = CallbackSettings(**{
        "backoff_initial_s": 0.1, "backoff_max_s": 0.3, "attempt_timeout_s": 5, "progress_interval_s": 0,
        "secret": SECRET, **kw})
    outbound = OutboundSettings(allowed_networks=["127.0.0.0/8"] if allowed_networks is None else allowed_networks)
    return settings.model_copy(update={"callbacks": callbacks, "outbound": outbound})


@pytest.fixture
async def cb_client(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings,
                    fake_backend: FakeBackend) -> TestClient:
    return await aiohttp_client(create_app(cb_settings(settings), backends={"local": fake_backend}))


async def submit(client: TestClient, subscriber: dict[str, str], process: str = "echo",
                 body: dict | None = None, headers: dict | None = None) -> str:
    resp = await client.post(f"/processes/{process}/execution", json={**(body or ECHO), "subscriber": subscriber},
                             headers={"Prefer": "respond-async", **(headers or {})})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["jobID"])


async def callbacks(client: TestClient, job_id: str, **kw: Any) -> list[dict[str, Any]]:
    resp = await client.get(f"/jobs/{job_id}/callbacks", **kw)
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["callbacks"])


async def idle(client: TestClient, timeout: float = 10) -> None:
    """Until the dispatcher has nothing pending and nothing in flight: after it nothing more is sent."""
    async with asyncio.timeout(timeout):
        await client.app[JOBS].callbacks.dispatcher.wait_idle()


async def settled(client: TestClient, job_id: str, n: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The job's callbacks once it is final and the dispatcher idle: n of them, none pending."""
    row = await client.app[JOBS].wait(job_id, timeout)  # final: its notifications are in the outbox
    assert StatusCode(row["status"]).terminal, row
    await idle(client, timeout)
    got = await callbacks(client, job_id)
    assert len(got) == n and all(c["state"] != "pending" for c in got), got
    return got


def signed(call: Call) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(call.headers.get("X-Hpgc-Signature", ""), expected)


async def test_callback_conformance_class_is_declared(cb_client: TestClient) -> None:
    assert CONF in (await (await cb_client.get("/conformance")).json())["conformsTo"]


async def test_success_sends_the_results_document_signed(cb_client: TestClient, receiver: Receiver) -> None:
    job_id = await submit(cb_client, {"successUri": f"{receiver.url}/done", "failedUri": f"{receiver.url}/fail"})
    (call,) = await receiver.wait("/done")
    results = await (await cb_client.get(f"/jobs/{job_id}/results")).json()
    assert call.json() == results, "the success payload is the results document"
    assert call.json()["report"]["href"].startswith(str(cb_client.make_url("/jobs/"))), "absolute links"
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-Hpgc-Event"] == "success"
    assert call.headers["X-Hpgc-Job"] == job_id
    assert signed(call)
    (listed,) = await settled(cb_client, job_id, 1)
    assert listed["state"] == "delivered" and listed["attempts"] == 1 and listed["lastStatus"] == 200
    assert listed["deliveryId"] == call.headers["X-Hpgc-Delivery"]
    # settled: the dispatcher is idle, so nothing more will arrive
    assert receiver.at("/fail") == [] and len(receiver.at("/done")) == 1


async def test_500_twice_then_200_is_delivered_exactly_once_more(cb_client: TestClient, receiver: Receiver) -> None:
    receiver.plan["/hook"] = [500, 500]
    job_id = await submit(cb_client, {"successUri": f"{receiver.url}/hook"})
    await receiver.wait("/hook", 3)
    (listed,) = await settled(cb_client, job_id, 1)  # the dispatcher is idle: nothing more may arrive
    calls = receiver.at("/hook")
    assert len(calls) == 3
    assert len({c.headers["X-Hpgc-Delivery"] for c in calls}) == 1, "the delivery id is stable across retries"
    assert len({c.body for c in calls}) == 1 and all(signed(c) for c in calls)
    assert listed["state"] == "delivered" and listed["attempts"] == 3
    assert [h["status"] for h in listed["history"]] == [500, 500, 200]
    assert listed["history"][0]["error"] == "HTTP 500", "the receiver's answer is never quoted"


async def test_410_stops_at_once(cb_client: TestClient, receiver: Receiver) -> None:
    receiver.plan["/gone"] = [410]
    job_id = await submit(cb_client, {"successUri": f"{receiver.url}/gone"})
    (listed,) = await settled(cb_client, job_id, 1)  # idle: no retry is coming
    assert len(receiver.at("/gone")) == 1
    assert listed["state"] == "given-up" and listed["lastStatus"] == 410 and "410" in listed["lastError"]


async def test_redirects_are_not_followed(cb_client: TestClient, receiver: Receiver) -> None:
    receiver.plan["/moved"] = [302, 302, 302, 302, 302, 302, 302, 302, 302, 302]
    job_id = await submit(cb_client, {"successUri": f"{receiver.url}/moved"})
    await receiver.wait("/moved", 2)
    (first, *_) = await callbacks(cb_client, job_id)
    assert first["state"] == "pending" and first["lastStatus"] == 302
    assert "not followed" in first["lastError"] and "/landed" not in first["lastError"]
    assert receiver.at("/landed") == []


async def test_failed_job_sends_status_info_with_the_error(cb_client: TestClient, receiver: Receiver) -> None:
    job_id = await submit(cb_client, {"successUri": f"{receiver.url}/ok", "failedUri": f"{receiver.url}/fail"},
                          body={"inputs": {"stringInput": "fail"}})
    (call,) = await receiver.wait("/fail")
    doc = call.json()
    assert call.headers["X-Hpgc-Event"] == "failed"
    assert doc["jobID"] == job_id and doc["status"] == "failed"
    assert doc["exception"]["type"].endswith("/job-failed") and doc["exception"]["title"]
    assert "exited with code 3" in doc["exception"]["detail"]
    validate(doc, "statusInfo.yaml")
    assert receiver.at("/ok") == []


async def test_progress_and_dismissal(cb_client: TestClient, receiver: Receiver, fake_backend: FakeBackend) -> None:
    job_id = await submit(cb_client, {"inProgressUri": f"{receiver.url}/progress",
                                      "failedUri": f"{receiver.url}/ended"},
                          process="sleep", body={"inputs": {"seconds": 60}})
    (call, *_) = await receiver.wait("/progress")
    doc = call.json()
    validate(doc, "statusInfo.yaml")
    assert call.headers["X-Hpgc-Event"] == "in-progress"
    assert doc["status"] == "running" and doc["progress"] == 40 and doc["message"] == "sleeping"
    assert (await cb_client.delete(f"/jobs/{job_id}")).status == 200
    (ended,) = await receiver.wait("/ended")
    assert ended.json()["status"] == "dismissed" and ended.json()["exception"]["title"] == "Job dismissed"


async def test_progress_notifications_are_throttled(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, fake_backend: FakeBackend,
    receiver: Receiver,
) -> None:
    client = await aiohttp_client(create_app(cb_settings(settings, progress_interval_s=60),
                                             backends={"local": fake_backend}))
    job_id = await submit(client, {"inProgressUri": f"{receiver.url}/p"}, process="sleep",
                          body={"inputs": {"seconds": 60}})
    await receiver.wait("/p")  # accepted → running: a status change, always sent
    service = client.app[JOBS]
    for pct in (50, 60, 70):  # progress ticks inside the interval: recorded, none sent
        row = await service.apply(job_id, BackendStatus(status=StatusCode.running, progress=pct, message="x"))
        assert row is not None and row["progress"] == pct
    assert [c["event"] for c in await callbacks(client, job_id)] == ["in-progress"], "the ticks made no row"
    await idle(client)  # each tick woke the dispatcher: it has looked since, and found nothing to send
    assert [c.json()["progress"] for c in receiver.at("/p")] == [40]


async def test_slow_receiver_blocks_neither_status_updates_nor_other_deliveries(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, fake_backend: FakeBackend,
    receiver: Receiver, other_receiver: Receiver,
) -> None:
    client = await aiohttp_client(create_app(cb_settings(settings, per_host_concurrency=2, concurrency=8),
                                             backends={"local": fake_backend}))
    receiver.hold["/slow"] = gate = asyncio.Event()  # the slow host answers nothing until the gate opens
    slow = [await submit(client, {"successUri": f"{receiver.url}/slow"}) for _ in range(4)]
    await receiver.wait("/slow", 2)  # the slow host's two slots are taken, two more wait behind them
    fast = [await submit(client, {"successUri": f"{other_receiver.url}/fast"}) for _ in range(5)]
    await other_receiver.wait("/fast", 5)  # all sent while the slow host still holds its two
    for job_id in slow + fast:  # every status update went through meanwhile
        assert (await (await client.get(f"/jobs/{job_id}")).json())["status"] == "successful"
    assert len(receiver.at("/slow")) == 2, "the per-host limit holds"
    gate.set()
    for job_id in slow + fast:
        (listed,) = await settled(client, job_id, 1)
        assert listed["state"] == "delivered"
    assert len(receiver.at("/slow")) == 4


async def test_a_thousand_jobs_finishing_at_once_are_all_notified(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, receiver: Receiver,
) -> None:
    gate = GateBackend()
    client = await aiohttp_client(create_app(cb_settings(settings, per_host_concurrency=32, concurrency=32),
                                             backends={"local": gate}))
    service = client.app[JOBS]
    # 1,000 running jobs stored at once (creating them one by one through the API would be most of the
    # test's time and is tested elsewhere); the gate holds them running until released
    now = time.time()
    ids = [f"job-{i:04d}" for i in range(1000)]
    await service.db(service.store.bulk_insert_jobs, [{
        "id": job_id, "process_id": "echo", "owner": "anonymous", "status": "running", "message": "running",
        "progress": 5, "backend": "local", "external_id": f"fake-{job_id}", "created": now, "started": now,
        "updated": now, "request": ECHO, "subscriber": {"successUri": f"{receiver.url}/many"},
        "base_url": "http://hpgc.test"} for job_id in ids])
    for job_id in ids:
        gate.specs[job_id] = RunSpec(job_id=job_id, process_id="echo", kind="cwl", files=[
            StagedFile(path="job.json", content=json.dumps(ECHO["inputs"]).encode())])
    gate.release()
    await receiver.wait("/many", 1000, timeout=120)
    await idle(client, timeout=60)  # nothing pending any more: no duplicate is still on its way
    calls = receiver.calls
    assert sorted(c.headers["X-Hpgc-Job"] for c in calls) == sorted(ids), "each job notified exactly once"
    assert all(c.json()["stringOutput"] == "hello" for c in calls)
    assert all(c.json()["report"]["href"].startswith("http://hpgc.test/jobs/") for c in calls)


# SSRF ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://localhost:9/hook",
    "http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://[::ffff:10.0.0.1]/hook", "http://0.0.0.0/",
    "http://192.168.1.1/", "http://2130706433/",
])
async def test_private_addresses_are_refused_at_submit(client: TestClient, url: str) -> None:
    # failedUri of a job that succeeds: even if the guard let it through, nothing would be sent there
    resp = await client.post("/processes/echo/execution", json={**ECHO, "subscriber": {"failedUri": url}},
                             headers={"Prefer": "respond-async"})
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert "subscriber.failedUri" in body["detail"] and "private" in body["detail"], body
    assert (await (await client.get("/jobs")).json())["jobs"] == [], "no job was created"


@pytest.mark.parametrize("url", ["ftp://example.org/x", "file:///etc/passwd", "javascript:alert(1)", "/relative",
                                 "http://user:pw@example.org/"])
async def test_non_http_subscriber_uris_are_a_400_naming_the_field(cb_client: TestClient, url: str) -> None:
    resp = await cb_client.post("/processes/echo/execution",
                                json={**ECHO, "subscriber": {"successUri": url}}, headers={"Prefer": "respond-async"})
    assert resp.status == 400, await resp.text()
    assert "subscriber.successUri" in (await resp.json())["detail"]


async def test_unknown_subscriber_member_is_a_400(cb_client: TestClient) -> None:
    resp = await cb_client.post("/processes/echo/execution",
                                json={**ECHO, "subscriber": {"successUrl": "http://127.0.0.1/x"}})
    assert resp.status == 400 and "successUrl" in (await resp.json())["detail"]


async def test_delivery_rechecks_the_address(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, fake_backend: FakeBackend,
    receiver: Receiver,
) -> None:
    """A URL accepted at submit time that now points somewhere refused is given up without a connection:
    a literal address, and a name (localhost → 127.0.0.1) refused by the resolver guard. Both lead to the
    live receiver, so a guard that let them through would show as calls (and never leave loopback)."""
    client = await aiohttp_client(create_app(cb_settings(settings, allowed_networks=["127.0.0.2/32"]),
                                             backends={"local": fake_backend}))
    service = client.app[JOBS]
    job_id = await submit(client, {})
    port = receiver.url.rsplit(":", 1)[1]
    now = time.time()
    rows = [{"job_id": job_id, "event": "failed", "url": url, "host": host, "payload": "{}", "delivery_id": f"d{i}",
             "attempts": 0, "created": now, "next_attempt": now}
            for i, (url, host) in enumerate([(f"http://127.0.0.1:{port}/hook", "127.0.0.1"),
                                             (f"http://localhost:{port}/hook", "localhost")])]
    await service.db(lambda: service.store.db["outbox"].insert_all(rows))
    # the notifier's listener: wakes the dispatcher as a change of a job with subscribers would
    service.listeners[-1]({"subscriber": {"failedUri": rows[0]["url"]}})
    refused = {c["url"]: c for c in await settled(client, job_id, 2)}
    assert all(c["state"] == "given-up" and c["attempts"] == 1 for c in refused.values()), refused
    assert "127.0.0.1 is a loopback" in refused[f"http://127.0.0.1:{port}/hook"]["lastError"]
    by_name = refused[f"http://localhost:{port}/hook"]["lastError"]
    assert "refused by policy: localhost resolves to a loopback" in by_name and "127.0.0.1" not in by_name
    assert receiver.calls == [], "the resolver guard refused before connecting"


# the listing ---------------------------------------------------------------------------------------------
async def test_callbacks_listing_is_owner_only(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, fake_backend: FakeBackend,
    receiver: Receiver,
) -> None:
    app = create_app(cb_settings(settings).model_copy(update={"auth": AuthSettings()}),
                     backends={"local": fake_backend})
    client = await aiohttp_client(app)

    def bearer(user: str) -> dict[str, str]:
        token = client.app[DEV_ISSUER].mint(dev_issuer_url(client.app[SETTINGS]), user, "hpgc:execute")
        return {"Authorization": f"Bearer {token}"}

    job_id = await submit(client, {"successUri": f"{receiver.url}/a"}, headers=bearer("alice"))
    await receiver.wait("/a")
    mine = await callbacks(client, job_id, headers=bearer("alice"))
    assert [c["event"] for c in mine] == ["success"]
    resp = await client.get(f"/jobs/{job_id}/callbacks", headers=bearer("bob"))
    assert resp.status == 404 and (await resp.json())["type"].endswith("/no-such-job")
    assert (await client.get(f"/jobs/{job_id}/callbacks")).status == 401
    doc = await (await client.get("/api")).json()
    assert "/jobs/{jobId}/callbacks" in doc["paths"]
    assert set(doc["paths"]["/processes/{processId}/execution"]["post"]["callbacks"]) == {
        "jobSucceeded", "jobInProgress", "jobFailed"}


async def test_a_sweep_notifies_its_progress_and_once_its_end_with_arrays(
        aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, receiver: Receiver) -> None:
    """hpgc:sweep: an in-progress callback once its tasks run (progress_interval_s 0 here: each change), and
    ONE final successCallback whose results are arrays in task order."""
    gate = GateBackend()
    client = await aiohttp_client(create_app(cb_settings(settings), backends={"local": gate}))
    body = {"inputs": {}, "hpgc:sweep": {"inputs": {"stringInput": ["a", "b", "c"]}}}
    job_id = await submit(client, {"successUri": f"{receiver.url}/ok", "inProgressUri": f"{receiver.url}/prog",
                                   "failedUri": f"{receiver.url}/bad"}, body=body)
    (running,) = await receiver.wait("/prog")
    assert running.json()["status"] == "running" and running.json()["hpgc:tasks"]["running"] == 3
    gate.release()
    await settled(client, job_id, len(receiver.at("/prog")) + 1)
    (final,) = receiver.at("/ok")
    assert final.json()["stringOutput"] == ["a", "b", "c"] and signed(final)
    validate(final.json(), "results.yaml")
    assert receiver.at("/bad") == []
