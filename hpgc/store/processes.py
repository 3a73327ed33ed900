"""The processes table: deployed and built-in processes, their packages and descriptions."""

from __future__ import annotations

import time

from hpgc.store.base import Tables
from hpgc.store.rows import ProcessRow
from hpgc.store.sql import _decode, _encode, _insert, _select_one, _update


class ProcessTable(Tables):
    def put_process(self, row: ProcessRow) -> None:
        now = time.time()
        row = {"created": now, "updated": now, **row}
        with self.transaction() as db:
            existing = db["processes"].count_where("id = ?", [row["id"]])
            if existing:
                row.pop("created")
                row["updated"] = now
                _update(db, "processes", row["id"], _encode(row))
            else:
                _insert(db, "processes", _encode(row))

    def get_process(self, process_id: str) -> ProcessRow | None:
        with self._lock:
            return _select_one(self.db, "processes", process_id)

    def process_updated(self, process_id: str) -> float | None:
        """When the process last changed (None: there is no such process)."""
        with self._lock:
            row = self.db.execute("SELECT updated FROM processes WHERE id = ?", [process_id]).fetchone()
        return None if row is None else row[0]

    def list_processes(self) -> list[ProcessRow]:
        with self._lock:
            return [_decode(r) for r in self.db["processes"].rows_where(order_by="id")]  # type: ignore[misc]

    def count_deployed(self, owner: str | None) -> int:
        """How many processes `owner` deployed (the index on (owner, kind) answers it)."""
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM processes WHERE owner = ? AND kind = 'deployed'",
                                       [owner]).fetchone()[0])

    def delete_process(self, process_id: str) -> bool:
        with self.transaction() as db:
            n = db["processes"].count_where("id = ?", [process_id])
            db["processes"].delete_where("id = ?", [process_id])
        return bool(n)

