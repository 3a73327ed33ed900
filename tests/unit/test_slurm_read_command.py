"""read_command and private_dir_command, run by the local /bin/sh on a scratch job directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hpgc.backends.slurm.commands.private_dir import private_dir_command
from hpgc.backends.slurm.commands.read_file import FILE_MISSING, read_command


def sh(command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=20)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    jd = tmp_path / "alice" / "job1"
    (jd / "out").mkdir(parents=True)
    (jd / "out" / "a.txt").write_bytes(b"0123456789")
    (tmp_path / "secret").write_text("secret")
    return tmp_path


def read(root: Path, rel: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return sh(read_command(str(root), ["alice", "job1", *rel.split("/")], **kw))  # type: ignore[arg-type]


def test_regular_file_whole_range_tail_and_size(root: Path) -> None:
    assert read(root, "out/a.txt").stdout == b"0123456789"
    assert read(root, "out/a.txt", offset=3, length=4).stdout == b"3456"
    assert read(root, "out/a.txt", offset=20).stdout == b""
    assert read(root, "out/a.txt", tail=3).stdout == b"789"
    assert read(root, "out/a.txt", size_only=True).stdout == b"10\n"
    assert read(root, "out/a.txt", max_bytes=5).returncode == 3


def test_missing_is_exit_2(root: Path) -> None:
    assert read(root, "out/none").returncode == FILE_MISSING
    assert read(root, "nodir/none").returncode == FILE_MISSING


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "dir-symlink", "dir"])
def test_refused(root: Path, kind: str) -> None:
    jd = root / "alice" / "job1"
    rel = "out/x"
    if kind == "symlink":
        (jd / "out" / "x").symlink_to(root / "secret")
    elif kind == "hardlink":
        os.link(root / "secret", jd / "out" / "x")
    elif kind == "fifo":
        os.mkfifo(jd / "out" / "x")
    elif kind == "dir":
        (jd / "out" / "x").mkdir()
    else:
        (jd / "link").symlink_to(root)
        rel = "link/secret"
    for kw in ({}, {"size_only": True}):
        done = read(root, rel, **kw)
        assert done.returncode == 3 and done.stdout == b"" and b"hpgc:" in done.stderr, (kind, done)


def test_job_dir_swapped_for_a_symlink_is_refused(root: Path) -> None:
    (root / "bob").mkdir()
    (root / "bob" / "job1").symlink_to(root / "alice" / "job1")
    done = sh(read_command(str(root), ["bob", "job1", "out", "a.txt"]))
    assert done.returncode == 3 and done.stdout == b""


def test_private_dir_is_made_0700_and_a_foreign_or_symlinked_one_refused(tmp_path: Path) -> None:
    assert sh(private_dir_command(str(tmp_path), "alice")).returncode == 0
    assert (tmp_path / "alice").stat().st_mode & 0o777 == 0o700
    (tmp_path / "bob").chmod(0o755) if (tmp_path / "bob").exists() else (tmp_path / "bob").mkdir(0o755)
    assert sh(private_dir_command(str(tmp_path), "bob")).returncode == 0
    assert (tmp_path / "bob").stat().st_mode & 0o777 == 0o700
    (tmp_path / "carol").symlink_to(tmp_path / "alice")
    done = sh(private_dir_command(str(tmp_path), "carol"))
    assert done.returncode == 3 and b"not a folder owned by this account" in done.stderr


def test_reads_leave_stderr_empty_and_refuse_bad_components(root: Path) -> None:
    for kw in ({}, {"size_only": True}, {"offset": 2, "length": 3}, {"tail": 4}):
        done = read(root, "out/a.txt", **kw)
        assert done.returncode == 0 and done.stderr == b"", (kw, done)
    assert read(root, "out/a.txt", offset=2, length=3).stdout == b"234"
    assert read(root, "out/a.txt", tail=30).stdout == b"0123456789"
    assert read(root, "out/a.txt", max_bytes=10).stdout == b"0123456789"
    over = read(root, "out/a.txt", max_bytes=9)
    assert (over.returncode, over.stdout, over.stderr) == (3, b"", b"hpgc: a.txt is larger than 9 bytes\n")
    for bad in ["", ".", "..", "a/b", "a\0b"]:
        with pytest.raises(ValueError, match=r"^bad path component"):
            read_command(str(root), ["alice", bad, "x"])
        with pytest.raises(ValueError, match=r"^bad path component"):
            read_command(str(root), ["alice", "job1", bad])
    missing_root = sh(read_command(str(root / "nope"), ["alice", "job1", "out", "a.txt"]))
    assert (missing_root.returncode, missing_root.stderr) == (FILE_MISSING, b"hpgc: the work root is missing\n")
