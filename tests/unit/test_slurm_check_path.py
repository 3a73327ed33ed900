"""check_path_command run by the local /bin/sh (as on a login node, as the job's user): a readable regular file
gives its physical path; a folder, a missing or unreadable file does not; shell syntax in a path is a name."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hpgc.backends.slurm.commands.check_path import check_path_command, checked_path
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.script import render
from hpgc.models.run import RunSpec


def check(path: str) -> str | None:
    proc = subprocess.run(["/bin/sh", "-c", check_path_command(path)], capture_output=True, text=True, timeout=20)
    return checked_path(proc.returncode, proc.stdout)


def test_a_readable_file_gives_its_physical_path(tmp_path: Path) -> None:
    (tmp_path / "a.tif").write_text("x")
    os.symlink(tmp_path / "a.tif", tmp_path / "link.tif")
    assert check(str(tmp_path / "a.tif")) == str((tmp_path / "a.tif").resolve())
    assert check(str(tmp_path / "link.tif")) == str((tmp_path / "a.tif").resolve())  # no link left to swap
    assert check(str(tmp_path)) is None
    assert check(str(tmp_path / "none")) is None


@pytest.mark.parametrize("name", ["$(touch PWNED)", "`touch PWNED`", "x; touch PWNED", "x' ; touch PWNED; '",
                                  "x\ntouch PWNED", "-rf"])
def test_shell_syntax_in_a_path_is_only_a_name(tmp_path: Path, name: str) -> None:
    os.chdir(tmp_path)
    assert check(str(tmp_path / name)) is None
    (tmp_path / name.replace("\n", "_")).write_text("x")
    if "\n" not in name:
        assert check(str(tmp_path / name)) == str(tmp_path / name)
    assert not (tmp_path / "PWNED").exists()


def test_binds_and_sources_in_the_script_are_quoted() -> None:
    from hpgc.models.run import Container, StagedFile

    cluster = ClusterSettings(host="h", known_hosts="/etc/ssh/known", user="alice", work_root="/data/hpgc",
                              container_runtime="apptainer",
                              image_cache="/data/images")
    spec = RunSpec(job_id="j1", process_id="p", kind="command", argv=["cat", "/data/a b/$(x).tif"],
                   container=Container(image="img.sif"), binds=["/data/a b/$(x).tif"],
                   files=[StagedFile(path="inputs/f_0.tif", source="/data/hpgc/alice/uploads/abc'$(y)")])
    text = render(spec, cluster, "/data/hpgc/alice/j1")
    assert "--bind '/data/a b/$(x).tif:/data/a b/$(x).tif:ro'" in text
    assert "ln -f -- '/data/hpgc/alice/uploads/abc'\"'\"'$(y)' inputs/f_0.tif" in text
    with pytest.raises(Exception, match="cannot be bound"):
        render(spec.model_copy(update={"binds": ["/data/a:b.tif"]}), cluster, "/data/hpgc/alice/j1")


def test_copy_out_writes_whole_files_into_own_folders_only(tmp_path: Path) -> None:
    import hashlib

    from hpgc.backends.slurm.commands.check_path import copied, copy_out_command

    def copy(src: str, folder: Path, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", copy_out_command(src, str(folder), name)], capture_output=True,
                              text=True, timeout=20)

    (tmp_path / "out.tif").write_bytes(b"result")
    dest = tmp_path / "dest"
    dest.mkdir()
    done = copy(str(tmp_path / "out.tif"), dest, "o$(touch PWNED).tif")
    assert copied(done.returncode, done.stdout) == (6, hashlib.sha256(b"result").hexdigest())
    assert (dest / "o$(touch PWNED).tif").read_bytes() == b"result" and not (tmp_path / "PWNED").exists()
    assert [p.name for p in dest.iterdir()] == ["o$(touch PWNED).tif"]  # no part file left
    assert copy("", tmp_path / "missing", "x").returncode == 3
    os.symlink(tmp_path / "out.tif", tmp_path / "link.tif")
    assert copy(str(tmp_path / "link.tif"), dest, "y").returncode == 4
