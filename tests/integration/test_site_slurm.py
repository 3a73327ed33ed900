"""Fitting a real site, on the test cluster: users log in with SSH certificates of hpgc's user CA (no user key
anywhere in hpgc's configuration or data dir), accounts and QOS come from token claims, Slurm's own refusals
are failed jobs with its message, and a revoked CA is reported as such."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hpgc.api.app import create_app
from hpgc.api.bearer import DEV_ISSUER
from hpgc.api.keys import SETTINGS
from hpgc.auth.dev_issuer import dev_issuer_url
from hpgc.auth.grants import GroupGrant, SlurmGrantSettings
from hpgc.auth.settings import AuthSettings, IdentitySettings
from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.certs import CertIssuer
from hpgc.backends.slurm.check import check_cluster
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.ssh import SSHClient, SSHError
from hpgc.config import Settings
from hpgc.models.ogc import StatusCode
from hpgc.models.run import JobRef, RunSpec
from tests.integration.conftest import ssh_run_async

pytestmark = [pytest.mark.slurm]
Client = Callable[..., Awaitable[TestClient]]
RUN = uuid.uuid4().hex[:8]
GROUPS = SlurmGrantSettings(claim="groups", groups={"geo-users": GroupGrant(account="geo", qos=["normal"])})


def ca_copy(cluster: dict, tmp_path: Path) -> Path:
    """The cluster's user CA key, copied as a site would install it (0600, the server's account only)."""
    ca = tmp_path / "ca" / "user_ca"
    ca.parent.mkdir(mode=0o700)
    shutil.copy(cluster["user_ca_key"], ca)
    ca.chmod(0o600)
    return ca


def cert_cluster(cluster: dict, ca: Path, **cert: Any) -> ClusterSettings:
    # no key_file, no user_keys: every login, the service account's too, is by certificate
    return ClusterSettings(
        host=cluster["host"], port=cluster["port"], known_hosts=cluster["known_hosts"], user="alice",
        work_root=cluster["work_root"], partition=cluster.get("partition"), poll_min_s=0.5, poll_max_s=1,
        certificates={"ca_key": ca, **cert})


async def sacct(cluster: dict, job_id: str) -> list[str]:
    """User|Account|QOS|State of hpgc's job `job_id` (found by its job name), read as alice."""
    done = await ssh_run_async(cluster, f"sacct -a -X -n -P -S now-1hours --name=hpgc-{job_id} "
                                        "-o User,Account,QOS,State")
    assert done.exit_status == 0, done.stderr
    return str(done.stdout).strip().split("|")


def token(api: TestClient, user: str, **claims: Any) -> dict[str, str]:
    minted = api.app[DEV_ISSUER].mint(dev_issuer_url(api.app[SETTINGS]), user, "hpgc:execute", **claims)
    return {"Authorization": f"Bearer {minted}"}


