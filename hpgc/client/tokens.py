"""The login cache: one file per server under the user's config dir (XDG_CONFIG_HOME/hpgc/tokens or
~/.config/hpgc/tokens), the folder 0700 and each file 0600, written atomically. Tokens are never printed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REFRESH_EARLY_S = 30  # refresh a token this long before it expires, so a request never carries a dead one


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hpgc"


def token_dir() -> Path:
    path = config_dir() / "tokens"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in (path.parent, path):  # mkdir's mode is masked by umask, and an old folder may be wider
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)
    return path


def cache_file(server: str) -> Path:
    """A readable name (host and port) plus a digest of the whole URL: two servers never share a file."""
    parts = urlsplit(server)
    host = re.sub(r"[^A-Za-z0-9.-]", "_", f"{parts.hostname}_{parts.port or ''}")
    digest = hashlib.sha256(server.encode()).hexdigest()[:12]
    return token_dir() / f"{host}-{digest}.json"


def load(server: str) -> dict[str, Any] | None:
    path = cache_file(server)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("server") == server else None


def save(server: str, entry: dict[str, Any]) -> Path:
    path = cache_file(server)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({**entry, "server": server}, f)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def remove(server: str) -> bool:
    try:
        cache_file(server).unlink()
        return True
    except FileNotFoundError:
        return False


def with_expiry(answer: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A token endpoint's answer → what is cached: expires_in becomes an absolute expires_at."""
    entry = {k: answer[k] for k in ("access_token", "refresh_token", "scope", "token_type") if k in answer}
    if isinstance(answer.get("expires_in"), int | float):
        entry["expires_at"] = (now or time.time()) + float(answer["expires_in"])
    return entry


def fresh(entry: dict[str, Any], now: float | None = None) -> bool:
    expires = entry.get("expires_at")
    return not isinstance(expires, int | float) or (now or time.time()) < expires - REFRESH_EARLY_S


def default_server() -> str | None:
    """The server of the last `hpgc login`: commands use it when neither --url nor HPGC_URL is given."""
    try:
        return (config_dir() / "server").read_text().strip() or None
    except OSError:
        return None


def set_default_server(server: str) -> None:
    token_dir()  # the folder, private
    (config_dir() / "server").write_text(server + "\n")
