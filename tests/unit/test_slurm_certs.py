"""SSH user certificates: what is signed, renewal on pooled connections, external signers, refusals, and that
no private key ever reaches a file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from pydantic import ValidationError

from hpgc.backends.slurm.cert_settings import CertificateSettings
from hpgc.backends.slurm.certs import CertificateError, CertIssuer
from hpgc.backends.slurm.check import check_cluster
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.ssh import SSHClient, SSHError, SSHPool
from tests.unit.slurm_fake import FakeSSHServer, install_fake_slurm


class Clock:
    def __init__(self) -> None:
        self.now = time.time()  # the server checks the validity against its own clock

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ca(tmp_path: Path) -> tuple[asyncssh.SSHKey, Path]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "user_ca"
    key.write_private_key(str(path))
    path.chmod(0o600)
    return key, path


@pytest.fixture
async def server(tmp_path: Path, ca: tuple[asyncssh.SSHKey, Path]) -> AsyncIterator[FakeSSHServer]:
    bin_dir, state = install_fake_slurm(tmp_path / "slurm")
    s = FakeSSHServer(tmp_path, {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKESLURM_STATE": str(state)})
    s.trusted_ca = ca[0]
    await s.start()
    yield s
    s.hang = False
    await s.stop()


def _settings(s: FakeSSHServer, ca_path: Path, **cert: object) -> ClusterSettings:
    return ClusterSettings(host="127.0.0.1", port=s.port, known_hosts=s.known_hosts, user="hpgc",
                           work_root=str(s.root / "work"), connect_timeout_s=3,
                           certificates={"ca_key": ca_path, **cert})


def _ssh_keygen_L(cert: asyncssh.SSHCertificate) -> str:
    return subprocess.run(["ssh-keygen", "-L", "-f", "/dev/stdin"], input=cert.export_certificate(),
                          capture_output=True, check=True).stdout.decode()


async def test_certificate_has_one_principal_minutes_of_validity_and_no_extras(ca: tuple[asyncssh.SSHKey, Path]
                                                                            ) -> None:
    clock = Clock()
    settings = CertificateSettings(ca_key=ca[1], validity_minutes=5, source_address=["10.213.53.1/32"])
    issued = await CertIssuer("c", settings, clock).issue("alice")
    cert = issued.certificate
    assert cert.principals == ["alice"]
    assert cert.signing_key.public_data == ca[0].public_data
    assert cert.key.public_data == issued.key.public_data
    assert issued.expires_at == int(clock.now) + 300
    assert issued.renew_at == issued.expires_at - 120
    text = _ssh_keygen_L(cert)
    assert "Type: ssh-ed25519-cert-v01@openssh.com user certificate" in text
    assert "source-address 10.213.53.1/32" in text
    assert "force-command" not in text
    for extension in ("permit-pty", "permit-port-forwarding", "permit-agent-forwarding", "permit-user-rc",
                      "permit-X11-forwarding"):
        assert extension not in text
    # a new key pair every time
    again = await CertIssuer("c", settings, clock).issue("alice")
    assert again.key.public_data != issued.key.public_data


async def test_principals_list_and_unix_rule_refuse(ca: tuple[asyncssh.SSHKey, Path]) -> None:
    issuer = CertIssuer("c", CertificateSettings(ca_key=ca[1], principals=["alice"]))
    with pytest.raises(CertificateError, match="no certificate may be made for 'bob'"):
        await issuer.issue("bob")
    with pytest.raises(CertificateError):
        await CertIssuer("c", CertificateSettings(ca_key=ca[1])).issue("-oProxyCommand=x")


async def test_ca_key_readable_by_others_is_refused(ca: tuple[asyncssh.SSHKey, Path]) -> None:
    ca[1].chmod(0o644)
    with pytest.raises(CertificateError, match="readable by others"):
        await CertIssuer("c", CertificateSettings(ca_key=ca[1])).issue("alice")


def test_settings_need_one_signer_and_a_renewal_inside_validity(ca: tuple[asyncssh.SSHKey, Path]) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        CertificateSettings()
    with pytest.raises(ValidationError, match="exactly one"):
        CertificateSettings(ca_key=ca[1], signer_command=["sign"])
    with pytest.raises(ValidationError, match="renew_before_s"):
        CertificateSettings(ca_key=ca[1], validity_minutes=1, renew_before_s=60)
    with pytest.raises(ValidationError, match="CIDR"):
        CertificateSettings(ca_key=ca[1], source_address=["nowhere"])


async def test_users_log_in_as_themselves_with_no_key_file_written(server: FakeSSHServer, tmp_path: Path,
                                                                   ca: tuple[asyncssh.SSHKey, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("a private key was exported")

    monkeypatch.setattr(asyncssh.SSHKey, "write_private_key", no_export)
    monkeypatch.setattr(asyncssh.SSHKey, "export_private_key", no_export)
    before = {p for p in tmp_path.rglob("*")}
    pool = SSHPool({"c": _settings(server, ca[1])})
    for user in ("alice", "bob"):
        r = await pool.client("c", user).run("echo hi")
        assert r.stdout == "hi\n"
    assert server.logins == ["alice", "bob"]
    assert pool.issuers["c"].issued == 2
    await pool.close()
    assert {p for p in tmp_path.rglob("*")} == before


async def test_connection_is_renewed_before_expiry_and_work_under_way_finishes(
        server: FakeSSHServer, ca: tuple[asyncssh.SSHKey, Path]) -> None:
    clock = Clock()
    settings = _settings(server, ca[1], validity_minutes=2, renew_before_s=30, clock_skew_s=600)
    assert settings.certificates is not None
    issuer = CertIssuer("c", settings.certificates, clock)
    c = SSHClient("c", settings, "alice", None, issuer)
    assert (await c.run("echo 1")).stdout == "1\n"
    assert c.connects == 1
    clock.now += 60  # not yet due
    await c.run("true")
    assert c.connects == 1 and issuer.issued == 1
    server.hang = True
    held = asyncio.create_task(c.run("echo held"))
    await server.wait_sessions(1)
    clock.now += 40  # 100 s of 120: due
    server.hang = False
    assert (await c.run("echo 2")).stdout == "2\n"
    assert c.connects == 2 and issuer.issued == 2 and server.logins == ["alice", "alice"]
    assert (await held).stdout == "held\n"  # the command on the replaced connection was not cut off
    assert c.retiring.waiting == 0
    await c.close()


async def test_failed_renewal_keeps_the_working_connection(server: FakeSSHServer,
                                                           ca: tuple[asyncssh.SSHKey, Path]) -> None:
    clock = Clock()
    settings = _settings(server, ca[1], validity_minutes=2, renew_before_s=30, clock_skew_s=600)
    assert settings.certificates is not None
    issuer = CertIssuer("c", settings.certificates, clock)
    c = SSHClient("c", settings, "alice", None, issuer)
    await c.run("true")
    ca[1].chmod(0o644)  # the CA key becomes unusable: no certificate can be made
    issuer._ca = None
    clock.now += 100
    assert (await c.run("echo still")).stdout == "still\n"
    assert c.connects == 1
    await c.close()


async def test_untrusted_or_revoked_ca_is_reported(server: FakeSSHServer, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "other_ca"
    other.write_private_key(str(path))
    path.chmod(0o600)
    c = SSHClient("c", _settings(server, path), "alice", None,
                  CertIssuer("c", CertificateSettings(ca_key=path)))
    with pytest.raises(SSHError, match=r"refused our certificate hpgc:c:alice:\d+ signed by SHA256:.*"
                       r"TrustedUserCAKeys.*RevokedKeys"):
        await c.run("true")
    await c.close()


def _signer(tmp_path: Path, ca_path: Path, body: str = "") -> list[str]:
    script = tmp_path / "signer.py"
    script.write_text(f"""
