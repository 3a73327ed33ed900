"""Completion notices (commands/follow.py): the job script's EXIT trap, and the follower's parser of what
the followed events file gives — the file is the account's own, so anything may be written into it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hpgc.backends.slurm.commands import MARK
from hpgc.backends.slurm.commands.follow import events_path, notice_trap, parse_notices


def test_the_trap_appends_the_jobs_id_and_exit_code_whatever_ends_the_script(tmp_path: Path) -> None:
    events = tmp_path / "we'ird $(dir)" / ".hpgc-events"
    events.parent.mkdir()
    for body, code in (("true", 0), ("exit 3", 3), ("false; exit", 1), ("cd /nonexistent || exit 7", 7)):
        subprocess.run(["bash", "-c", f"{notice_trap(str(events))}\n{body}"], env={"SLURM_JOB_ID": "42_1"},
                       check=False)
        assert events.read_text().splitlines()[-1] == f"42_1 {code}"
    assert not (tmp_path / "dir").exists()


def test_notices_are_parsed_and_junk_is_skipped() -> None:
    text = "\n".join([f"{MARK} following", f"{MARK} done 123 0", f"{MARK} done 124_7 1", f"{MARK} beat",
                      f"{MARK} done ; rm -rf / 0", f"{MARK} done", "noise", f"{MARK} done 99999999999999999999x 0",
                      f"{MARK} elsewhere 5"])
    assert parse_notices(text) == [("following", ""), ("done", "123"), ("done", "124_7"), ("beat", "")]


def test_the_events_file_is_in_the_identitys_folder() -> None:
    assert events_path("/data/hpgc/", "alice") == "/data/hpgc/alice/.hpgc-events"
