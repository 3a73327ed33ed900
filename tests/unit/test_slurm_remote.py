"""The programs of hpgc/backends/slurm/commands/ (submit, poll, tails), run by the local /bin/sh against recorded
Slurm answers: stub sacct, squeue and sbatch print what a test says and log how they were called. The expected
outputs are written out."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hpgc.backends.slurm.commands import MARK
from hpgc.backends.slurm.commands.poll import FIELDS, parse_poll, poll_command, poll_input
from hpgc.backends.slurm.commands.private_dir import NOT_PRIVATE, private_dir_command
from hpgc.backends.slurm.commands.submit import parse_submit, submit_command, tar_files
from hpgc.backends.slurm.commands.tails import STDERR_TAIL_BYTES, parse_tails, tails_command, tails_input
from hpgc.backends.slurm.states import ended_badly

STUB = r'''
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
cmd = os.path.basename(sys.argv[0]).removesuffix(".py")
with open(os.path.join(here, "calls"), "a") as f:
    f.write(cmd + " " + " ".join(sys.argv[1:]) + "\n")
conf = json.load(open(os.path.join(here, "conf.json")))
c = conf.get(cmd, {})
if c.get("fail"):
    print(c["fail"], file=sys.stderr)
    sys.exit(1)
args = sys.argv[1:]
def opt(name):
    for i, a in enumerate(args):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name:
            return args[i + 1]
if cmd in ("sacct", "squeue"):
    ids = (opt("-j") or "").split(",")
    name = opt("--name")
    for line in c.get("lines", []):
        if name is not None:
            if line.split("|")[1] == name:
                print(line.split("|")[0])
        elif line.split("|")[0].split(".")[0] in ids:
            print(line)
    sys.exit(c.get("exit", 0))
if cmd == "sbatch":
    script = args[-1]
    job = os.path.basename(os.path.dirname(script))
    answer = c.get(job, "1000")
    if answer.startswith("error:"):
        print("sbatch: " + answer, file=sys.stderr)
        sys.exit(1)
    print(answer)
'''


@pytest.fixture
def slurm(tmp_path: Path) -> Path:
    """A bin/ with stub sacct, squeue, sbatch (configured by bin/conf.json; calls logged in bin/calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "stub.py").write_text(STUB)
    for cmd in ("sacct", "squeue", "sbatch"):  # the stub tells them apart by the name it is run as
        os.symlink(bin_dir / "stub.py", bin_dir / f"{cmd}.py")
        (bin_dir / cmd).write_text(f'#!/bin/sh\nexec {sys.executable} {bin_dir / f"{cmd}.py"} "$@"\n')
        (bin_dir / cmd).chmod(0o755)
    (bin_dir / "conf.json").write_text("{}")
    return bin_dir


def configure(bin_dir: Path, **conf: object) -> None:
    (bin_dir / "conf.json").write_text(json.dumps(conf))


def calls(bin_dir: Path) -> list[str]:
    p = bin_dir / "calls"
    return p.read_text().splitlines() if p.exists() else []


def run(bin_dir: Path, command: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """COMMAND run by the local /bin/sh as hpgc's SSH command would be, with the stubs first on PATH."""
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(bin_dir), "LANG": "C"}
    done = subprocess.run(["/bin/sh", "-c", command], input=stdin, capture_output=True, env=env, timeout=60)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


