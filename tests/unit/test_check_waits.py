"""tests/check_waits.py, the CI check that the fast suites wait on events: what it finds and what it lets by."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import check_waits
from tests.check_waits import check_source


def _found(source: str) -> list[tuple[int, str, str]]:
    return [(f.line, f.function, f.what) for f in check_source(source, "tests/unit/test_x.py")]


def test_sleeps_are_found_however_they_are_imported() -> None:
    source = """\
import asyncio
import time
import asyncio as aio
from time import sleep
from asyncio import sleep as nap

async def test_a():
    time.sleep(1)
    await asyncio.sleep(0.05)
    await aio.sleep(delay=2)
    sleep(0.1)
    await nap(3)

class Receiver:
    async def handle(self):
        await asyncio.sleep(self.delay)
"""
    assert _found(source) == [
        (8, "test_a", "time.sleep(1)"), (9, "test_a", "asyncio.sleep(0.05)"), (10, "test_a", "asyncio.sleep(2)"),
        (11, "test_a", "time.sleep(0.1)"), (12, "test_a", "asyncio.sleep(3)"),
        (16, "Receiver.handle", "asyncio.sleep(self.delay)"),
    ]


def test_yielding_to_the_loop_and_other_sleeps_pass() -> None:
    source = """\
import asyncio

async def test_b(proc):
    await asyncio.sleep(0)
    await asyncio.sleep(0.0)
    await proc.sleep(5)           # not the clock's sleep
    script = "sleep 60 & wait"    # a job's shell command is no wait of the test
    helper = "import time; time.sleep(1)"
"""
    assert _found(source) == []


def test_assertions_on_elapsed_time_are_found() -> None:
    source = """\
import asyncio
import time
from time import perf_counter as pc

async def test_c():
    t0 = time.monotonic()
    assert time.monotonic() - t0 < 2
    start = pc()
    elapsed = pc() - start
    assert elapsed < 0.5, "fast"
    began = time.time()
    took = time.time() - began
    assert took < 1
    assert time.time() - began < 1
    assert asyncio.get_running_loop().time() > 0
"""
    assert [(line, what.split(":")[0]) for line, _, what in _found(source)] == [
        (7, "assert on a monotonic clock"), (10, "assert on a monotonic clock"),
        (13, "assert on elapsed wall-clock time"), (14, "assert on elapsed wall-clock time"),
        (15, "assert on a monotonic clock"),
    ]


def test_timestamps_and_deadlines_outside_assertions_pass() -> None:
    source = """\
import time

def test_d(store):
    now = time.time()
    store.insert({"created": now - 10})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        break
    assert store.get()["created"] == now - 10
    assert store.count() == 1
"""
    assert _found(source) == []


def test_main_fails_on_a_refused_finding_and_on_a_stale_allowance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "tests" / "unit"
    suite.mkdir(parents=True)
    (suite / "test_t.py").write_text("import time\n\ndef test_timeout():\n    time.sleep(0.1)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(check_waits, "ALLOWED", {})
    assert check_waits.main(["tests/unit"]) == 1
    assert "REFUSED  tests/unit/test_t.py:4: test_timeout: time.sleep(0.1)" in capsys.readouterr().out
    monkeypatch.setattr(check_waits, "ALLOWED", {"tests/unit/test_t.py::test_timeout": "tests a timeout"})
    assert check_waits.main(["tests/unit"]) == 0
    assert "allowed  tests/unit/test_t.py:4: test_timeout: time.sleep(0.1)   (tests a timeout)" in (
        capsys.readouterr().out)
    monkeypatch.setattr(check_waits, "ALLOWED", {"tests/unit/test_t.py::test_timeout": "tests a timeout",
                                                 "tests/unit/test_t.py::gone": "was fixed"})
    assert check_waits.main(["tests/unit"]) == 1
    assert "STALE    tests/unit/test_t.py::gone" in capsys.readouterr().out
