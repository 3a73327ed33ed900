"""Sweeps (hpgc:sweep), attacked through the real server: huge lists, deep nesting, absurd maxParallel, values
that try shell injection in a task's input file, another user's tasks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import Attacked, attacked_server

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attacked]:
    """One server for the module: each attack is checked to leave no job behind, so they do not interfere."""
    yield from attacked_server(tmp_path_factory.mktemp("sweeps"))


def sweep(target: Attacked, body: dict[str, Any]) -> Any:
    return target.alice.post("/processes/echo/execution", headers=ASYNC, json=body)


def assert_refused(resp: Any, status: int = 400) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")


def test_max_parallel_out_of_range_or_not_an_integer_is_a_400(target: Attacked) -> None:
    for parallel in (0, -1, -(10**12), 10**12, "8", 1.5, True, [1], {"n": 1}):
        assert_refused(sweep(target, {"inputs": {}, "hpgc:sweep": {"inputs": {"stringInput": ["a"]},
                                                                  "maxParallel": parallel}}))
    assert target.alice.get("/jobs").json()["jobs"] == []


def test_malformed_sweeps_are_400s(target: Attacked) -> None:
    for member in (
        {"inputs": {"stringInput": "a"}},  # not a list
        {"inputs": {}},  # nothing swept
        {"inputs": {"stringInput": ["a"]}, "mode": "cartesian"},
        {"inputs": {"stringInput": ["a"]}, "extra": 1},
        {"inputs": {"stringInput": ["a", "b"], "doubleInput": [1.0]}},  # zip of unequal lists
        "zip", [], None,  # None: no sweep at all, a plain execute missing its required input
    ):
        assert_refused(sweep(target, {"inputs": {}, "hpgc:sweep": member}))
    assert target.alice.get("/jobs").json()["jobs"] == []


def test_huge_sweeps_are_refused_before_anything_is_stored(target: Attacked) -> None:
    many = {"stringInput": [str(i) for i in range(20_000)]}  # over limits.sweep_max_tasks (10,000)
    resp = sweep(target, {"inputs": {}, "hpgc:sweep": {"inputs": many}})
    assert_refused(resp)
    assert "at most 10000" in resp.json()["detail"]
    product = {"stringInput": [str(i) for i in range(1000)], "doubleInput": list(range(1000)),
               "arrayInput": [[1]] * 1000}  # 10^9 tasks: refused from the lengths, never built
    started = time.monotonic()
    resp = sweep(target, {"inputs": {}, "hpgc:sweep": {"inputs": product, "mode": "product"}})
    assert_refused(resp)
    assert "1000000000 tasks" in resp.json()["detail"] and time.monotonic() - started < 10
    assert target.alice.get("/jobs").json()["jobs"] == []
    assert target.alice.get("/").status_code == 200  # the server is still there


def test_deeply_nested_values_are_refused(target: Attacked) -> None:
    body = '{"inputs": {}, "hpgc:sweep": {"inputs": {"arrayInput": ' + "[" * 5000 + "1" + "]" * 5000 + "}}}"
    resp = target.alice.post("/processes/echo/execution", headers={**ASYNC, "Content-Type": "application/json"},
                             content=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert target.alice.get("/jobs").json()["jobs"] == []


def test_values_are_data_in_each_tasks_input_file_never_shell(target: Attacked, tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    values = [f"$(touch {mark})", f"`touch {mark}`", f"x; touch {mark}", f"x' && touch '{mark}", "a\nb"]
    resp = sweep(target, {"inputs": {}, "hpgc:sweep": {"inputs": {"stringInput": values}, "maxParallel": 2}})
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["jobID"]
    deadline = time.monotonic() + 120
    while (job := target.alice.get(f"/jobs/{job_id}").json())["status"] not in ("successful", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["status"] == "successful", job
    assert target.alice.get(f"/jobs/{job_id}/results").json()["stringOutput"] == values
    assert not mark.exists()
    # another user's sweep and its tasks do not exist for bob
    for path in ("", "/tasks", "/tasks/0/results", "/tasks/0/logs", "/tasks/0/results/stringOutput"):
        assert_refused(target.bob.get(f"/jobs/{job_id}{path}"), 404)
    assert_refused(target.alice.get(f"/jobs/{job_id}/tasks/99999/results"), 404)
    assert_refused(target.alice.get(f"/jobs/{job_id}/tasks?limit=0"))
    assert target.alice.get(f"/jobs/{job_id}/tasks/{'9' * 5000}/results").status_code == 404