async def finished(api: TestClient, headers: dict[str, str], body: dict, timeout: float = 180) -> dict:
    resp = await api.post("/processes/echo/execution", json=body, headers={**headers, "Prefer": "respond-async"})
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["jobID"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await (await api.get(f"/jobs/{job_id}", headers=headers)).json()
        if status["status"] in ("successful", "failed"):
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@pytest.fixture
async def api(cluster: dict, tmp_path: Path, aiohttp_client: Client) -> TestClient:
    settings = Settings(
        data_dir=tmp_path / "data", default_backend="slurm",
        clusters={"test": cert_cluster(cluster, ca_copy(cluster, tmp_path))},
        auth=AuthSettings(identity=IdentitySettings(slurm=GROUPS)))
    return await aiohttp_client(create_app(settings))


async def test_users_run_as_themselves_with_certificates_only(api: TestClient, cluster: dict,
                                                              tmp_path: Path) -> None:
    ids = {}
    for user in ("alice", "bob"):
        status = await finished(api, token(api, user), {"inputs": {"stringInput": f"hi {user}"}})
        assert status["status"] == "successful", status
        ids[user] = status["jobID"]
    for user, job_id in ids.items():
        assert (await sacct(cluster, job_id))[0] == user
    settings: Settings = api.app[SETTINGS]
    test = settings.clusters["test"]
    assert test.key_file is None and test.user_keys == {}
    keys = [p for p in (tmp_path / "data").rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert keys == [], "a private key was written to the data dir"


async def test_account_and_qos_from_a_group_claim(api: TestClient, cluster: dict) -> None:
    geo = token(api, "alice", groups=["geo-users"])
    status = await finished(api, geo, {"inputs": {"stringInput": "geo"}, "hpgc:resources": {"qos": "normal"}})
    assert status["status"] == "successful", status
    user, account, qos, _ = await sacct(cluster, status["jobID"])
    assert (user, account, qos) == ("alice", "geo", "normal")
    resp = await api.post("/processes/echo/execution", headers=geo,
                          json={"inputs": {"stringInput": "x"}, "hpgc:resources": {"qos": "high"}})
    assert resp.status == 403, await resp.text()
    assert "QOS 'high' is not one you may use here; yours: normal" in (await resp.json())["detail"]


async def test_slurms_own_refusal_is_a_failed_job_with_its_message(api: TestClient) -> None:
    # hpgc's table says geo, but Slurm has no association of bob with geo: sbatch refuses, once
    started = time.monotonic()
    status = await finished(api, token(api, "bob", groups=["geo-users"]), {"inputs": {"stringInput": "no"}})
    assert status["status"] == "failed", status
    assert "Invalid account" in status["message"], status["message"]
    assert time.monotonic() - started < 60


async def test_expired_certificate_is_replaced_without_failing_a_job(cluster: dict, tmp_path: Path) -> None:
    settings = cert_cluster(cluster, ca_copy(cluster, tmp_path), validity_minutes=0.5, renew_before_s=10)
    backend = SlurmBackend({"test": settings})
    await backend.start(lambda job_id=None: None)
    try:
        spec = RunSpec(job_id=f"cert-{RUN}", process_id="sleep", kind="command", argv=["sh", "-c", "sleep 40"],
                       outputs={}, unix_user="bob")
        ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec), unix_user="bob")
        client = backend.pool.client("test", "bob")
        first = client.connects
        deadline = time.monotonic() + 150
        state = None
        while time.monotonic() < deadline:
            state = (await backend.poll([ref])).get(ref.job_id)
            if state is not None and state.status.terminal:
                break
            await asyncio.sleep(1)
        assert state is not None and state.status == StatusCode.successful, state
        # 40 s of a job, 30 s certificates renewed 10 s early: at least one new connection, none refused
        assert client.connects > first and backend.pool.issuers["test"].issued >= 2
    finally:
        await backend.close()


async def test_revoked_ca_is_refused_and_reported(cluster: dict, tmp_path: Path) -> None:
    settings = cert_cluster(cluster, ca_copy(cluster, tmp_path))
    report = await check_cluster("test", settings, "bob")
    assert report.ok, report.text()
    assert "with a certificate for bob signed by SHA256:" in report.items[0].detail
    revoked = cluster["revoked_keys_file"]
    ctl = [cluster["ctl"], "exec", "login", "sh", "-c"]
    subprocess.run([*ctl, f"cat /etc/ssh/hpgc_user_ca.pub > {revoked}"], check=True)
    try:
        assert settings.certificates is not None
        client = SSHClient("test", settings, "bob", None, CertIssuer("test", settings.certificates))
        with pytest.raises(SSHError, match=r"refused our certificate .*\(RevokedKeys\)"):
            await client.run("true", retry=False)
        await client.close()
        report = await check_cluster("test", settings, "bob")
        assert not report.ok and "RevokedKeys" in report.items[0].detail
    finally:
        subprocess.run([*ctl, f": > {revoked}"], check=True)