SACCT_LINES = [
    "101|hpgc-a|COMPLETED|0:0|None|n1|00:00:02|00:00.031||2026-01-01T10:00:00|2026-01-01T10:00:02",
    "101.batch|batch|COMPLETED|0:0||n1|00:00:02|00:00.030|1360K|2026-01-01T10:00:00|2026-01-01T10:00:02",
    "102|hpgc-b|FAILED|3:0|None|n2|00:00:01|00:00.010||2026-01-01T10:00:00|2026-01-01T10:00:01",
    "103|hpgc-c|RUNNING|0:0|None|n1|00:00:05|00:00.001||2026-01-01T10:00:00|Unknown",
    "105|hpgc-e|OUT_OF_MEMORY|0:125|None|n1|00:01:08|00:00.003||2026-01-01T10:00:00|2026-01-01T10:01:08",
    "106|hpgc-f|COMPLETED|1:0|None|n1|00:00:01|00:00.003||2026-01-01T10:00:00|2026-01-01T10:00:01",
    "107|hpgc-g|COMPLETED|0:0|None|n1|00:00:01|00:00.003||2026-01-01T10:00:00|2026-01-01T10:00:01",
    "108|hpgc-h|RUNNING|0:0|None|n1|00:00:01|00:00.003||2026-01-01T10:00:00|Unknown",
    "109|hpgc-i|CANCELLED by 1000|0:15|None|n1|00:00:01|00:00.003||2026-01-01T10:00:00|Unknown",
]


def _jobs(root: Path) -> list[tuple[str, str]]:
    jobs = []
    for i in range(101, 110):
        jd = root / f"j{i}"
        jd.mkdir(parents=True)
        jobs.append((str(i), str(jd)))
    return jobs


def test_poll_reads_sacct_progress_stderr_and_asks_squeue_for_the_rest(slurm: Path, tmp_path: Path) -> None:
    root = tmp_path / "work"
    jobs = _jobs(root)
    (root / "j101" / "progress").write_text("100 done\n")
    (root / "j108" / "progress").write_text("30 tiling\n40 merging\n")  # the last line is the news
    os.mkfifo(root / "j103" / "progress")  # a FIFO is never opened: it would block the poll
    for i, text in [(102, "line one\nline two\n"), (105, "oom\n"), (106, "exit one\n"), (107, "all fine\n"),
                    (108, "running\n"), (109, "cancelled\n")]:
        (root / f"j{i}" / "stderr.log").write_text(text)
    (root / "j101" / "stderr.log").mkdir()  # not a regular file: not read (nor for a failed job)
    configure(slurm, sacct={"lines": SACCT_LINES}, squeue={"lines": ["104|PENDING|Priority|hpgc-d"]})
    done = run(slurm, poll_command(4), poll_input(jobs))
    assert done.returncode == 0, done.stderr
    out = parse_poll(done.stdout)
    assert out.sacct.splitlines() == SACCT_LINES
    assert out.progress == {"101": "100 done", "108": "40 merging"}
    assert out.records()["109"].state == "CANCELLED" and out.queued() == {"104": ("PENDING", "Priority", "hpgc-d")}
    # stderr tails are read by their own command, for the jobs states.py calls failed (tails.py)
    records = out.records()
    failed = [(sid, jd) for sid, jd in jobs
              if sid in records and ended_badly(records[sid].state, records[sid].exit_code)]
    assert [sid for sid, _ in failed] == ["102", "105", "106"]
    tails = run(slurm, tails_command("stderr.log"), tails_input([*failed, ("101", str(root / "j101"))]))
    assert parse_tails(tails.stdout) == {"102": "line one\nline two", "105": "oom", "106": "exit one"}
    assert out.squeue == "104|PENDING|Priority|hpgc-d"
    assert not out.sacct_failed and out.sacct_error == ""
    # nine jobs in chunks of four: three sacct calls; squeue only for the one sacct does not know
    assert calls(slurm) == [
        "sacct --parsable2 --noheader -j 101,102,103,104 --format=" + ",".join(FIELDS),
        "sacct --parsable2 --noheader -j 105,106,107,108 --format=" + ",".join(FIELDS),
        "sacct --parsable2 --noheader -j 109 --format=" + ",".join(FIELDS),
        "squeue --noheader -j 104 --format=%i|%T|%r|%j",
    ]


def test_poll_when_sacct_knows_every_job_asks_nothing_of_squeue(slurm: Path, tmp_path: Path) -> None:
    jobs = _jobs(tmp_path / "work")[:3]
    configure(slurm, sacct={"lines": SACCT_LINES})
    done = run(slurm, poll_command(100), poll_input(jobs))
    out = parse_poll(done.stdout)
    assert out.squeue is None and out.progress == {}
    assert [c.split()[0] for c in calls(slurm)] == ["sacct"]
    assert "-j 101,102,103 " in calls(slurm)[0]


