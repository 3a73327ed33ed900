"""The processes hpgc offers: built-ins loaded from appkgs/ at start, and (Part 2) deployed ones.

Both live in the store; a Process is the stored row with its description parsed.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpgc.errors import NoSuchProcess
from hpgc.models.ogc import ProcessDescription
from hpgc.packages import cwl
from hpgc.store import Store

log = logging.getLogger(__name__)

CWL_MEDIA_TYPE = "application/cwl+json"


@dataclass(frozen=True)
class Process:
    id: str
    kind: str  # "cwl" | "command"
    description: ProcessDescription
    package: dict[str, Any]  # packed CWL, or the application package as deployed
    media_type: str
    owner: str | None
    builtin: bool
    backend: str | None
    updated: float


def _from_row(row: dict[str, Any]) -> Process:
    return Process(
        id=row["id"],
        kind="cwl" if row["media_type"] == CWL_MEDIA_TYPE else "command",
        description=ProcessDescription.model_validate(row["description"]),
        package=row["package"],
        media_type=row["media_type"],
        owner=row.get("owner"),
        builtin=row["kind"] == "builtin",
        backend=row.get("backend"),
        updated=row["updated"],
    )


@functools.lru_cache(maxsize=64)
def _pack_file(path: Path, mtime_ns: int) -> str:
    return json.dumps(cwl.pack(path))  # JSON text: the cached value must not be mutable


def load_builtin(folder: Path) -> tuple[ProcessDescription, dict[str, Any], str]:
    """One appkgs/ folder → (description, package, media type)."""
    cwl_files = sorted(folder.glob("*.cwl"))
    if cwl_files:
        packed = json.loads(_pack_file(cwl_files[0], cwl_files[0].stat().st_mtime_ns))
        description = cwl.describe(packed, folder.name)
        extra = folder / "process.json"  # optional overrides: jobControlOptions, title, keywords
        if extra.is_file():
            description = ProcessDescription.model_validate(
                {**description.model_dump(by_alias=True, exclude_none=True), **json.loads(extra.read_text())}
            )
        return description, packed, CWL_MEDIA_TYPE
    raise ValueError(f"{folder}: no .cwl file")


class ProcessRegistry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, Process] = {}

    def load_builtins(self, appkgs_dir: Path) -> list[str]:
        loaded: list[str] = []
        if not appkgs_dir.is_dir():
            log.warning("no built-in processes: %s is not a folder", appkgs_dir)
            return loaded
        known = {r["id"]: r for r in self.store.list_processes() if r["kind"] == "builtin"}
        for folder in sorted(p for p in appkgs_dir.iterdir() if p.is_dir()):
            try:
                description, package, media_type = load_builtin(folder)
            except Exception as exc:  # one bad package must not keep the server from starting
                log.error("built-in package %s not loaded: %s", folder.name, exc)
                continue
            row = {
                "id": description.id, "kind": "builtin", "owner": None, "media_type": media_type,
                "package": package, "description": description.model_dump(mode="json", by_alias=True,
                                                                           exclude_none=True),
                "backend": None, "status": "ready",
            }
            old = known.pop(description.id, None)
            if old is None or old["package"] != package or old["description"] != row["description"]:
                self.store.put_process(row)
            loaded.append(description.id)
        for stale in known:
            self.store.delete_process(stale)
        self._cache.clear()
        return loaded

    def get(self, process_id: str) -> Process:
        row = self.store.get_process(process_id)
        if row is None:
            raise NoSuchProcess(f"process '{process_id}' does not exist")
        cached = self._cache.get(process_id)
        if cached is not None and cached.updated == row["updated"]:
            return cached
        process = _from_row(row)
        self._cache[process_id] = process
        return process

    def all(self) -> list[Process]:
        return [self.get(r["id"]) for r in self.store.list_processes()]
