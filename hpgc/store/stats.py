"""What operations reads of the store: counts for /metrics and the checks of /health/ready. Each is one
cheap query (a GROUP BY, or the outbox's partial index), run in the store's worker thread."""

from __future__ import annotations

from typing import TypedDict

from hpgc.store.base import Tables


class OutboxStats(TypedDict):
    pending: int  # notifications not yet delivered nor given up
    oldest_pending: float | None  # creation time of the oldest of them
    overdue: int  # pending ones whose next attempt is older than the `overdue_before` asked for


class StatsTable(Tables):
    def ping(self) -> bool:
        """The database answers a query."""
        with self._lock:
            return self.db.execute("SELECT 1").fetchone()[0] == 1

    def job_counts(self) -> list[tuple[str, str, str, str, int]]:
        """(status, process id, backend, cluster or '', number of jobs), one query over the whole table."""
        sql = ("SELECT status, process_id, backend, COALESCE(cluster, ''), COUNT(*) FROM jobs"
               " GROUP BY status, process_id, backend, cluster")
        with self._lock:
            return [(str(s), str(p), str(b), str(c), int(n)) for s, p, b, c, n in self.db.execute(sql)]

    def outbox_stats(self, overdue_before: float) -> OutboxStats:
        """How many callbacks wait, since when, and how many are overdue: a pending row whose next attempt
        was due before `overdue_before` means the dispatcher is not getting through the outbox."""
        sql = ("SELECT COUNT(*), MIN(created), COALESCE(SUM(next_attempt < ?), 0) FROM outbox"
               " WHERE delivered IS NULL AND given_up IS NULL")
        with self._lock:
            pending, oldest, overdue = self.db.execute(sql, [overdue_before]).fetchone()
        return {"pending": int(pending), "oldest_pending": None if oldest is None else float(oldest),
                "overdue": int(overdue)}