def test_stderr_tail_is_the_last_2000_bytes(slurm: Path, tmp_path: Path) -> None:
    assert STDERR_TAIL_BYTES == 2000
    jobs = _jobs(tmp_path / "work")[1:2]  # 102, FAILED
    (tmp_path / "work" / "j102" / "stderr.log").write_text("A" * 3000 + "\n" + "B" * 10 + "\n")
    out = parse_tails(run(slurm, tails_command("stderr.log"), tails_input(jobs)).stdout)
    assert out == {"102": "A" * 1988 + "\n" + "B" * 10}  # 2000 = 1988 + 1 + 10 + 1


def test_poll_when_sacct_fails(slurm: Path, tmp_path: Path) -> None:
    jobs = _jobs(tmp_path / "work")[:2]
    configure(slurm, sacct={"fail": "sacct: error: Problem talking to the database"},
              squeue={"lines": ["101|RUNNING|None|hpgc-a"]})
    done = run(slurm, poll_command(10), poll_input(jobs))
    assert done.returncode == 0
    out = parse_poll(done.stdout)
    assert out.sacct_failed and out.sacct == ""
    assert out.sacct_error == "sacct: error: Problem talking to the database"
    assert out.squeue == "101|RUNNING|None|hpgc-a"  # both ids are missing from sacct's answer


def test_poll_command_text_does_not_grow_with_the_jobs() -> None:
    """The job list goes on stdin: the command is the same text for 1 or 10,000 jobs (only the chunk size,
    a number of the configuration, is in it) and names no job."""
    few = poll_input([("1", "/w/a/j1")])
    many = poll_input([(str(i), f"/w/a/j{i}") for i in range(10000)])
    assert few == b"1|/w/a/j1\n" and len(many.splitlines()) == 10000
    text = poll_command(500)
    assert text == poll_command(500)
    assert len(poll_command(7)) == len(text) - 2  # '7' instead of '500'
    assert "xargs -n 500 " in text and "/w/a" not in text
    with pytest.raises(ValueError, match="not a Slurm job id"):
        poll_input([("1 x", "/d/a")])


def test_parse_poll_sections_and_markers() -> None:
    m = MARK
    out = parse_poll("\n".join([
        "noise before any section", f"{m} sacct", "101|a", "102|b", f"{m} sacct-err", "warning: x", "warning: y",
        f"{m} files", f"{m} progress 101 42 tiling now", f"{m} stderr 102 one", f"{m} stderr 102 ",
        f"{m} unknown 1 2", "stray file line", f"{m} squeue", "103|PENDING|None|x", "104|RUNNING|None|y"]))
    assert out.sacct == "101|a\n102|b" and out.sacct_error == "warning: x\nwarning: y" and not out.sacct_failed
    assert out.progress == {"101": "42 tiling now"}  # stderr lines are the tails command's, not the poll's
    assert parse_tails(f"{m} stderr 102 one\n{m} stderr 102 \n{m} stderr 103  x \nnoise\n") == {
        "102": "one", "103": "x"}
    assert out.squeue == "103|PENDING|None|x\n104|RUNNING|None|y"
    assert parse_poll(f"{m} sacct\n{m} files\n{m} squeue\n").squeue == ""  # asked, answered nothing
    assert parse_poll(f"{m} sacct\n101|a\n{m} sacct-failed\n").sacct_failed
    only_err = parse_poll(f"{m} sacct\n{m} sacct-err\n  sacct: down  \n{m} files\n")
    assert only_err.sacct_failed and only_err.sacct_error == "sacct: down" and only_err.squeue is None
    assert parse_poll(f"{m}x sacct\n101|a\n").sacct == ""  # not a marker: no section starts


