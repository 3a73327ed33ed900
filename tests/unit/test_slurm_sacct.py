"""Slurm's output parsed (sacct, squeue and sbatch lines, job ids); Slurm state → OGC status."""

from __future__ import annotations

import pytest

from hpgc.backends.slurm.commands import MARK
from hpgc.backends.slurm.commands.cancel import cancel_command, cancelled
from hpgc.backends.slurm.commands.poll import FIELDS, _rss_kb, exit_code, parse_poll, parse_sacct, parse_squeue
from hpgc.backends.slurm.jobid import SlurmJobId
from hpgc.backends.slurm.states import ended_badly, to_status
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


def test_ids_are_checked_before_a_command_line() -> None:
    assert str(SlurmJobId.parse("1;rm")) == "1"  # a federation suffix never reaches a command line
    for bad in ["x", "", "1 2", "1; rm -rf /", "-1", "1.batch", "1_", "1+", "1_[", "$(id)"]:
        with pytest.raises(ValueError, match="not a Slurm job id"):
            SlurmJobId.parse(bad)
    assert cancel_command(SlurmJobId.parse("7"), "hpgc-x") == "scancel 7"
    assert cancel_command(None, "hpgc-a b") == "scancel --name='hpgc-a b'"
    assert cancelled(0, "") and cancelled(1, "scancel: error: Job/step already completing or completed")
    assert not cancelled(1, "scancel: error: Invalid job id specified")


def test_sacct_parse() -> None:
    recs = parse_sacct(SACCT)
    assert set(recs) == {"101", "102", "103", "104", "105", "106"}
    assert recs["101"].state == "COMPLETED" and recs["101"].exit_code == 0 and recs["101"].name == "hpgc-a"
    assert recs["101"].accounting == {"NodeList": "node1", "Elapsed": "00:00:02", "TotalCPU": "00:00.031",
                                      "MaxRSS": "1360K", "Start": "2026-01-01T10:00:00",
                                      "End": "2026-01-01T10:00:02"}
    assert recs["102"].exit_code == 3 and recs["102"].accounting["MaxRSS"] == "2560K"
    assert recs["103"].state == "CANCELLED" and recs["103"].signal == 15
    assert recs["104"].reason == "Priority" and "NodeList" not in recs["104"].accounting
    assert recs["105"].accounting["MaxRSS"] == f"{1024**2}K"


def test_sbatch_output_gives_its_id() -> None:
    assert SlurmJobId.find("123\n") == SlurmJobId("123")
    assert SlurmJobId.find("sbatch: warning: x\n456;cluster\n") == SlurmJobId("456", cluster="cluster")
    assert str(SlurmJobId.find("456;cluster")) == "456"
    assert SlurmJobId.find("sbatch: error: Batch job submission failed") is None


def test_squeue_parse() -> None:
    assert parse_squeue("7|PENDING|Priority|hpgc-a\n8|RUNNING|None|x|y\n9|RUNNING\nbad\nx1|RUNNING|None|n\n") == {
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
        "200_1|hpgc-v|RUNNING|0:0|None|n1|00:00:01|00:00:00||x|y",  # an array task
        "201|hpgc-x|RUNNING|0:0|None|Unknown|00:00:01|00:00:00||None assigned|Unknown",
        "201.batch|batch|RUNNING|0:0||n1|00:00:01|00:00:00|10K|x|y",
        "201.0|step|RUNNING|0:0||n1|00:00:01|00:00:00|3M|x|y",
        "201.1|step|RUNNING|0:0||n1|00:00:01|00:00:00||x|y",
        "999.batch|batch|RUNNING|0:0||n1|00:00:01|00:00:00|5M|x|y",  # a step of a job not in the answer
        "202_1|hpgc-y|RUNNING|0:0|None|n1|00:00:01|00:00:00||x|y",  # an array task
        "203|hpgc-z|PENDING|0:0|Priority|None assigned|00:00:00|00:00:00||Unknown",  # one field short
        "204|hpgc-w|PENDING|0:0|Priority|n1|00:00:00|00:00:00||x|y|extra",  # one field too many
    ])
    recs = parse_sacct(text)
    assert set(recs) == {"200_1", "201", "202_1"}  # array tasks are jobs too (jobid.py)
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


