"""The outbox of subscriber callbacks (one row per notification) and its delivery attempts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpgc.store.base import Tables
from hpgc.store.rows import OutboxRow
from hpgc.store.sql import _insert, _rows, _update


class OutboxTable(Tables):
    def due_outbox(
        self, now: float, limit: int, busy_ids: Iterable[int] = (), busy_hosts: Iterable[str] = ()
    ) -> list[OutboxRow]:
        """Pending notifications whose time has come, oldest first.

        A row waits while an older pending row for the same job and URL exists, so one receiver sees a
        job's notifications in order. Rows already being sent, or for hosts with no free slot, are skipped.
        """
        busy_ids, busy_hosts = list(busy_ids), list(busy_hosts)
        sql = (
            "SELECT * FROM outbox o WHERE delivered IS NULL AND given_up IS NULL AND next_attempt <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.job_id = o.job_id AND p.url = o.url"
            " AND p.id < o.id AND p.delivered IS NULL AND p.given_up IS NULL)"
        )
        if busy_ids:
            sql += f" AND id NOT IN ({','.join('?' * len(busy_ids))})"
        if busy_hosts:
            sql += f" AND host NOT IN ({','.join('?' * len(busy_hosts))})"
        sql += " ORDER BY next_attempt, id LIMIT ?"
        with self._lock:
            return _rows(self.db.execute(sql, [now, *busy_ids, *busy_hosts, limit]))

    def next_outbox_time(self, busy_ids: Iterable[int] = ()) -> float | None:
        """When the next pending notification (not being sent now) is due; None when there is none."""
        busy_ids = list(busy_ids)
        sql = "SELECT MIN(next_attempt) FROM outbox WHERE delivered IS NULL AND given_up IS NULL"
        if busy_ids:
            sql += f" AND id NOT IN ({','.join('?' * len(busy_ids))})"
        with self._lock:
            value = self.db.execute(sql, busy_ids).fetchone()[0]
        return None if value is None else float(value)

    def record_attempt(self, outbox_id: int, changes: dict[str, Any], attempt: dict[str, Any]) -> None:
        self.record_attempts([(outbox_id, changes, attempt)])

    def record_attempts(self, items: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> None:
        """Delivery attempts: each outbox row's new state with its attempt's log line, in one transaction
        (a thousand deliveries finishing together are a few commits, not a thousand)."""
        with self.transaction() as db:
            for outbox_id, changes, attempt in items:
                _update(db, "outbox", outbox_id, changes)
                _insert(db, "outbox_attempts", {"outbox_id": outbox_id, **attempt})

    def job_outbox(self, job_id: str) -> list[OutboxRow]:
        """A job's notifications, oldest first, each with its attempts under `history`."""
        with self._lock:
            rows = list(self.db["outbox"].rows_where("job_id = ?", [job_id], order_by="id"))
            ids = [r["id"] for r in rows]
            history: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for a in self.db["outbox_attempts"].rows_where(
                    f"outbox_id IN ({','.join('?' * len(ids))})", ids, order_by="id"
                ):
                    history[a["outbox_id"]].append(a)
        return [{**r, "history": history[r["id"]]} for r in rows]
