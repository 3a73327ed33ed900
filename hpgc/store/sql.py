"""Rows in and out of SQLite: JSON columns encoded and decoded, and the plain SQL of the hot paths."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import sqlite_utils

JSON_COLUMNS = ("request", "results", "error", "subscriber", "details", "package", "description", "resources",
                "usage", "tasks")
TERMINAL = ("successful", "failed", "dismissed")


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (json.dumps(v) if k in JSON_COLUMNS and v is not None and not isinstance(v, str) else v)
        for k, v in row.items()
    }


def _insert(db: sqlite_utils.Database, table: str, row: dict[str, Any]) -> None:
    # plain SQL on the hot paths: sqlite-utils' insert and update read the table's schema on every call,
    # which was most of the cost of a job's insert, status change or notification
    db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _update(db: sqlite_utils.Database, table: str, key: str | int, changes: dict[str, Any]) -> None:
    db.execute(f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?",
               [*changes.values(), key])


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A query's rows as dicts (JSON columns still encoded)."""
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _select_one(conn: sqlite3.Connection | sqlite_utils.Database, table: str, key: str) -> dict[str, Any] | None:
    rows = _rows(conn.execute(f"SELECT * FROM {table} WHERE id = ?", [key]))
    return _decode(rows[0]) if rows else None


def _decode(row: dict[str, Any] | None, columns: tuple[str, ...] = JSON_COLUMNS) -> dict[str, Any] | None:
    """The row with its JSON columns (those of `columns` it has) decoded, in place: every caller passes a row
    it has just read."""
    if row is None:
        return None
    for k in columns:
        if isinstance(v := row.get(k), str):
            row[k] = json.loads(v)
    return row