def test_which_ends_are_worth_their_stderr() -> None:
    bad = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED",
           "SPECIAL_EXIT"}
    for state in [*bad, "COMPLETED", "CANCELLED", "RUNNING", "PENDING", "WEIRD"]:
        assert ended_badly(state, 0) == (state in bad), state
    assert ended_badly("COMPLETED", 1) and not ended_badly("COMPLETED", None)


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
        f"{MARK} sacct", "101|hpgc-a|RUNNING|0:0||node1|0|0||x|Unknown",
        f"{MARK} files", f"{MARK} progress 101 42 tiling", f"{MARK} squeue", "103|PENDING|None",
    ])
    p = parse_poll(out)
    assert p.sacct.startswith("101|") and not p.sacct_failed
    assert p.progress == {"101": "42 tiling"}
    assert p.squeue == "103|PENDING|None"
    assert p.queued() == {"103": ("PENDING", "None", "")}
    p = parse_poll(f"{MARK} sacct\n{MARK} sacct-err\nsacct: error: x\n{MARK} files\n")
    assert p.sacct_failed and p.squeue is None


def test_sacct_fields_and_job_ids() -> None:
    assert ",".join(FIELDS) == "JobID,JobName,State,ExitCode,Reason,NodeList,Elapsed,TotalCPU,MaxRSS,Start,End"
    assert SlurmJobId.find("  123  \n\n") == SlurmJobId("123")
    assert SlurmJobId.find("warn\n124;c\n") == SlurmJobId("124", cluster="c")
    for bad in ("", "   \n", "12a", "-1", "x;123", "124 ; c"):
        assert SlurmJobId.find(bad) is None, bad
    with pytest.raises(ValueError) as err:
        SlurmJobId.parse("x" * 300)
    assert str(err.value) == f"not a Slurm job id: {'x' * 100!r}"
    with pytest.raises(ValueError, match="not a Slurm job id: '1 2'"):
        SlurmJobId.parse(" 1 2 ")


# Every form of id Slurm prints, and what commands get of it: the one module that knows them is jobid.py.
@pytest.mark.parametrize(("text", "job", "task", "het", "cluster", "as_text"), [
    ("123", "123", None, None, None, "123"),
    ("123_4", "123", "4", None, None, "123_4"),
    ("123_[0-9]", "123", "[0-9]", None, None, "123_[0-9]"),
    ("123_[1,3-5%2]", "123", "[1,3-5%2]", None, None, "123_[1,3-5%2]"),
    ("123+0", "123", None, "0", None, "123+0"),
    ("123;fed2", "123", None, None, "fed2", "123"),
    (" 77\n", "77", None, None, None, "77"),
])
def test_slurm_job_ids(text: str, job: str, task: str | None, het: str | None, cluster: str | None,
                       as_text: str) -> None:
    sid = SlurmJobId.parse(text)
    assert (sid.job, sid.task, sid.het, sid.cluster, str(sid)) == (job, task, het, cluster, as_text)
    assert sid.is_array == (task is not None and task.startswith("["))


def test_external_ids() -> None:
    from hpgc.backends.slurm.jobid import external_id, parse_external_id, split_step

    assert external_id("c1", SlurmJobId.parse("5_2;x")) == "c1:5_2"
    assert parse_external_id("c1:5_2") == ("c1", SlurmJobId("5", "2"))
    assert parse_external_id("a:b:7") == ("a:b", SlurmJobId("7"))
    assert parse_external_id("c1:junk") == ("c1", None)
    assert parse_external_id(None) == (None, None) and parse_external_id("") == (None, None)
    assert split_step("123_4.batch") == ("123_4", "batch") and split_step("9") == ("9", "")
