"""Slurm command lines and their parsers; Slurm state → OGC status."""

from __future__ import annotations

import pytest

from hpgc.backends.slurm import remote
from hpgc.backends.slurm.sacct import (
    TERMINAL,
    Sacct,
    Sbatch,
    Scancel,
    Squeue,
    _rss_kb,
    check_ids,
    exit_code,
    to_status,
)
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
    assert Squeue.parse("7|PENDING|Priority|hpgc-a\n8|RUNNING|None|x|y\n9|RUNNING\nbad\nx1|RUNNING|None|n\n") == {
        "7": ("PENDING", "Priority", "hpgc-a"), "8": ("RUNNING", "None", "x|y"), "9": ("RUNNING", "", "")}


def test_exit_code() -> None:
    assert exit_code("3:0") == (3, 0)
    assert exit_code("0:9") == (0, 9)
    assert exit_code("1:15") == (1, 15)
    assert exit_code("3") == (3, 0)
    assert exit_code("3:") == (3, 0)
    assert exit_code("") == (None, None)
    assert exit_code("x:1") == (None, None) and exit_code("1:y") == (None, None)


@pytest.mark.parametrize(("text", "kb"), [
    ("1360K", 1360), ("2.5M", 2560), ("1G", 1024**2), ("2T", 2 * 1024**3), ("4096", 4), ("1023", 0),
    (" 12K ", 12), ("", 0), ("abcK", 0), ("x", 0),
])
def test_rss_kb(text: str, kb: int) -> None:
    assert _rss_kb(text) == kb


def test_sacct_parse_edge_cases() -> None:
    text = "\n".join([
        "998.batch|batch|RUNNING|0:0||n1|00:00:01|00:00:00|5M|x|y",  # a step of a job not in the answer
        "200_1|hpgc-v|RUNNING|0:0|None|n1|00:00:01|00:00:00||x|y",  # an array task: not an hpgc job id
        "201|hpgc-x|RUNNING|0:0|None|Unknown|00:00:01|00:00:00||None assigned|Unknown",
        "201.batch|batch|RUNNING|0:0||n1|00:00:01|00:00:00|10K|x|y",
        "201.0|step|RUNNING|0:0||n1|00:00:01|00:00:00|3M|x|y",
        "201.1|step|RUNNING|0:0||n1|00:00:01|00:00:00||x|y",
        "999.batch|batch|RUNNING|0:0||n1|00:00:01|00:00:00|5M|x|y",  # a step of a job not in the answer
        "202_1|hpgc-y|RUNNING|0:0|None|n1|00:00:01|00:00:00||x|y",  # an array task: not an hpgc job id
        "203|hpgc-z|PENDING|0:0|Priority|None assigned|00:00:00|00:00:00||Unknown",  # one field short
        "204|hpgc-w|PENDING|0:0|Priority|n1|00:00:00|00:00:00||x|y|extra",  # one field too many
    ])
    recs = Sacct.parse(text)
    assert set(recs) == {"201"}
    assert recs["201"].accounting == {"Elapsed": "00:00:01", "TotalCPU": "00:00:00", "MaxRSS": "3072K"}
    r = recs["201"]
    assert (r.job_id, r.reason, r.name, r.signal) == ("201", "None", "hpgc-x", 0)


A, R, S, F, D = (StatusCode.accepted, StatusCode.running, StatusCode.successful, StatusCode.failed,
                 StatusCode.dismissed)


