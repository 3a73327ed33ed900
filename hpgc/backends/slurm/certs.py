"""Short-lived SSH user certificates on ephemeral keys: how hpgc logs in as a mapped Unix user.

Each connection gets a new key pair, made in memory and never written anywhere, and a certificate for it
whose only principal is that user, valid for minutes, with no force-command and no forwarding, pty or
~/.ssh/rc, restricted to the server's addresses when configured. It is signed here with the CA key, or by
the site's own signer command (a vault, step-ca...), which then never gives its CA key to hpgc.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh
from asyncssh.public_key import SSHOpenSSHCertificate

from hpgc.backends.slurm.cert_settings import CertificateSettings
from hpgc.backends.slurm.ssh_types import SSHError
from hpgc.models.names import unix_user_error

log = logging.getLogger(__name__)
_serials = itertools.count(int(time.time()) << 20)  # distinct across restarts, for sshd's logs and KRLs


class CertificateError(SSHError):
    """No certificate could be made: a bad CA key, a failing signer, a user it may not sign for."""


@dataclass(frozen=True)
class Issued:
    key: asyncssh.SSHKey
    certificate: asyncssh.SSHCertificate
    expires_at: float  # wall clock (time.time), as in the certificate
    renew_at: float  # when a connection opened with it should be replaced
    key_id: str

    @property
    def client_key(self) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]:
        """What asyncssh.connect takes in client_keys."""
        return self.key, self.certificate


class CertIssuer:
    """Makes certificates for one cluster. `clock` is time.time; tests give their own."""

    def __init__(self, cluster: str, settings: CertificateSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        self.issued = 0  # how many certificates were made: tests read it
        self._ca: asyncssh.SSHKey | None = None

    def ca_fingerprint(self) -> str:
        if self.settings.ca_key is not None:
            return self._ca_key().get_fingerprint()
        if self.settings.ca_public_key is not None:
            return asyncssh.read_public_key(str(self.settings.ca_public_key)).get_fingerprint()
        return "the signer command's CA"

    def _ca_key(self) -> asyncssh.SSHKey:
        if self._ca is None:
            path = self.settings.ca_key
            assert path is not None
            try:
                mode = path.stat().st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    # whoever reads it can log in as any user of the cluster
                    raise CertificateError(f"cluster {self.cluster}: CA key {path} is readable by others "
                                           f"(mode {stat.S_IMODE(mode):o}); make it 0600")
                self._ca = asyncssh.read_private_key(str(path))
            except (OSError, asyncssh.KeyImportError) as exc:
                raise CertificateError(f"cluster {self.cluster}: cannot read CA key {path}: {exc}") from None
        return self._ca

    def _check_principal(self, user: str) -> None:
        allowed = self.settings.principals
        if unix_user_error(user) is not None or (allowed is not None and user not in allowed):
            raise CertificateError(f"cluster {self.cluster}: no certificate may be made for {user!r} "
                                   "(certificates.principals)")

    async def issue(self, user: str) -> Issued:
        """A fresh key pair and a certificate for it with the one principal `user`."""
        self._check_principal(user)
        s = self.settings
        now = self.clock()
        valid_before = int(now + s.validity_s)
        key = asyncssh.generate_private_key(s.key_type)
        serial = next(_serials)
        key_id = f"hpgc:{self.cluster}:{user}:{serial}"
        if s.ca_key is not None:
            cert = self._ca_key().generate_user_certificate(
                key, key_id, serial=serial, principals=[user], valid_after=int(now) - s.clock_skew_s,
                valid_before=valid_before, force_command=None, source_address=s.source_address,
                permit_x11_forwarding=False, permit_agent_forwarding=False, permit_port_forwarding=False,
                permit_pty=False, permit_user_rc=False)
        else:
            cert = await self._external(key, user, key_id)
            valid_before = min(valid_before, _valid_before(cert))
        self.issued += 1
        log.debug("certificate %s for %s, valid until %d", key_id, user, valid_before)
        return Issued(key, cert, valid_before, valid_before - s.renew_before_s, key_id)

    async def _external(self, key: asyncssh.SSHKey, user: str, key_id: str) -> asyncssh.SSHCertificate:
        s = self.settings
        assert s.signer_command is not None
        env = {**os.environ, "HPGC_CERT_PRINCIPAL": user, "HPGC_CERT_VALIDITY_S": str(int(s.validity_s)),
               "HPGC_CERT_KEY_ID": key_id, "HPGC_CERT_SOURCE_ADDRESS": ",".join(s.source_address or [])}
        what = f"cluster {self.cluster}: signer command {s.signer_command[0]}"
        try:
            proc = await asyncio.create_subprocess_exec(
                *s.signer_command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env)
        except OSError as exc:
            raise CertificateError(f"{what} cannot start: {exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(key.export_public_key()), s.signer_timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CertificateError(f"{what} did not answer within {s.signer_timeout_s:g} s") from None
        if proc.returncode != 0:
            raise CertificateError(f"{what} failed (exit {proc.returncode}): "
                                   f"{err.decode(errors='replace').strip()[-300:]}")
        try:
            cert = asyncssh.import_certificate(out.strip())
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise CertificateError(f"{what} printed no OpenSSH certificate: {exc}") from None
        self._check_returned(cert, key, user, what)
        return cert

    def _check_returned(self, cert: asyncssh.SSHCertificate, key: asyncssh.SSHKey, user: str, what: str) -> None:
        # a signer that signs the wrong thing must not give hpgc more than it asked for
        problem = None
        if cert.key.public_data != key.public_data:
            problem = "it certifies another key"
        elif not isinstance(cert, SSHOpenSSHCertificate) or getattr(cert, "_cert_type", 0) != USER_CERT:
            problem = "it is not an OpenSSH user certificate"
        elif list(cert.principals) != [user]:
            problem = f"its principals are {list(cert.principals)}, not [{user!r}]"
        elif _valid_before(cert) <= self.clock():
            problem = "it has already expired"
        elif self.settings.ca_public_key is not None and cert.signing_key.public_data != asyncssh.read_public_key(
                str(self.settings.ca_public_key)).public_data:
            problem = "another key than ca_public_key signed it"
        if problem:
            raise CertificateError(f"{what} returned a certificate hpgc will not use: {problem}")


USER_CERT = 1  # OpenSSH's SSH2_CERT_TYPE_USER


def _valid_before(cert: asyncssh.SSHCertificate) -> int:
    # asyncssh keeps the validity to itself (it checks it in validate()); 0 for a form without one
    return int(getattr(cert, "_valid_before", 0))
