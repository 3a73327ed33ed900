"""The job service's readiness checks and the log's context and JSON lines (hpgc/jobs/operations.py,
hpgc/logs.py)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time
from pathlib import Path

import pytest

from hpgc.cli import main
from hpgc.jobs.service import JobService
from hpgc.logs import ContextFilter, JsonFormatter, bind, current, set_fields
from hpgc.packages.registry import ProcessRegistry
from hpgc.store import Store


async def test_readiness_fails_on_an_overdue_callback_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    service = JobService(store, ProcessRegistry(store), {}, "local")
    assert await service.readiness(5, 300) == {"database": True, "callbacks": True}
    now = time.time()
    base = {"job_id": "a", "event": "e", "url": "u", "host": "h", "payload": "{}", "delivery_id": "d", "attempts": 1}
    store.db["outbox"].insert({**base, "created": now - 100, "next_attempt": now - 100})  # late, not yet stuck
    assert await service.readiness(5, 300) == {"database": True, "callbacks": True}
    store.db["outbox"].insert({**base, "created": now - 900, "next_attempt": now - 600})
    assert await service.readiness(5, 300) == {"database": True, "callbacks": False}
    service.close()
    store.close()


async def test_a_database_that_does_not_answer_fails_in_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    service = JobService(store, ProcessRegistry(store), {}, "local")
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    blocked = store.call(lambda: asyncio.run_coroutine_threadsafe(release.wait(), loop).result())
    task = asyncio.ensure_future(blocked)
    assert await service.readiness(0.05, 300) == {"database": False, "callbacks": False}
    release.set()
    await task
    service.close()
    store.close()


def _record(logger: logging.Logger, stream: io.StringIO, message: str) -> dict[str, object]:
    logger.warning(message)
    return json.loads(stream.getvalue().splitlines()[-1])


def test_json_lines_carry_the_bound_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hpgc.test-ops")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with bind(request_id="r1", user="alice"):
            with bind(job_id="j1", cluster=None):
                line = _record(logger, stream, "submitted")
            assert line["message"] == "submitted" and line["level"] == "WARNING" and line["logger"] == "hpgc.test-ops"
            assert {k: line.get(k) for k in ("request_id", "user", "job_id", "cluster")} == {
                "request_id": "r1", "user": "alice", "job_id": "j1", "cluster": None}
            assert current() == {"request_id": "r1", "user": "alice"}  # the inner block's fields are gone
        assert "request_id" not in _record(logger, stream, "outside")
    finally:
        logger.removeHandler(handler)


async def test_fields_set_in_a_task_stay_in_it() -> None:
    async def job() -> dict[str, str]:
        set_fields(job_id="j2", slurm_id="42")
        return current()

    with bind(request_id="r2"):
        assert await asyncio.create_task(job()) == {"request_id": "r2", "job_id": "j2", "slurm_id": "42"}
        assert current() == {"request_id": "r2"}


def test_hpgc_check_ready_runs_the_same_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hpgc check --ready` is /health/ready from the command line: a cluster nobody listens for fails it."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = tmp_path / "hpgc.toml"
    config.write_text(f'[clusters.alpha]\nhost = "127.0.0.1"\nport = {port}\nknown_hosts = "{known}"\n'
                      f'user = "hpgc"\nwork_root = "/scratch"\n[health]\ntimeout_s = 5\n')
    assert main(["check", "--ready", "--config", str(config), "--data-dir", str(tmp_path / "data")]) == 1
    assert capsys.readouterr().out.splitlines() == ["callbacks: ok", "cluster:alpha: FAILED", "database: ok"]
