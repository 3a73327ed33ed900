"""The local backend's trust level: a minimal job environment, only safe files served, private permissions,
and deploy there an admin's decision."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from hpgc.auth.principal import InsufficientScope, Principal
from hpgc.backends.base import BackendError
from hpgc.backends.jobfiles import UnsafeFile, named_inside, read_inside, size_inside, write_inside
from hpgc.backends.local.backend import LocalBackend
from hpgc.backends.local.environment import job_environment
from hpgc.backends.local.settings import LocalBackendSettings
from hpgc.config import ConfigError, load_settings
from hpgc.datadir import secure_data_dir
from hpgc.jobs.trust import check_deploy_target
from hpgc.models.ogc import StatusCode
from hpgc.models.run import BackendStatus, JobRef, RunSpec
from tests.unit.test_local_backend import _until

SERVER_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/hpgc", "USER": "hpgc", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
    "TZ": "UTC", "HPGC_CALLBACKS__SECRET": "s3cret-value", "HPGC_AUTH__ISSUERS": "[]", "hpgc_lower": "x",
    "AWS_SECRET_ACCESS_KEY": "aws", "SSH_AUTH_SOCK": "/tmp/agent", "APPTAINER_BINDPATH": "/data",
}


def test_job_environment_is_minimal(tmp_path: Path) -> None:
    env = job_environment(LocalBackendSettings(), tmp_path / "j", {"OMP_NUM_THREADS": "2"}, SERVER_ENV)
    assert not [k for k in env if k.upper().startswith("HPGC") and k != "HPGC_JOB_DIR"]
    assert "s3cret-value" not in json.dumps(env)
    assert "AWS_SECRET_ACCESS_KEY" not in env and "SSH_AUTH_SOCK" not in env and "APPTAINER_BINDPATH" not in env
    assert env["PATH"] == f"{tmp_path / 'j' / 'bin'}:/usr/bin:/bin"
    assert env["HOME"] == "/home/hpgc" and env["LANG"] == env["LC_ALL"] == "C.UTF-8" and env["TZ"] == "UTC"
    assert env["TMPDIR"] == str(tmp_path / "j" / "tmp") and env["HPGC_JOB_DIR"] == str(tmp_path / "j")
    assert env["OMP_NUM_THREADS"] == "2"


def test_pass_env_adds_names_and_patterns_but_never_hpgc(tmp_path: Path) -> None:
    settings = LocalBackendSettings(pass_env=["APPTAINER_*", "*SECRET*"])
    env = job_environment(settings, tmp_path, {}, SERVER_ENV)
    assert env["APPTAINER_BINDPATH"] == "/data" and env["AWS_SECRET_ACCESS_KEY"] == "aws"
    assert "HPGC_CALLBACKS__SECRET" not in env  # a pattern matching it does not let it through
    with pytest.raises(ConfigError, match="never passed on"):
        load_settings(local={"pass_env": ["HPGC_CALLBACKS__SECRET"]})


async def _start(backend: LocalBackend) -> asyncio.Event:
    """Start the backend; the event is set at each of its changes (what the job monitor waits on)."""
    changed = asyncio.Event()
    await backend.start(lambda job_id=None: changed.set())
    return changed


async def _until_final(backend: LocalBackend, ref: JobRef, changed: asyncio.Event) -> BackendStatus:
    return await _until(backend, ref, changed, lambda st: st.status.terminal)


async def _run(backend: LocalBackend, changed: asyncio.Event, job_id: str, script: str,
               outputs: dict[str, str] | None = None) -> JobRef:
    spec = RunSpec(job_id=job_id, process_id="x", kind="command", argv=["sh", "-c", script],
                   outputs=outputs or {})
    ref = JobRef(job_id=job_id, external_id=await backend.submit(spec))
    st = await _until_final(backend, ref, changed)
    assert st.status == StatusCode.successful, st.message
    return ref


async def test_a_job_sees_no_server_secret_and_runs_in_its_private_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPGC_CALLBACKS__SECRET", "s3cret-value")
    monkeypatch.setenv("HPGC_AUTH__ENABLED", "true")
    old = os.umask(0o022)
    try:
        backend = LocalBackend(LocalBackendSettings(), tmp_path / "jobs")
        changed = await _start(backend)
        ref = await _run(backend, changed, "j1", 'env; echo "cwd=$(pwd)"; echo "tmp=$TMPDIR"; touch "$TMPDIR/ok"')
    finally:
        os.umask(old)
    out = (await backend.logs(ref)).stdout
    assert "s3cret-value" not in out and "HPGC_CALLBACKS" not in out and "HPGC_AUTH" not in out
    jd = tmp_path / "jobs" / "j1"
    assert f"HPGC_JOB_DIR={jd}" in out and f"cwd={jd}" in out and (jd / "tmp" / "ok").exists()
    assert stat.S_IMODE(jd.stat().st_mode) == 0o700 and stat.S_IMODE((tmp_path / "jobs").stat().st_mode) == 0o700
    await backend.close()


@pytest.fixture
def jd(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs" / "j"
    (folder / "outputs").mkdir(parents=True)
    (folder / "outputs" / "ok.txt").write_text("fine")
    return folder


def test_a_regular_file_is_served(jd: Path) -> None:
    assert read_inside(jd, "outputs/ok.txt") == b"fine"
    assert read_inside(jd, str(jd / "outputs/ok.txt")) == b"fine"
    assert size_inside(jd, jd / "outputs/ok.txt") == 4
    (jd / "outputs" / "alias.txt").symlink_to("ok.txt")  # a symlink that stays inside is followed
    assert read_inside(jd, "outputs/alias.txt") == b"fine"
    (jd / "results").symlink_to("outputs")  # a folder too, also on the way to the file
    assert read_inside(jd, "results/ok.txt") == b"fine" and read_inside(jd, "results/alias.txt") == b"fine"
    with pytest.raises(BackendError, match="does not exist"):
        read_inside(jd, "results/missing.txt")
    with pytest.raises(UnsafeFile):
        read_inside(jd, "outputs/ok.txt/x")  # not a folder


def test_links_out_hard_links_fifos_and_folders_are_refused(jd: Path, tmp_path: Path) -> None:
    secret = tmp_path / "hpgc.sqlite"
    secret.write_text("server secret")
    (jd / "sym.txt").symlink_to(secret)
    (jd / "dirlink").symlink_to(tmp_path)
    os.link(secret, jd / "hard.txt")
    os.mkfifo(jd / "fifo.txt")  # an open or read of it would block the server
    for name in ("sym.txt", "dirlink/hpgc.sqlite", "hard.txt", "fifo.txt", "outputs", "../../hpgc.sqlite",
                 str(secret), "/etc/passwd", "."):
        with pytest.raises(UnsafeFile):
            read_inside(jd, name)
    with pytest.raises(UnsafeFile, match="hard links"):
        size_inside(jd, "hard.txt")
    with pytest.raises(BackendError, match="does not exist"):
        read_inside(jd, "missing.txt")


def test_a_swapped_job_directory_is_refused(jd: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "ok.txt").write_text("not the job's")
    jd.rename(tmp_path / "old")
    jd.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeFile):
        read_inside(jd, "ok.txt")


def test_outputs_json_may_only_name_the_jobs_files(jd: Path) -> None:
    assert named_inside(jd, str(jd / "outputs/ok.txt")) and named_inside(jd, "outputs/ok.txt")
    for path in ("/etc/passwd", "../../hpgc.sqlite", f"{jd}/../../hpgc.sqlite", f"{jd}/outputs/../../x", ""):
        assert not named_inside(jd, path), path


async def test_outputs_naming_server_files_fail_the_job_clearly(tmp_path: Path) -> None:
    backend = LocalBackend(LocalBackendSettings(), tmp_path / "jobs")
    await backend.start(lambda job_id=None: None)
    jd = tmp_path / "jobs" / "j"
    jd.mkdir(parents=True)
    for path in ("/etc/passwd", f"{jd}/../../hpgc.sqlite"):
        (jd / "outputs.json").write_text(json.dumps({"o": {"class": "File", "path": path}}))
        with pytest.raises(BackendError, match="outside the job directory"):
            await backend.outputs(JobRef(job_id="j"))
    (jd / "outputs.json").unlink()
    os.mkfifo(jd / "outputs.json")
    with pytest.raises(BackendError, match=r"no readable outputs\.json"):
        await backend.outputs(JobRef(job_id="j"))


async def test_results_and_logs_of_a_hostile_job(tmp_path: Path) -> None:
    """The job links the database into its output, plants a FIFO as its log: nothing is served, nothing
    hangs."""
    (tmp_path / "hpgc.sqlite").write_text("SQLite format 3 secret")
    backend = LocalBackend(LocalBackendSettings(), tmp_path / "jobs")
    changed = await _start(backend)
    ref = await _run(backend, changed, "j", 'ln ../../hpgc.sqlite outputs/hard.txt; ln -s /etc/passwd outputs/sym.txt; '
                     'rm stderr.log; mkfifo stderr.log; echo "50 $(cat ../../hpgc.sqlite)" > progress',
                     {"hard": "outputs/hard.txt", "sym": "outputs/sym.txt"})
    outputs = await backend.outputs(ref)
    for oid in ("hard", "sym"):
        path = outputs[oid]["path"]
        with pytest.raises(BackendError):
            await backend.file_size(ref, path)
        with pytest.raises(BackendError):
            [c async for c in backend.read_file(ref, path)]
    assert (await asyncio.wait_for(backend.logs(ref), 5)).stderr == ""
    await backend.close()


async def test_server_files_are_replaced_not_written_through(jd: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("intact")
    (jd / "exit_code").symlink_to(victim)
    os.mkfifo(jd / "pid")
    write_inside(jd, "exit_code", "0")
    write_inside(jd, "pid", "123")
    assert victim.read_text() == "intact"
    assert (jd / "exit_code").read_text() == "0" and not (jd / "exit_code").is_symlink()
    assert (jd / "pid").read_text() == "123"


def _principal(admin: bool = False) -> Principal:
    return Principal(subject="alice", is_admin=admin)


class _Local:
    deploy_needs_admin = True


class _Slurm:
    deploy_needs_admin = False


def test_deploy_to_the_server_account_needs_an_admin_or_the_opt_in() -> None:
    with pytest.raises(InsufficientScope, match=r"local\.allow_user_deploy") as refused:
        check_deploy_target(_principal(), "local", _Local())
    assert refused.value.status == 403 and refused.value.permission == "admin"
    check_deploy_target(_principal(admin=True), "local", _Local())
    check_deploy_target(_principal(), "slurm", _Slurm())
    opted_in = _Local()
    opted_in.deploy_needs_admin = False
    check_deploy_target(_principal(), "local", opted_in)
    real = LocalBackend(LocalBackendSettings(), Path("/nonexistent"))
    with pytest.raises(InsufficientScope):
        check_deploy_target(_principal(), "local", real)
    check_deploy_target(_principal(), "local", LocalBackend(LocalBackendSettings(allow_user_deploy=True),
                                                            Path("/nonexistent")))


def test_data_dir_is_private_whatever_the_umask(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = os.umask(0o022)
    try:
        data = tmp_path / "fresh"
        db = secure_data_dir(data)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700 and stat.S_IMODE(db.stat().st_mode) == 0o600
        legacy = tmp_path / "legacy"
        (legacy / "auth").mkdir(parents=True, mode=0o755)
        (legacy / "jobs").mkdir(mode=0o755)
        legacy.chmod(0o755)
        for name in ("hpgc.sqlite", "hpgc.sqlite-wal", "hpgc.sqlite-shm", "auth/dev-issuer-keys.json"):
            (legacy / name).write_text("x")
            (legacy / name).chmod(0o644)
        secure_data_dir(legacy)
    finally:
        os.umask(old)
    for folder in ("", "auth", "jobs"):
        assert stat.S_IMODE((legacy / folder).stat().st_mode) == 0o700, folder
    for name in ("hpgc.sqlite", "hpgc.sqlite-wal", "hpgc.sqlite-shm", "auth/dev-issuer-keys.json"):
        assert stat.S_IMODE((legacy / name).stat().st_mode) == 0o600, name
    assert "tightened the permissions" in caplog.text
