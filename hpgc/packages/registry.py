"""The processes hpgc offers: built-ins loaded from appkgs/ at start, and those deployed through Part 2.

Both live in the store's `processes` table; the `package` column holds what runs (`run`: a packed CWL
document or an application package) and what was deployed (`source`, `source_type`). A Process is that
row with its description parsed.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpgc.auth.principal import Principal
from hpgc.errors import DuplicatedProcess, ImmutableProcess, InvalidPackage, LimitReached, NoSuchProcess, NotAllowed
from hpgc.models.names import process_id_problem
from hpgc.models.ogc import ProcessDescription
from hpgc.models.package import CWL_MEDIA_TYPE, OGCAPPPKG
from hpgc.packages import cwl
from hpgc.packages.cwl_resources import check as check_resources
from hpgc.store import Store

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Process:
    id: str
    kind: str  # "cwl" | "command"
    description: ProcessDescription
    package: dict[str, Any]  # what runs
    source: str  # what was deployed, as it was sent
    source_type: str
    media_type: str
    owner: str | None
    builtin: bool
    backend: str | None
    status: str  # "ready" | "deploying" | "failed: …"
    updated: float


def _from_row(row: dict[str, Any]) -> Process:
    stored = row["package"]
    return Process(
        id=row["id"],
        kind="cwl" if row["media_type"] == CWL_MEDIA_TYPE else "command",
        description=ProcessDescription.model_validate(row["description"]),
        package=stored["run"],
        source=stored.get("source", ""),
        source_type=stored.get("source_type", row["media_type"]),
        media_type=row["media_type"],
        owner=row.get("owner"),
        builtin=row["kind"] == "builtin",
        backend=row.get("backend"),
        status=row.get("status") or "ready",
        updated=row["updated"],
    )


def process_row(description: ProcessDescription, run: dict[str, Any], media_type: str, source: str,
                source_type: str, kind: str, owner: str | None, status: str = "ready") -> dict[str, Any]:
    return {
        "id": description.id, "kind": kind, "owner": owner, "media_type": media_type,
        "package": {"run": run, "source": source, "source_type": source_type},
        "description": description.model_dump(mode="json", by_alias=True, exclude_none=True),
        "backend": None, "status": status,
    }


@functools.lru_cache(maxsize=64)
def _pack_file(path: Path, mtime_ns: int) -> str:
    return json.dumps(cwl.pack(path))  # JSON text: the cached value must not be mutable


def load_builtin(folder: Path) -> dict[str, Any]:
    """One appkgs/ folder → a process row. A folder holds a .cwl file, or a package.json
    (application/ogcapppkg+json); an optional process.json overrides description fields."""
    from hpgc.models.package import AppPackage
    from hpgc.packages.deploy import command_package

    extra_file = folder / "process.json"
    extra = json.loads(extra_file.read_text()) if extra_file.is_file() else {}
    cwl_files = sorted(folder.glob("*.cwl"))
    if cwl_files:
        source = cwl_files[0].read_text()
        packed = json.loads(_pack_file(cwl_files[0], cwl_files[0].stat().st_mtime_ns))
        check_resources(packed)
        description = cwl.describe(packed, folder.name)
        if extra:
            description = ProcessDescription.model_validate(
                {**description.model_dump(by_alias=True, exclude_none=True), **extra})
        return process_row(description, packed, CWL_MEDIA_TYPE, source, "application/cwl+yaml", "builtin", None)
    package_file = folder / "package.json"
    if package_file.is_file():
        source = package_file.read_text()
        raw = json.loads(source)
        d = command_package(AppPackage.model_validate(raw), raw, folder.name, source)
        return process_row(d.description, d.package, OGCAPPPKG, source, OGCAPPPKG, "builtin", None)
    raise ValueError(f"{folder}: no .cwl file and no package.json")


def _checked(row: dict[str, Any]) -> dict[str, Any]:
    problem = process_id_problem(row["id"])
    if problem is not None:
        raise InvalidPackage(problem)
    return row


class ProcessRegistry:
    def __init__(self, store: Store, owner_only: bool = False, max_deployed: int = 0, retry_after_s: int = 30) -> None:
        self.store = store
        self.owner_only = owner_only  # deployed processes visible to their owner (and admins) only
        self.max_deployed = max_deployed  # per owner (limits.processes_per_user); 0: no limit
        self.retry_after_s = retry_after_s
        self._cache: dict[str, Process] = {}

    def load_builtins(self, appkgs_dir: Path, names: list[str] | None = None) -> list[str]:
        loaded: list[str] = []
        if not appkgs_dir.is_dir():
            log.warning("no built-in processes: %s is not a folder", appkgs_dir)
            return loaded
        known = {r["id"]: r for r in self.store.list_processes() if r["kind"] == "builtin"}
        for folder in sorted(p for p in appkgs_dir.iterdir() if p.is_dir()):
            if names is not None and "*" not in names and folder.name not in names:
                continue
            try:
                row = _checked(load_builtin(folder))
            except Exception as exc:  # one bad package must not keep the server from starting
                log.error("built-in package %s not loaded: %s", folder.name, exc)
                continue
            old = known.pop(row["id"], None)
            if old is None or old["package"] != row["package"] or old["description"] != row["description"]:
                self.store.put_process(row)
            loaded.append(row["id"])
        for stale in known:
            self.store.delete_process(stale)
        self._cache.clear()
        return loaded

    def get(self, process_id: str) -> Process:
        cached = self._cache.get(process_id)
        # the stored package is only read and parsed when it changed: a CWL document can be large
        if cached is not None and cached.updated == self.store.process_updated(process_id):
            return cached
        row = self.store.get_process(process_id)
        if row is None:
            raise NoSuchProcess(f"process '{process_id}' does not exist")
        process = _from_row(row)
        self._cache[process_id] = process
        return process

    def all(self) -> list[Process]:
        return [self.get(r["id"]) for r in self.store.list_processes()]

    def visible(self, principal: Principal, process: Process) -> bool:
        return (not self.owner_only or process.builtin or principal.is_admin
                or process.owner == principal.subject)

    def get_for(self, principal: Principal, process_id: str) -> Process:
        """The process as `principal` may see it: one hidden from them does not exist for them."""
        process = self.get(process_id)
        if not self.visible(principal, process):
            raise NoSuchProcess(f"process '{process_id}' does not exist")
        return process

    def all_for(self, principal: Principal) -> list[Process]:
        return [p for p in self.all() if self.visible(principal, p)]

    # Part 2 ----------------------------------------------------------------------------------------
    def deploy(self, principal: Principal, row: dict[str, Any]) -> Process:
        _checked(row)
        if self.store.get_process(row["id"]) is not None:
            raise DuplicatedProcess(f"a process '{row['id']}' exists already; replace it with PUT")
        # counted in the database thread, which runs every deploy one after the other: no overshoot
        if self.max_deployed and self.store.count_deployed(principal.subject) >= self.max_deployed:
            raise LimitReached(f"you have deployed {self.max_deployed} processes, the most this server keeps for "
                               "one user; undeploy one (or replace one with PUT)", "processes_per_user",
                               self.max_deployed, self.retry_after_s)
        self.store.put_process({**row, "owner": principal.subject})
        return self.get(row["id"])

    def check_owner(self, principal: Principal, process_id: str) -> Process:
        process = self.get(process_id)
        if process.builtin:
            raise ImmutableProcess(f"'{process_id}' is built into this server and cannot be changed")
        if not principal.is_admin and process.owner != principal.subject:
            raise NotAllowed(f"only the owner of '{process_id}' or an administrator may change it")
        return process

    def replace(self, principal: Principal, process_id: str, row: dict[str, Any]) -> Process:
        old = self.check_owner(principal, process_id)
        self.store.put_process({**row, "id": process_id, "owner": old.owner})
        return self.get(process_id)

    def undeploy(self, principal: Principal, process_id: str) -> None:
        self.check_owner(principal, process_id)
        self.store.delete_process(process_id)
        self._cache.pop(process_id, None)

    def set_status(self, process_id: str, status: str) -> None:
        if self.store.get_process(process_id) is not None:
            self.store.put_process({"id": process_id, "status": status})
