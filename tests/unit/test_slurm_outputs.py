"""Real Slurm outputs, recorded per version in tests/data/slurm/<version>/, through the parsers and the state
mapping: what each job looks like to a user. The expected values are written out, not taken from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpgc.backends.slurm.commands.poll import parse_sacct, parse_squeue
from hpgc.backends.slurm.jobid import SlurmJobId
from hpgc.backends.slurm.states import ended_badly, to_status
from hpgc.models.ogc import StatusCode

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"
VERSIONS = sorted(p.name for p in DATA.iterdir() if p.is_dir())

# job id → (status, message, exit code, worth its stderr)
EXPECTED = {
    "52": (StatusCode.successful, "finished", 0, False),
    "53": (StatusCode.failed, "the job exited with code 3", 3, True),
    "55": (StatusCode.dismissed, "cancelled in Slurm", 0, False),
    "56": (StatusCode.failed, "TIMEOUT: the job ran over its time limit and Slurm stopped it", 0, True),
    "54_0": (StatusCode.successful, "finished", 0, False),
    "54_2": (StatusCode.successful, "finished", 0, False),
    "57_1": (StatusCode.failed, "the job exited with code 3", 3, True),
    "61+0": (StatusCode.successful, "finished", 0, False),
    "61+1": (StatusCode.successful, "finished", 0, False),
    "63": (StatusCode.accepted, "queued in Slurm: PENDING", None, False),
}
# what a version prints differently (docs/slurm.md, "Slurm versions")
PER_VERSION = {
    # sacct 22.05 gives a pending job's Reason (24.11 says None there), and hpgc passes it on
    "22.05": {"63": (StatusCode.accepted, "queued in Slurm: PENDING (BeginTime)", None, False)},
}


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_sacct_answers(version: str) -> None:
    records = parse_sacct((DATA / version / "sacct.txt").read_text())
    assert sorted(records) == sorted(["52", "53", "55", "56", "54_0", "54_1", "54_2", "57_0", "57_1", "61+0", "61+1",
                                      "63"])
    for job_id, (status, message, code, bad) in {**EXPECTED, **PER_VERSION.get(version, {})}.items():
        rec = records[job_id]
        st = to_status(rec.state, rec.exit_code, rec.signal, rec.reason, "", rec.accounting)
        assert (st.status, st.message) == (status, message), job_id
        assert (st.exit_code if status != StatusCode.accepted else None) == code, job_id
        assert ended_badly(rec.state, rec.exit_code) == bad, job_id
    # the recording's own values (memory, nodes) differ between runs, not their form
    assert records["55"].state == "CANCELLED" and records["56"].accounting["MaxRSS"].endswith("K")
    assert records["57_1"].reason == "JobArrayTaskLimit"
    assert records["61+1"].accounting["NodeList"] in ("node1", "node2")
    assert records["63"].accounting == {} and records["63"].name == "s-pend"  # no run time for a job not started


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_squeue_answers(version: str) -> None:
    queued = parse_squeue((DATA / version / "squeue.txt").read_text())
    # 22.05 and 26.05 start a het job at the next backfill cycle: it may still be queued when squeue is recorded
    het = {k: v for k, v in queued.items() if k.startswith("61+")}
    assert all(v == ("PENDING", "None", "s-het") for v in het.values())
    pending = ("PENDING", "BeginTime", "s-arrp")
    assert {k: v for k, v in queued.items() if k not in het} == {
        "64_[0-3%1]": pending, "63": ("PENDING", "BeginTime", "s-pend"), "56": ("RUNNING", "None", "s-timeout"),
        "64_0": pending, "64_1": pending, "64_2": pending, "64_3": pending}  # the range's tasks
    assert SlurmJobId.parse("64_[0-3%1]").is_array


def test_every_tested_version_is_recorded() -> None:
    assert {"22.05", "24.11", "26.05"} <= set(VERSIONS)