# Every Slurm job state (sacct's State, ExitCode as code and signal) → OGC status and message, written out.
@pytest.mark.parametrize(("state", "code", "sig", "status", "message"), [
    ("PENDING", 0, 0, A, "queued in Slurm: PENDING"),
    ("REQUEUED", 0, 0, A, "queued in Slurm: REQUEUED"),
    ("REQUEUE_HOLD", 0, 0, A, "queued in Slurm: REQUEUE_HOLD"),
    ("REQUEUE_FED", 0, 0, A, "queued in Slurm: REQUEUE_FED"),
    ("RESV_DEL_HOLD", 0, 0, A, "queued in Slurm: RESV_DEL_HOLD"),
    ("RUNNING", 0, 0, R, "running in Slurm (RUNNING)"),
    ("COMPLETING", 0, 0, R, "running in Slurm (COMPLETING)"),
    ("CONFIGURING", 0, 0, R, "running in Slurm (CONFIGURING)"),
    ("SUSPENDED", 0, 0, R, "running in Slurm (SUSPENDED)"),
    ("STOPPED", 0, 0, R, "running in Slurm (STOPPED)"),
    ("STAGE_OUT", 0, 0, R, "running in Slurm (STAGE_OUT)"),
    ("SIGNALING", 0, 0, R, "running in Slurm (SIGNALING)"),
    ("RESIZING", 0, 0, R, "running in Slurm (RESIZING)"),
    ("POWER_UP_NODE", 0, 0, R, "running in Slurm (POWER_UP_NODE)"),
    ("UPDATE_DB", 0, 0, R, "running in Slurm (UPDATE_DB)"),
    ("COMPLETED", 0, 0, S, "finished"),
    ("COMPLETED", 1, 0, F, "the job exited with code 1"),
    ("COMPLETED", 2, 9, F, "the job exited with code 2 (signal 9)"),
    ("FAILED", 3, 0, F, "the job exited with code 3"),
    ("FAILED", 0, 9, F, "the job failed (signal 9)"),
    ("FAILED", 0, 0, F, "the job failed"),
    ("TIMEOUT", 0, 15, F, "TIMEOUT: the job ran over its time limit and Slurm stopped it"),
    ("OUT_OF_MEMORY", 0, 125, F, "OUT_OF_MEMORY: the job ran out of memory and Slurm stopped it"),
    ("OUT_OF_MEMORY", 137, 0, F, "OUT_OF_MEMORY: the job ran out of memory and Slurm stopped it; exit code 137"),
    ("NODE_FAIL", 0, 0, F, "NODE_FAIL: a compute node running the job failed"),
    ("BOOT_FAIL", 0, 0, F, "BOOT_FAIL: the compute node could not be booted for the job"),
    ("DEADLINE", 0, 0, F, "DEADLINE: the job could not finish before its deadline"),
    ("PREEMPTED", 0, 0, F, "PREEMPTED: the job was preempted by a higher-priority job"),
    ("REVOKED", 0, 0, F, "REVOKED: the job was revoked (federation)"),
    ("SPECIAL_EXIT", 0, 0, F, "SPECIAL_EXIT: the job ended in Slurm's SPECIAL_EXIT state"),
    ("CANCELLED", 0, 15, D, "cancelled in Slurm"),
    ("WEIRD_NEW_STATE", 0, 0, R, "Slurm state WEIRD_NEW_STATE"),  # unknown: still active, said as it is
])
def test_state_mapping(state: str, code: int, sig: int, status: StatusCode, message: str) -> None:
    st = to_status(state, code, sig)
    assert (st.status, st.message) == (status, message)
    assert st.details == ({"slurm_state": state, "signal": sig} if sig else {"slurm_state": state})
    assert st.progress == (100 if status == S else None)
    if status in (S, F, D):
        assert st.exit_code == code
    else:
        assert st.exit_code is None


def test_terminal_states() -> None:
    expected = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"}
    assert sorted(TERMINAL) == sorted(expected)


def test_completed_with_unknown_exit_code_is_successful() -> None:
    st = to_status("COMPLETED", None, None)
    assert (st.status, st.exit_code, st.message) == (S, 0, "finished")


def test_reason_and_details() -> None:
    assert to_status("PENDING", reason="None").message == "queued in Slurm: PENDING"
    assert to_status("PENDING", reason="").message == "queued in Slurm: PENDING"
    assert to_status("REQUEUED", reason="BeginTime").message == "queued in Slurm: REQUEUED (BeginTime)"
    assert to_status("RUNNING", reason="Priority").message == "running in Slurm (RUNNING)"
    st = to_status("NODE_FAIL", 0, 0, stderr_tail="lost", accounting={"NodeList": "n1"})
    assert st.message == "NODE_FAIL: a compute node running the job failed. stderr: lost"
    assert st.details == {"slurm_state": "NODE_FAIL", "NodeList": "n1", "stderr_tail": "lost"}
    st = to_status("COMPLETED", 0, 0, stderr_tail="warnings only")
    assert st.message == "finished" and "stderr_tail" not in st.details
    st = to_status("CANCELLED", 0, 15, stderr_tail="x")
    assert st.message == "cancelled in Slurm" and "stderr_tail" not in st.details


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


def test_sacct_fields_and_full_command() -> None:
    assert Sacct(["7"]).command() == ("sacct --parsable2 --noheader -j 7 --format=JobID,JobName,State,ExitCode,"
                                      "Reason,NodeList,Elapsed,TotalCPU,MaxRSS,Start,End")
    assert Sbatch("/d/my job/job.sbatch").command() == "sbatch --parsable '/d/my job/job.sbatch'"
    assert Sbatch.parse("  123  \n\n") == "123"
    assert Sbatch.parse("warn\n124 ; c\n") == "124"
    for bad in ("", "   \n", "12a", "-1", "x;123"):
        with pytest.raises(ValueError, match="sbatch printed no job id"):
            Sbatch.parse(bad)
    with pytest.raises(ValueError) as err:
        Sbatch.parse("x" * 300)
    assert str(err.value) == f"sbatch printed no job id: {'x' * 200!r}"
    assert Squeue(["5", "6"]).command() == "squeue --noheader -j 5,6 --format='%i|%T|%r|%j'"
    assert check_ids(["1", "23"]) == ["1", "23"]
    with pytest.raises(ValueError, match="not a Slurm job id: '1 '"):
        check_ids(["1", "1 "])