# submit -----------------------------------------------------------------------------------------------
def _tar(rels: list[str], script: bytes = b"#!/bin/bash\ntrue\n") -> bytes:
    return tar_files({f"{rel}/job.sbatch": (script, 0o644) for rel in rels}
                            | {f"{rel}/inputs/a.txt": (b"input", 0o600) for rel in rels})


def test_submit_batch_new_existing_found_busy_and_failed(slurm: Path, tmp_path: Path) -> None:
    root = tmp_path / "work"
    (root / "alice").mkdir(parents=True, mode=0o755)
    done_dir = root / "alice" / "done"
    done_dir.mkdir()
    (done_dir / "slurm_job_id").write_text("77\n")
    (done_dir / "job.sbatch").write_text("# edited on the cluster\n")
    crashed = root / "alice" / "crashed"  # hpgc died after writing the script: Slurm has it by name
    crashed.mkdir()
    (crashed / "job.sbatch").write_text("x")
    waiting = root / "alice" / "waiting"  # an sbatch started a moment ago and has not answered
    waiting.mkdir()
    (waiting / "job.sbatch").write_text("x")
    (waiting / "slurm_job_id").write_text("")
    stale = root / "alice" / "stale"  # an sbatch started an hour ago and never answered: gone
    stale.mkdir()
    (stale / "job.sbatch").write_text("x")
    (stale / "slurm_job_id").write_text("")
    os.utime(stale / "slurm_job_id", (1, 1))
    again = root / "alice" / "again"  # its sbatch failed before: asked by name, then submitted
    again.mkdir()
    (again / "job.sbatch").write_text("x")
    (again / "slurm_job_id").write_text("failed\n")
    configure(slurm, sacct={"lines": ["55|hpgc-crashed"]}, squeue={"lines": []},
              sbatch={"new": "1001", "fed": "1002;fed1", "bad": "error: Invalid account", "stale": "1003",
                      "again": "1004"})
    jobs = [(f"alice/{n}", f"hpgc-{n}") for n in ("new", "done", "crashed", "waiting", "stale", "bad", "fed",
                                                     "again")]
    done = run(slurm, submit_command(str(root), jobs), _tar([rel for rel, _ in jobs]))
    assert done.returncode == 0, done.stderr
    answers = parse_submit(done.stdout)
    assert answers == {
        "alice/new": ("submitted", "1001"), "alice/done": ("existing", "77"), "alice/crashed": ("existing", "55"),
        "alice/waiting": ("busy", "an earlier sbatch of this job may still be waiting for Slurm"),
        "alice/stale": ("submitted", "1003"), "alice/bad": ("failed", "sbatch: error: Invalid account"),
        "alice/fed": ("submitted", "1002"), "alice/again": ("submitted", "1004")}
    assert (root / "alice" / "new" / "slurm_job_id").read_text() == "1001\n"
    assert (root / "alice" / "fed" / "slurm_job_id").read_text() == "1002;fed1\n"  # as sbatch printed it
    assert (crashed / "slurm_job_id").read_text() == "55\n"
    assert (root / "alice" / "bad" / "slurm_job_id").read_text() == "failed\n"
    assert (done_dir / "job.sbatch").read_text() == "# edited on the cluster\n"  # a submitted job is left alone
    assert not (done_dir / "inputs").exists() and not (waiting / "inputs").exists()
    assert (root / "alice" / "new" / "inputs" / "a.txt").read_bytes() == b"input"
    assert (root / "alice").stat().st_mode & 0o777 == 0o700  # the user folder is made private
    assert (root / "alice" / "new" / "inputs" / "a.txt").stat().st_mode & 0o777 == 0o600
    sbatched = [c.split()[-1] for c in calls(slurm) if c.startswith("sbatch")]
    assert sbatched == [f"{root}/alice/{n}/job.sbatch" for n in ("new", "stale", "bad", "fed", "again")]
    assert all(c.startswith("sbatch --parsable ") for c in calls(slurm) if c.startswith("sbatch"))
    lookups = [c for c in calls(slurm) if not c.startswith("sbatch")]
    assert "sacct --parsable2 --noheader -X -S now-60days --name=hpgc-crashed --format=JobID" in lookups
    assert "squeue --noheader --states=all --name=hpgc-crashed --format=%i" in lookups
    assert not [c for c in lookups if "hpgc-new" in c or "hpgc-done" in c]  # no script yet, or an id: no lookup


