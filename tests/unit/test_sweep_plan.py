"""A sweep's tasks in order, their count without building them, the index a 400 names, the task keys."""

from __future__ import annotations

from hpgc.jobs.sweeps import counts_of, sweep_status
from hpgc.models.ogc import StatusCode
from hpgc.models.sweep import SweepRequest, split_task_key, task_key


def test_product_order_size_and_the_index_of_each_value() -> None:
    sw = SweepRequest(inputs={"a": [1, 2], "b": ["x", "y", "z"]}, mode="product")
    assert sw.size() == 6
    assert sw.tasks() == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
                          {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert [sw.index_of(t, "a") for t in range(6)] == [0, 0, 0, 1, 1, 1]
    assert [sw.index_of(t, "b") for t in range(6)] == [0, 1, 2, 0, 1, 2]
    assert SweepRequest(inputs={"a": list(range(1000)), "b": list(range(1000)), "c": list(range(1000))},
                        mode="product").size() == 10**9


def test_zip_pairs_values_and_names_unequal_lists() -> None:
    sw = SweepRequest(inputs={"a": [1, 2], "b": ["x", "y"]})
    assert sw.mode == "zip" and sw.size() == 2 and sw.unequal() is None
    assert sw.tasks() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert sw.index_of(1, "b") == 1
    assert SweepRequest(inputs={"a": [1, 2], "b": ["x"]}).unequal() == ("b", 1)


def test_task_keys_round_trip_and_plain_ids_are_not_tasks() -> None:
    assert task_key("j-1", 7) == "j-1/tasks/7"
    assert split_task_key("j-1/tasks/7") == ("j-1", 7)
    assert split_task_key("j-1") is None
    assert split_task_key("j-1/tasks/x") is None


def test_the_sweeps_status_from_its_tasks() -> None:
    counts = counts_of(["successful", "running", "accepted", "failed"])
    assert counts == {"total": 4, "accepted": 1, "running": 1, "successful": 1, "failed": 1, "dismissed": 0}
    st = sweep_status(counts, [3])
    assert (st.status, st.progress, st.message) == (StatusCode.running, 50, "2 of 4 tasks finished, 1 failed")
    done = counts_of(["successful", "failed", "dismissed", "successful"])
    st = sweep_status(done, [1, 2])
    assert (st.status, st.progress) == (StatusCode.failed, 100)
    assert st.message is not None and st.message.startswith("2 of 4 tasks failed (indices 1, 2)")
    ok = sweep_status(counts_of(["successful"] * 3), [])
    assert (ok.status, ok.progress, ok.message) == (StatusCode.successful, 100, "all 3 tasks succeeded")
    waiting = sweep_status(counts_of(["accepted"] * 2), [])
    assert (waiting.status, waiting.progress) == (StatusCode.accepted, 0)
    many = sweep_status(counts_of(["failed"] * 25), list(range(25)))
    assert many.message is not None and "19, …)" in many.message