import asyncssh, os, sys
{body}
key = asyncssh.import_public_key(sys.stdin.buffer.read())
ca = asyncssh.read_private_key({str(ca_path)!r})
user = os.environ["HPGC_CERT_PRINCIPAL"]
cert = ca.generate_user_certificate(key, os.environ["HPGC_CERT_KEY_ID"],
    principals=[globals().get("principal") or user], valid_before="+" + os.environ["HPGC_CERT_VALIDITY_S"] + "s")
sys.stdout.buffer.write(cert.export_certificate())
""")
    return [sys.executable, str(script)]


async def test_external_signer_signs_and_its_mistakes_are_refused(server: FakeSSHServer, tmp_path: Path,
                                                                  ca: tuple[asyncssh.SSHKey, Path]) -> None:
    pub = tmp_path / "ca.pub"
    ca[0].write_public_key(str(pub))
    good = CertificateSettings(signer_command=_signer(tmp_path, ca[1]), ca_public_key=pub)
    settings = _settings(server, ca[1]).model_copy(update={"certificates": good})
    c = SSHClient("c", settings, "bob", None, CertIssuer("c", good))
    assert (await c.run("echo signed")).stdout == "signed\n"
    assert server.logins == ["bob"]
    await c.close()
    wrong = CertificateSettings(signer_command=_signer(tmp_path, ca[1], "principal = 'root'"))
    with pytest.raises(CertificateError, match=r"principals are \['root'\], not \['bob'\]"):
        await CertIssuer("c", wrong).issue("bob")
    failing = CertificateSettings(signer_command=[sys.executable, "-c", "import sys; sys.exit('vault sealed')"])
    with pytest.raises(CertificateError, match="failed \\(exit 1\\): vault sealed"):
        await CertIssuer("c", failing).issue("bob")
    slow = CertificateSettings(signer_command=[sys.executable, "-c", "import select; select.select([], [], [], 30)"],
                               signer_timeout_s=0.5)
    with pytest.raises(CertificateError, match=r"did not answer within 0\.5 s"):
        await CertIssuer("c", slow).issue("bob")
    other_pub = tmp_path / "other.pub"
    asyncssh.generate_private_key("ssh-ed25519").write_public_key(str(other_pub))
    mismatch = CertificateSettings(signer_command=_signer(tmp_path, ca[1]), ca_public_key=other_pub)
    with pytest.raises(CertificateError, match="another key than ca_public_key"):
        await CertIssuer("c", mismatch).issue("bob")


async def test_pool_prefers_a_configured_key_and_check_says_certificate(server: FakeSSHServer,
                                                                         ca: tuple[asyncssh.SSHKey, Path]) -> None:
    settings = _settings(server, ca[1]).model_copy(update={"user_keys": {"carol": server.client_key_file}})
    pool = SSHPool({"c": settings})
    assert pool.client("c", "carol").issuer is None
    assert pool.client("c", "carol").key_file == server.client_key_file
    assert pool.client("c", "alice").issuer is pool.issuers["c"]
    await pool.close()
    report = await check_cluster("c", settings, "alice")
    ssh = report.items[0]
    assert ssh.ok and "with a certificate for alice signed by SHA256:" in ssh.detail
    assert os.environ.get("SSH_AUTH_SOCK") is None or "agent" not in ssh.detail