def test_submit_stops_the_batch_when_slurm_is_retrying(slurm: Path, tmp_path: Path) -> None:
    root = tmp_path / "work"
    root.mkdir()
    configure(slurm, sbatch={"a": "error: Slurm temporarily unable to accept job, sleeping and retrying",
                             "b": "2001"})
    jobs = [("alice/a", "hpgc-a"), ("alice/b", "hpgc-b")]
    done = run(slurm, submit_command(str(root), jobs), _tar(["alice/a", "alice/b"]))
    answers = parse_submit(done.stdout)
    why = "Slurm is not accepting jobs: sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying"
    assert answers == {"alice/a": ("busy", why), "alice/b": ("busy", why)}
    assert len([c for c in calls(slurm) if c.startswith("sbatch")]) == 1


def test_submit_refuses_when_slurm_cannot_say_or_the_folder_is_not_ours(slurm: Path, tmp_path: Path) -> None:
    root = tmp_path / "work"
    (root / "alice" / "x").mkdir(parents=True)
    (root / "alice" / "x" / "job.sbatch").write_text("x")
    (root / "elsewhere").mkdir()
    (root / "mallory").symlink_to(root / "elsewhere")
    configure(slurm, sacct={"fail": "sacct: error: down"})
    jobs = [("alice/x", "hpgc-x"), ("mallory/y", "hpgc-y")]
    done = run(slurm, submit_command(str(root), jobs), _tar(["alice/x", "mallory/y"]))
    assert parse_submit(done.stdout) == {
        "alice/x": ("failed", "Slurm cannot tell whether the job was submitted already; not resubmitting"),
        "mallory/y": ("failed", f"{root}/mallory {NOT_PRIVATE}")}
    assert not [c for c in calls(slurm) if c.startswith("sbatch")]
    assert not (root / "elsewhere" / "y").exists()


def test_submit_tar_failure_is_exit_90(slurm: Path, tmp_path: Path) -> None:
    done = run(slurm, submit_command(str(tmp_path / "w"), [("alice/a", "hpgc-a")]), b"not a tar")
    assert done.returncode == 90 and f"hpgc: cannot write job directories under {tmp_path}/w" in done.stderr


def test_parse_submit() -> None:
    m = MARK
    out = parse_submit("\n".join([
        "noise first", f"{m} submitted a/1 101", f"{m} existing a/2 77 ", f"{m} submitted a/3 notanid",
        f"{m} busy a/4 wait a bit",
        f"{m} failed a/5 sbatch: error: x", f"{m} failed a/6", f"{m} weird a/7 1", "noise", f"{m}submitted a/8 1",
        f" {m} submitted a/9 1"]))
    assert out == {"a/1": ("submitted", "101"), "a/2": ("existing", "77"), "a/4": ("busy", "wait a bit"),
                   "a/5": ("failed", "sbatch: error: x"), "a/6": ("failed", "")}


def test_tar_files_keeps_paths_contents_and_modes() -> None:
    data = tar_files({"a/job.sbatch": (b"#!/bin/bash\n", 0o644), "a/bin/tool": (b"x" * 10, 0o755)})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: (m.mode, m.size, tar.extractfile(m).read()) for m in tar.getmembers()}  # type: ignore[union-attr]
    assert members == {"a/job.sbatch": (0o644, 12, b"#!/bin/bash\n"), "a/bin/tool": (0o755, 10, b"x" * 10)}


def test_private_dir_command_text() -> None:
    assert "private /data/X/alice ||" in private_dir_command("/data/X/", "alice")
    text = private_dir_command("/w/", "alice")
    assert text.startswith("umask 077\n")
    assert "private /w/alice || { echo \"hpgc: \"/w/alice\" is not a folder owned" in text
    assert "exit 3; }" in text
