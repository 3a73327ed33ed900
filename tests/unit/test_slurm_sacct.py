"""Slurm command lines and their parsers; Slurm state → OGC status."""

from __future__ import annotations

import pytest

from hpgc.backends.slurm import remote
from hpgc.backends.slurm.sacct import FAILED, Sacct, Sbatch, Scancel, Squeue, exit_code, to_status
from hpgc.models.ogc import StatusCode

SACCT = """\
101|hpgc-a|COMPLETED|0:0||node1|00:00:02|00:00.031||2026-01-01T10:00:00|2026-01-01T10:00:02
101.batch|batch|COMPLETED|0:0||node1|00:00:02|00:00.030|1360K|2026-01-01T10:00:00|2026-01-01T10:00:02
101.extern|extern|COMPLETED|0:0||node1|00:00:02|00:00:00|900K|2026-01-01T10:00:00|2026-01-01T10:00:02
102|hpgc-b|FAILED|3:0||node2|00:00:01|00:00.010||2026-01-01T10:00:00|2026-01-01T10:00:01
102.batch|batch|FAILED|3:0||node2|00:00:01|00:00.010|2.5M|2026-01-01T10:00:00|2026-01-01T10:00:01
103|hpgc-c|CANCELLED by 1000|0:15||node1|00:00:05|00:00.001||2026-01-01T10:00:00|2026-01-01T10:00:05
104|hpgc-d|PENDING|0:0|Priority|None assigned|00:00:00|00:00:00||Unknown|Unknown
105|hpgc-e|TIMEOUT|0:0||node1|00:01:08|00:00.003||2026-01-01T10:00:00|2026-01-01T10:01:08
105.batch|batch|CANCELLED|0:15||node1|00:01:09|00:00.003|1G|2026-01-01T10:00:00|2026-01-01T10:01:09
garbage line
106|hpgc-f|RUNNING|0:0||node2|00:00:03|00:00:00||2026-01-01T10:00:00|Unknown
"""


def test_sacct_command_and_ids_checked() -> None:
    cmd = Sacct(["1", "22"]).command()
    assert cmd.startswith("sacct --parsable2 --noheader -j 1,22 --format=JobID,JobName,State,ExitCode")
    for bad in ["1;rm", "x", "", "1 2"]:
        with pytest.raises(ValueError):
            Sacct([bad]).command()
    with pytest.raises(ValueError):
        Scancel("1; rm -rf /").command()
    assert Scancel("7").command() == "scancel 7"
    assert Squeue(["5"]).command() == "squeue --noheader -j 5 --format='%i|%T|%r|%j'"


def test_sacct_parse() -> None:
    recs = Sacct.parse(SACCT)
    assert set(recs) == {"101", "102", "103", "104", "105", "106"}
    assert recs["101"].state == "COMPLETED" and recs["101"].exit_code == 0 and recs["101"].name == "hpgc-a"
    assert recs["101"].accounting == {"NodeList": "node1", "Elapsed": "00:00:02", "TotalCPU": "00:00.031",
                                      "MaxRSS": "1360K", "Start": "2026-01-01T10:00:00",
                                      "End": "2026-01-01T10:00:02"}
    assert recs["102"].exit_code == 3 and recs["102"].accounting["MaxRSS"] == "2560K"
    assert recs["103"].state == "CANCELLED" and recs["103"].signal == 15
    assert recs["104"].reason == "Priority" and "NodeList" not in recs["104"].accounting
    assert recs["105"].accounting["MaxRSS"] == f"{1024**2}K"


def test_sbatch_parse() -> None:
    assert Sbatch.parse("123\n") == "123"
    assert Sbatch.parse("sbatch: warning: x\n456;cluster\n") == "456"
    with pytest.raises(ValueError):
        Sbatch.parse("sbatch: error: Batch job submission failed")
    assert Sbatch("/d/j/job.sbatch").command() == "sbatch --parsable /d/j/job.sbatch"


def test_squeue_parse() -> None:
    assert Squeue.parse("7|PENDING|Priority|hpgc-a\n8|RUNNING|None|x|y\n9|RUNNING\nbad\n") == {
        "7": ("PENDING", "Priority", "hpgc-a"), "8": ("RUNNING", "None", "x|y"), "9": ("RUNNING", "", "")}


def test_exit_code() -> None:
    assert exit_code("3:0") == (3, 0)
    assert exit_code("0:9") == (0, 9)
    assert exit_code("") == (None, None)


@pytest.mark.parametrize(("state", "expected"), [
    ("PENDING", StatusCode.accepted), ("REQUEUED", StatusCode.accepted),
    ("RUNNING", StatusCode.running), ("COMPLETING", StatusCode.running), ("CONFIGURING", StatusCode.running),
    ("SUSPENDED", StatusCode.running), ("CANCELLED", StatusCode.dismissed),
    *((s, StatusCode.failed) for s in FAILED),
])
def test_state_mapping(state: str, expected: StatusCode) -> None:
    st = to_status(state, 0)
    assert st.status == expected
    assert st.details["slurm_state"] == state
    if state in FAILED and state != "FAILED":
        assert st.message is not None and st.message.startswith(state)


def test_failed_messages_say_why() -> None:
    st = to_status("COMPLETED", 0, accounting={"NodeList": "node1"})
    assert st.status == StatusCode.successful and st.progress == 100 and st.details["NodeList"] == "node1"
    st = to_status("FAILED", 3, stderr_tail="boom")
    assert st.status == StatusCode.failed and st.exit_code == 3
    assert st.message == "the job exited with code 3. stderr: boom" and st.details["stderr_tail"] == "boom"
    st = to_status("TIMEOUT", 0, 15)
    assert st.message is not None and st.message.startswith("TIMEOUT: the job ran over its time limit")
    st = to_status("OUT_OF_MEMORY", 137)
    assert "OUT_OF_MEMORY" in (st.message or "") and "exit code 137" in (st.message or "")
    assert to_status("FAILED", 0, 9).message == "the job failed (signal 9)"
    assert to_status("PENDING", reason="Resources").message == "queued in Slurm: PENDING (Resources)"
    assert to_status("WEIRD_NEW_STATE").status == StatusCode.running


def test_parse_poll_sections() -> None:
    out = "\n".join([
        f"{remote.MARK} sacct", "101|hpgc-a|RUNNING|0:0||node1|0|0||x|Unknown",
        f"{remote.MARK} files", f"{remote.MARK} progress 101 42 tiling", f"{remote.MARK} stderr 102 line one",
        f"{remote.MARK} stderr 102 line two", f"{remote.MARK} squeue", "103|PENDING|None",
    ])
    p = remote.parse_poll(out)
    assert p.sacct.startswith("101|") and not p.sacct_failed
    assert p.progress == {"101": "42 tiling"}
    assert p.stderr == {"102": ["line one", "line two"]}
    assert p.squeue == "103|PENDING|None"
    p = remote.parse_poll(f"{remote.MARK} sacct\n{remote.MARK} sacct-err\nsacct: error: x\n{remote.MARK} files\n")
    assert p.sacct_failed and p.squeue is None


def test_poll_command_has_fixed_size() -> None:
    assert "sacct" in remote.poll_command(500)
    small = remote.poll_input([("1", "/d/a")])
    assert small == b"1|/d/a\n"
    with pytest.raises(ValueError):
        remote.poll_input([("1;x", "/d/a")])
