"""The uploads table: files users sent with POST /files (where a backend keeps them, their size and checksum,
until when they are kept) and upload_uses, the jobs each one was given to."""

from __future__ import annotations

from typing import Any

from hpgc.store.base import Tables
from hpgc.store.sql import _insert, _rows

ACTIVE = "('accepted', 'running')"


class UploadTable(Tables):
    def reserve_upload(self, row: dict[str, Any], quota: int) -> int | None:
        """Store a new upload (status 'uploading', `size` the bytes reserved for it) unless its owner's files
        together would then exceed `quota` (> 0): counted in the same transaction, so concurrent uploads cannot
        overshoot. Returns None when stored, else the bytes the owner holds already."""
        with self.transaction() as db:
            used = self._used(db, row["owner"])
            if quota and used + row["size"] > quota:
                return used
            _insert(db, "uploads", row)
        return None

    @staticmethod
    def _used(db: Any, owner: str) -> int:
        return int(db.execute("SELECT COALESCE(SUM(size), 0) FROM uploads WHERE owner = ?", [owner]).fetchone()[0])

    def upload_bytes(self, owner: str) -> int:
        with self._lock:
            return self._used(self.db, owner)

    def finish_upload(self, upload_id: str, size: int, sha256: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE uploads SET size = ?, sha256 = ?, status = 'ready' WHERE id = ?",
                       [size, sha256, upload_id])

    def get_upload(self, upload_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = _rows(self.db.execute("SELECT * FROM uploads WHERE id = ?", [upload_id]))
        return rows[0] if rows else None

    def list_uploads(self, owner: str, limit: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            return _rows(self.db.execute("SELECT * FROM uploads WHERE owner = ? ORDER BY created, id LIMIT ?",
                                         [owner, limit]))

    def upload_in_use(self, upload_id: str) -> bool:
        """Whether a job that is still accepted or running was given this upload."""
        with self._lock:
            return self._in_use(self.db, upload_id)

    @staticmethod
    def _in_use(db: Any, upload_id: str) -> bool:
        sql = (f"SELECT 1 FROM upload_uses u JOIN jobs j ON j.id = u.job_id WHERE u.upload_id = ?"
               f" AND j.status IN {ACTIVE} LIMIT 1")
        return db.execute(sql, [upload_id]).fetchone() is not None

    def delete_upload(self, upload_id: str, unless_in_use: bool = True) -> bool:
        """Remove the row (and its uses); False when a job still accepted or running uses it."""
        with self.transaction() as db:
            if unless_in_use and self._in_use(db, upload_id):
                return False
            db.execute("DELETE FROM upload_uses WHERE upload_id = ?", [upload_id])
            db.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
        return True

    def use_uploads(self, job_id: str, upload_ids: list[str], expires: float) -> None:
        """A job was given these uploads: remember it, and keep each at least until `expires`."""
        with self.transaction() as db:
            for upload_id in upload_ids:
                db.execute("INSERT OR IGNORE INTO upload_uses (upload_id, job_id) VALUES (?, ?)", [upload_id, job_id])
                db.execute("UPDATE uploads SET expires = MAX(expires, ?) WHERE id = ?", [expires, upload_id])

    def expired_uploads(self, now: float, stale_before: float, limit: int) -> list[dict[str, Any]]:
        """Ready uploads past their time that no active job uses, and uploads that never finished (the server
        stopped during them) started before `stale_before`."""
        sql = (f"SELECT * FROM uploads AS f WHERE ((f.status = 'ready' AND f.expires < ?)"
               f" OR (f.status = 'uploading' AND f.created < ?)) AND NOT EXISTS (SELECT 1 FROM upload_uses u"
               f" JOIN jobs j ON j.id = u.job_id WHERE u.upload_id = f.id AND j.status IN {ACTIVE})"
               f" ORDER BY f.expires LIMIT ?")
        with self._lock:
            return _rows(self.db.execute(sql, [now, stale_before, limit]))
