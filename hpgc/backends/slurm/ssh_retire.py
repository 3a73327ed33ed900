"""Connections replaced while commands still run on them (a certificate renewal): each is closed when the
last command or transfer on it ends, so a renewal never cuts one off."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncssh


class Retiring:
    def __init__(self) -> None:
        self._busy: dict[asyncssh.SSHClientConnection, int] = {}  # channels/transfers under way, per connection
        self._retired: set[asyncssh.SSHClientConnection] = set()

    def retire(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._busy.get(conn, 0) == 0:
            conn.close()
        else:
            self._retired.add(conn)

    @contextlib.contextmanager
    def using(self, conn: asyncssh.SSHClientConnection) -> Iterator[None]:
        self._busy[conn] = self._busy.get(conn, 0) + 1
        try:
            yield
        finally:
            self._busy[conn] -= 1
            if self._busy[conn] == 0:
                del self._busy[conn]
                if conn in self._retired:
                    self._retired.discard(conn)
                    conn.close()

    def forget(self, conn: asyncssh.SSHClientConnection) -> None:
        self._retired.discard(conn)

    def close_all(self) -> None:
        for conn in self._retired:
            conn.close()
        self._retired.clear()

    @property
    def waiting(self) -> int:
        """Replaced connections still open for their last commands (tests read it)."""
        return len(self._retired)
