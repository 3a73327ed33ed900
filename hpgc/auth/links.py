"""Signed result links: an HMAC over the job, the output and an expiry, so that a link works without a bearer
token (an <img src>, GDAL's /vsicurl/, a colleague's browser) until it expires or the job is dismissed.

The signature covers exactly what the link opens; nothing else of the URL (host, other parameters) matters, so a
link survives a proxy that rewrites the host but opens nothing but its one output.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

SECRET_FILE = "link-secret"
MAX_EXPIRY_DIGITS = 12


class LinkRefused(Exception):
    """The link is expired, tampered with or malformed; the message says which (never the right signature)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LinkSigner:
    def __init__(self, secret: bytes, expiry_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("a link secret has at least 32 bytes")
        self._key = hashlib.sha256(b"hpgc result link\0" + secret).digest()  # never the raw secret
        self.expiry_s = expiry_s

    def _mac(self, job_id: str, output_id: str, expires: int) -> str:
        message = f"{job_id}\n{output_id}\n{expires}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def sign(self, job_id: str, output_id: str, now: float | None = None) -> dict[str, str]:
        """The query parameters of a link to one output: {'exp': ..., 'sig': ...}."""
        expires = int(now if now is not None else time.time()) + self.expiry_s
        return {"exp": str(expires), "sig": self._mac(job_id, output_id, expires)}

    def verify(self, job_id: str, output_id: str, exp: str, sig: str, now: float | None = None) -> None:
        if not exp.isascii() or not exp.isdigit() or len(exp) > MAX_EXPIRY_DIGITS:
            raise LinkRefused("the link's expiry (exp) is not a time")
        expected = self._mac(job_id, output_id, int(exp))
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace")):
            raise LinkRefused("the link's signature does not match (altered, or signed with another key)")
        if int(exp) < (now if now is not None else time.time()):
            raise LinkRefused("the link has expired: ask the results document (or the job page) for a new one")


def load_secret(data_dir: Path) -> bytes:
    """DATA_DIR/auth/link-secret, created (0600, random 32 bytes) the first time; every process sharing the data
    dir signs with the same key."""
    folder = data_dir / "auth"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / SECRET_FILE
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    text = path.read_text().strip()
    if len(text) < 32:
        raise ValueError(f"{path} holds no usable key (at least 32 characters)")
    return text.encode()
