"""Pooled SSH to a cluster: one asyncssh connection per (cluster, unix user).

A connection carries many channels at once (sbatch ×N, sacct, SFTP), up to `max_channels` so sshd's
MaxSessions is never hit. A lost connection is re-opened on next use, with exponential backoff so a
dead cluster is not hammered. Host keys are always checked against the configured known_hosts file.
With certificates (certs.py) each connection logs in with a fresh one, and is replaced by a new connection
before it expires (sshd checks a certificate only at login: this bounds how long a revoked CA keeps a session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh

from hpgc.backends.base import BackendError
from hpgc.backends.metrics import CLIENTS, SSH_CONNECTS, SSH_ROUND_TRIPS
from hpgc.backends.slurm.certs import CertIssuer
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.ssh_retire import Retiring
from hpgc.backends.slurm.ssh_types import (
    HostKeyError,
    RemoteExit,
    Result,
    SSHError,
    _describe,
    _signal_number,
    _text,
    for_any_login_shell,
)

__all__ = ["HostKeyError", "RemoteExit", "Result", "SSHClient", "SSHError", "SSHPool", "for_any_login_shell"]

log = logging.getLogger(__name__)
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0


class SSHClient:
    """One connection to one cluster as one SSH user, opened on first use (or `connect`) and re-opened when lost."""

    def __init__(self, cluster: str, settings: ClusterSettings, login: str, key_file: Path | None,
                 issuer: CertIssuer | None = None) -> None:
        self.cluster = cluster
        self.settings = settings
        self.login = login
        self.key_file = key_file
        self.issuer = issuer  # set: every connection logs in with a fresh certificate for `login`
        self._renew_at: float | None = None  # issuer's clock: when the connection's certificate is due
        self.retiring = Retiring()  # connections replaced by a renewal, closed once idle
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self._sftp_lock = asyncio.Lock()
        # One channel stays free for the SFTP session.
        self._channels = asyncio.Semaphore(max(1, settings.max_channels - 1))
        self._backoff = 0.0
        self._next_try = 0.0
        self.connects = 0  # how many connections were opened: tests and the bench read it
        self.round_trips = 0
        self.last_ok = time.monotonic()
        CLIENTS.add(self)

    @property
    def is_connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def __repr__(self) -> str:
        return f"<SSHClient {self.login}@{self.settings.host}:{self.settings.port} ({self.cluster})>"

    def _due(self) -> bool:
        """The connection's certificate is near its end: open a new connection with a fresh one."""
        return self.issuer is not None and self._renew_at is not None and self.issuer.clock() >= self._renew_at

    async def _connection(self) -> asyncssh.SSHClientConnection:
        conn = self._conn
        if conn is not None and not conn.is_closed() and not self._due():
            return conn
        async with self._lock:
            old = self._conn
            if old is not None and not old.is_closed():
                if not self._due():
                    return old
            else:
                old = None
                wait = self._next_try - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                new, renew_at = await self._open()
            except Exception as exc:
                SSH_CONNECTS.labels(self.cluster, "failed").inc()
                self._backoff = min(BACKOFF_MAX_S, max(BACKOFF_START_S, self._backoff * 2))
                self._next_try = time.monotonic() + self._backoff
                if old is None:
                    raise
                # the old connection still works (sshd checks a certificate at login only): keep it a while
                log.warning("%r: renewing the certificate failed, retrying later: %s", self, exc)
                assert self.issuer is not None
                self._renew_at = self.issuer.clock() + self._backoff
                return old
            self._conn, self._renew_at = new, renew_at
            if old is not None:
                self.retiring.retire(old)
            self._backoff = 0.0
            self._sftp = None
            self.connects += 1
            SSH_CONNECTS.labels(self.cluster, "ok").inc()
            return self._conn

    async def _open(self) -> tuple[asyncssh.SSHClientConnection, float | None]:
        s = self.settings
        if not s.known_hosts.is_file():
            raise SSHError(f"cluster {self.cluster}: known_hosts file {s.known_hosts} does not exist")
        keys: list[object] = [str(self.key_file)] if self.key_file else []
        cert = None
        if self.issuer is not None:
            cert = await self.issuer.issue(self.login)  # CertificateError (a BackendError) when it cannot
            keys = [cert.client_key]
        try:
            conn = await asyncssh.connect(
                s.host, s.port, username=self.login, known_hosts=str(s.known_hosts),
                client_keys=keys or (),
                agent_path=None if keys else (),
                config=None,  # ~/.ssh/config of the server's account must not change where we connect
                keepalive_interval=s.keepalive_s, keepalive_count_max=3,
                connect_timeout=s.connect_timeout_s, login_timeout=s.connect_timeout_s,
            )
            return conn, cert.renew_at if cert else None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyError(
                f"cluster {self.cluster}: the host key of {s.host}:{s.port} does not match {s.known_hosts} "
                f"({exc.reason}); refusing to connect"
            ) from None
        except asyncssh.PermissionDenied:
            if cert is None:
                raise SSHError(f"cluster {self.cluster}: {self.login}@{s.host} refused our key") from None
            assert self.issuer is not None
            raise SSHError(
                f"cluster {self.cluster}: {self.login}@{s.host} refused our certificate {cert.key_id} signed by "
                f"{self.issuer.ca_fingerprint()}: sshd does not trust this CA (TrustedUserCAKeys), has revoked "
                "it (RevokedKeys), or does not accept the principal") from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise SSHError(f"cluster {self.cluster}: cannot connect to {s.host}:{s.port}: "
                           f"{_describe(exc)}") from None

    def _drop(self, conn: asyncssh.SSHClientConnection | None) -> None:
        if conn is not None and conn is self._conn:
            conn.abort()
            self._conn = None
            self._sftp = None
        elif conn is not None:
            self.retiring.forget(conn)
            conn.abort()

    async def connect(self) -> None:
        """Open the connection now rather than on first use."""
        await self._connection()

    async def run(self, command: str, input: bytes | None = None, timeout: float | None = None,
                  retry: bool = True) -> Result:
        """Run a shell command; on a dropped connection re-open it and (if `retry`) run it once more.
        Only commands that are safe to repeat may use retry (all of hpgc's are: submit looks first)."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            conn = await self._connection()
            try:
                with self.retiring.using(conn):
                    async with self._channels:
                        result = await self._exec(conn, command, input,
                                                  timeout or self.settings.command_timeout_s)
                self.last_ok = time.monotonic()
                return result
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError,
                    BrokenPipeError, ConnectionResetError) as exc:
                self._drop(conn)
                if attempt + 1 == attempts:
                    raise SSHError(f"cluster {self.cluster}: connection lost: {_describe(exc)}") from None
                log.info("%r: connection lost (%s), reconnecting", self, _describe(exc))
        raise AssertionError("unreachable")

    async def _exec(self, conn: asyncssh.SSHClientConnection, command: str, input: bytes | None,
                    timeout: float) -> Result:
        self.round_trips += 1
        SSH_ROUND_TRIPS.labels(self.cluster).inc()
        try:
            async with asyncio.timeout(timeout):
                proc = await conn.create_process(for_any_login_shell(command), encoding=None, input=input)
                async with proc:
                    done = await proc.wait()
        except TimeoutError:
            raise SSHError(f"cluster {self.cluster}: command did not finish within {timeout:g} s: "
                           f"{command[:80]}") from None
        if done.exit_status is None or done.exit_status < 0:
            if done.exit_signal is None:
                # The channel closed without an exit status: the connection went away under us.
                raise asyncssh.ConnectionLost("the channel closed without an exit status")
            status = 128 + _signal_number(done.exit_signal[0])
        else:
            status = done.exit_status
        out = done.stdout or b""
        err = done.stderr or b""
        return Result(status, _text(out), _text(err))

    async def stream(self, command: str, chunk: int, timeout: float | None = None) -> AsyncIterator[bytes]:
        """Run a shell command and yield its stdout as it comes; RemoteExit when it exits non-zero (its
        stderr as the message), SSHError when no byte arrives for `timeout` s. Nothing is retried: bytes may
        have been handed out already."""
        timeout = timeout or self.settings.command_timeout_s
        conn = await self._connection()
        with self.retiring.using(conn):
            async for data in self._stream(conn, command, chunk, timeout):
                yield data

    async def _stream(self, conn: asyncssh.SSHClientConnection, command: str, chunk: int,
                      timeout: float) -> AsyncIterator[bytes]:
        async with self._channels:
            self.round_trips += 1
            SSH_ROUND_TRIPS.labels(self.cluster).inc()
            try:
                proc = await asyncio.wait_for(conn.create_process(for_any_login_shell(command), encoding=None),
                                              timeout)
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError) as exc:
                self._drop(conn)
                raise SSHError(f"cluster {self.cluster}: connection lost: {_describe(exc)}") from None
            except TimeoutError:
                raise SSHError(f"cluster {self.cluster}: command did not start within {timeout:g} s") from None
            try:
                proc.stdin.write_eof()
                while True:
                    try:
                        data = await asyncio.wait_for(proc.stdout.read(chunk), timeout)
                    except TimeoutError:
                        raise SSHError(f"cluster {self.cluster}: no data for {timeout:g} s: {command[:80]}") from None
                    if not data:
                        break
                    yield data if isinstance(data, bytes) else data.encode()
                try:
                    done = await asyncio.wait_for(proc.wait(), timeout)  # also collects stderr
                except TimeoutError:
                    raise SSHError(f"cluster {self.cluster}: command did not end within {timeout:g} s") from None
                self.last_ok = time.monotonic()
                if done.exit_status != 0:
                    status = done.exit_status if done.exit_status is not None else -1
                    raise RemoteExit(_text(done.stderr or b"").strip()[-500:] or f"exit status {status}", status)
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
                self._drop(conn)
                raise SSHError(f"cluster {self.cluster}: connection lost: {_describe(exc)}") from None
            finally:
                proc.close()

    # SFTP -------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def sftp(self) -> AsyncIterator[asyncssh.SFTPClient]:
        """The connection's SFTP session (one channel, shared by all transfers)."""
        for attempt in range(2):
            conn = await self._connection()
            try:
                async with self._sftp_lock:
                    if self._sftp is None or self._conn is not conn:
                        self._sftp = await asyncio.wait_for(conn.start_sftp_client(),
                                                            self.settings.command_timeout_s)
                    client = self._sftp
                break
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError,
                    OSError, TimeoutError) as exc:
                self._drop(conn)
                if attempt == 1:
                    raise SSHError(f"cluster {self.cluster}: SFTP unavailable: {_describe(exc)}") from None
        try:
            with self.retiring.using(conn):
                yield client
            self.last_ok = time.monotonic()
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
            self._drop(conn)
            raise SSHError(f"cluster {self.cluster}: connection lost: {_describe(exc)}") from None

    async def close(self) -> None:
        self.retiring.close_all()
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)


class SSHPool:
    """Clients per (cluster, SSH login), created on first use."""

    def __init__(self, clusters: dict[str, ClusterSettings]) -> None:
        self.clusters = clusters
        self._clients: dict[tuple[str, str], SSHClient] = {}
        self.issuers = {name: CertIssuer(name, c.certificates) for name, c in clusters.items() if c.certificates}

    def client(self, cluster: str, unix_user: str | None = None) -> SSHClient:
        settings = self.clusters.get(cluster)
        if settings is None:
            raise BackendError(f"unknown cluster {cluster!r}")
        try:
            login, key = settings.key_for(unix_user)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        key_id = (cluster, login)
        if key_id not in self._clients:
            issuer = self.issuers[cluster] if settings.uses_certificate(login) else None
            self._clients[key_id] = SSHClient(cluster, settings, login, key, issuer)
        return self._clients[key_id]

    def all(self) -> list[SSHClient]:
        return list(self._clients.values())

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._clients.values()), return_exceptions=True)
        self._clients.clear()
