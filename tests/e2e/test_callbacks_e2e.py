"""Callbacks from a real server process (local backend, real jobs) to a receiver on 127.0.0.1, across kill -9."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, free_port, start_server

SECRET = "e2e-secret"
ENV = {
    "HPGC_OUTBOUND__ALLOWED_NETWORKS": '["127.0.0.0/8"]', "HPGC_CALLBACKS__BACKOFF_INITIAL_S": "0.2",
    "HPGC_CALLBACKS__BACKOFF_MAX_S": "0.5", "HPGC_CALLBACKS__PROGRESS_INTERVAL_S": "0",
    "HPGC_CALLBACKS__SECRET": SECRET,
}


@dataclass
class Receiver:
    """A plain threaded HTTP server: records POSTs; `plan[path]` lists statuses to answer first."""

    port: int
    calls: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    plan: dict[str, list[int]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.calls.append((self.path, dict(self.headers), body))
                plan = rec.plan.get(self.path) or []
                self.send_response(plan.pop(0) if plan else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def at(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [c for c in self.calls if c[0] == path]

    def wait(self, path: str, n: int = 1, timeout: float = 60) -> list[tuple[str, dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < n:
            assert time.monotonic() < deadline, f"{path}: {len(self.at(path))} of {n} calls"
            time.sleep(0.05)
        return self.at(path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(free_port())
    rec.start()
    yield rec
    rec.stop()


@pytest.fixture
def cb_server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data", env=ENV)
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def submit(url: str, process: str, inputs: dict[str, Any], subscriber: dict[str, str]) -> str:
    resp = httpx.post(f"{url}/processes/{process}/execution", json={"inputs": inputs, "subscriber": subscriber},
                      headers={"Prefer": "respond-async"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["jobID"])


def listed(url: str, job_id: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/jobs/{job_id}/callbacks")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["callbacks"])


def signed(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Hpgc-Signature", ""), expected)


def test_a_real_job_reports_progress_then_results(cb_server: Server, receiver: Receiver) -> None:
    job_id = submit(cb_server.url, "sleep", {"seconds": 3},
                    {"inProgressUri": f"{receiver.url}/progress", "successUri": f"{receiver.url}/done"})
    (_, headers, body), = receiver.wait("/done")
    assert signed(headers, body) and headers["X-Hpgc-Event"] == "success"
    assert json.loads(body) == httpx.get(f"{cb_server.url}/jobs/{job_id}/results").json()
    assert json.loads(body)["message"].strip() == "slept 3 s"
    progress = [json.loads(b) for _, _, b in receiver.at("/progress")]
    # in-progress: every change before the end (a queued job's message too), never a final status
    assert all(p["jobID"] == job_id and p["status"] in ("accepted", "running") for p in progress), progress
    reported = [p["progress"] for p in progress if (p.get("message") or "").startswith("slept ")]
    # hpgc-progress lines written by the job itself (0, 33, 66 %), as the local backend's polls saw them
    assert len({p for p in reported if 0 < p < 100}) >= 1 and set(reported) <= {0, 33, 66}, progress
    assert reported == sorted(reported), "one receiver sees a job's notifications in order"


def test_500_twice_then_200_arrives_exactly_once_more_with_the_same_delivery_id(
    cb_server: Server, receiver: Receiver
) -> None:
    receiver.plan["/hook"] = [500, 500]
    job_id = submit(cb_server.url, "echo", {"stringInput": "retry me"}, {"successUri": f"{receiver.url}/hook"})
    calls = receiver.wait("/hook", 3)
    time.sleep(2)  # several backoff periods
    calls = receiver.at("/hook")
    assert len(calls) == 3
    assert len({h["X-Hpgc-Delivery"] for _, h, _ in calls}) == 1
    assert all(signed(h, b) for _, h, b in calls)
    (note,) = listed(cb_server.url, job_id)
    assert note["state"] == "delivered" and [a["status"] for a in note["history"]] == [500, 500, 200]


def test_a_pending_notification_survives_kill_9(tmp_path: Path) -> None:
    receiver = Receiver(free_port())  # not listening yet: every attempt fails
    srv = start_server(tmp_path / "data", env=ENV)
    try:
        job_id = submit(srv.url, "echo", {"stringInput": "after the crash"}, {"successUri": f"{receiver.url}/hook"})
        deadline = time.monotonic() + 60
        while not (notes := listed(srv.url, job_id)) or notes[0]["attempts"] < 2:
            assert time.monotonic() < deadline, notes
            time.sleep(0.1)
        assert notes[0]["state"] == "pending" and "could not be delivered" in notes[0]["lastError"]
        delivery_id = notes[0]["deliveryId"]
    finally:
        srv.stop(signal.SIGKILL)
    receiver.start()
    again = start_server(srv.data_dir, port=srv.port, env=ENV)
    try:
        (_, headers, body), = receiver.wait("/hook", timeout=30)
        assert headers["X-Hpgc-Delivery"] == delivery_id, "the same notification, not a new one"
        assert json.loads(body)["stringOutput"] == "after the crash"
        deadline = time.monotonic() + 10
        while (note := listed(again.url, job_id)[0])["state"] != "delivered":
            assert time.monotonic() < deadline, note
            time.sleep(0.1)
        assert note["attempts"] >= 3 and note["history"][-1]["status"] == 200
    finally:
        again.stop()
        receiver.stop()
