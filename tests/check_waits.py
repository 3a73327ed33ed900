#!/usr/bin/env python3
"""The fast suites (tests/unit, tests/api) wait on events, never on the clock: run by .ci/test before pytest.

A sleep used to wait for an outcome makes a test flaky on a loaded machine and lets a bug slower than the
sleep pass; an assertion on elapsed wall-clock time fails on a slow machine and belongs in bench/. This
reads every .py file under the folders given (default: tests/unit tests/api) and reports:

- a call to `time.sleep` (however it was imported);
- a call to `asyncio.sleep` whose delay is not the literal 0 (`asyncio.sleep(0)` only yields to the loop);
- an `assert` that reads a monotonic clock (`time.monotonic`, `time.perf_counter`, their `_ns` forms, an
  event loop's `.time()`), or a difference of wall-clock times (`time.time() - t0`), directly or through a
  variable of the same function computed from one.

Each finding is printed as `path:line: function: what`. A finding is accepted only when its
`path::function` is in ALLOWED, with the reason; an ALLOWED entry that matches nothing is an error too, so
the list stays exact. Exit status: 0 when every finding is allowed, 1 otherwise.

    python tests/check_waits.py            # from the repository root
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# "path::function" (function: its qualified name, Class.method or outer.inner) → why it may wait or time.
# Only tests of timing itself belong here, never a wait for an outcome.
ALLOWED: dict[str, str] = {
    "tests/unit/slurm_fake.py::until": "the deadline helper itself: it asks for the outcome (a job's Slurm "
    "state, a file on the fake cluster) until the answer is there; its sleep is the interval between two "
    "questions, and the outcome, not the sleep, ends the wait",
}

MONOTONIC = {"monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"}
WALL = {"time", "time_ns"}
DEFAULT_DIRS = ("tests/unit", "tests/api")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    function: str
    what: str

    @property
    def key(self) -> str:
        return f"{self.path}::{self.function}"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.function}: {self.what}"


class _Imports(ast.NodeVisitor):
    """Local names bound to time.sleep, asyncio.sleep and the clocks by `from ... import ...`."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # local name → "time.sleep", "asyncio.sleep", "time.monotonic", ...
        self.modules: dict[str, str] = {"time": "time", "asyncio": "asyncio"}  # local name → module

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in ("time", "asyncio"):
                self.modules[alias.asname or alias.name] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in ("time", "asyncio"):
            for alias in node.names:
                self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"


def _callee(call: ast.Call, imports: _Imports) -> str | None:
    """"time.sleep", "asyncio.sleep", "time.monotonic", "loop.time"... for the calls this check knows."""
    func = call.func
    if isinstance(func, ast.Name):
        return imports.names.get(func.id)
    if isinstance(func, ast.Attribute):
        owner = func.value
        if isinstance(owner, ast.Name) and owner.id in imports.modules:
            return f"{imports.modules[owner.id]}.{func.attr}"
        if func.attr == "time":
            loop_call = isinstance(owner, ast.Call) and isinstance(owner.func, ast.Attribute | ast.Name) and (
                getattr(owner.func, "attr", None) or getattr(owner.func, "id", "")) in (
                "get_running_loop", "get_event_loop")
            if loop_call or (isinstance(owner, ast.Name | ast.Attribute) and "loop" in ast.unparse(owner).lower()):
                return "loop.time"
    return None


def _is_zero(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value == 0


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, imports: _Imports) -> None:
        self.path = path
        self.imports = imports
        self.stack: list[str] = []
        self.found: list[Finding] = []
        # per function: names computed from a monotonic clock, from the wall clock, and durations
        self.scopes: list[tuple[set[str], set[str], set[str]]] = [(set(), set(), set())]

    # scopes ------------------------------------------------------------------------------------------
    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.stack.append(node.name)
        if isinstance(node, ast.ClassDef):
            self.generic_visit(node)
        else:
            self.scopes.append(self._taint(node))
            self.generic_visit(node)
            self.scopes.pop()
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _function

    def _where(self) -> str:
        return ".".join(self.stack) or "<module>"

    def _add(self, node: ast.AST, what: str) -> None:
        self.found.append(Finding(self.path, getattr(node, "lineno", 0), self._where(), what))

    def _clock_kind(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Call):
            callee = _callee(node, self.imports)
            if callee == "loop.time" or callee in {f"time.{name}" for name in MONOTONIC}:
                return "monotonic"
            if callee in ("time.time", "time.time_ns"):
                return "wall"
        return None

    def _reads(self, tree: ast.AST, mono: set[str], wall: set[str]) -> tuple[bool, bool]:
        """Whether `tree` reads a monotonic clock, and whether it reads the wall clock."""
        m = w = False
        for sub in ast.walk(tree):
            kind = self._clock_kind(sub)
            m |= kind == "monotonic" or (isinstance(sub, ast.Name) and sub.id in mono)
            w |= kind == "wall" or (isinstance(sub, ast.Name) and sub.id in wall)
        return m, w

    def _subtracts_wall(self, tree: ast.AST, wall: set[str]) -> bool:
        """Whether `tree` holds a difference of two wall-clock readings (an elapsed time)."""
        return any(isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub)
                   and all(self._reads(side, set(), wall)[1] for side in (sub.left, sub.right))
                   for sub in ast.walk(tree))

    def _taint(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[set[str], set[str], set[str]]:
        mono, wall, durations = set(), set(), set()
        assigns = [n for n in ast.walk(fn) if isinstance(n, ast.Assign | ast.AnnAssign | ast.AugAssign)]
        for _ in range(3):  # a few rounds: t0 = clock(); elapsed = clock() - t0; late = elapsed > 2
            for node in assigns:
                if node.value is None:
                    continue
                m, w = self._reads(node.value, mono, wall)
                d = self._subtracts_wall(node.value, wall) or any(
                    isinstance(s, ast.Name) and s.id in durations for s in ast.walk(node.value))
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
                if m:
                    mono |= names
                if w:
                    wall |= names
                if d:
                    durations |= names
        return mono, wall, durations

    # findings ----------------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        callee = _callee(node, self.imports)
        if callee == "time.sleep":
            self._add(node, f"time.sleep({ast.unparse(node.args[0]) if node.args else ''})")
        elif callee == "asyncio.sleep":
            delay = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "delay"), None)
            if delay is None or not _is_zero(delay):
                self._add(node, f"asyncio.sleep({ast.unparse(delay) if delay is not None else ''})")
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        mono, wall, durations = self.scopes[-1]
        reads_mono, _ = self._reads(node.test, mono, set())
        if reads_mono:
            self._add(node, f"assert on a monotonic clock: {ast.unparse(node.test)}")
        elif self._subtracts_wall(node.test, wall) or any(
                isinstance(s, ast.Name) and s.id in durations for s in ast.walk(node.test)):
            self._add(node, f"assert on elapsed wall-clock time: {ast.unparse(node.test)}")
        self.generic_visit(node)


def check_source(source: str, path: str) -> list[Finding]:
    tree = ast.parse(source, filename=path)
    imports = _Imports()
    imports.visit(tree)
    checker = _Checker(path, imports)
    checker.visit(tree)
    return checker.found


def check(paths: list[Path], root: Path) -> Iterator[Finding]:
    for folder in paths:
        for file in sorted(folder.rglob("*.py")):
            rel = file.resolve().relative_to(root.resolve()).as_posix()
            yield from check_source(file.read_text(), rel)


def main(argv: list[str]) -> int:
    root = Path.cwd()
    found = list(check([Path(p) for p in argv or DEFAULT_DIRS], root))
    refused = [f for f in found if f.key not in ALLOWED]
    used = {f.key for f in found}
    stale = [key for key in ALLOWED if key not in used]
    for f in found:
        if f.key in ALLOWED:
            print(f"allowed  {f}   ({ALLOWED[f.key]})")
    for f in refused:
        print(f"REFUSED  {f}")
    for key in stale:
        print(f"STALE    {key}: in ALLOWED (tests/check_waits.py) but nothing there waits or times: remove it")
    if refused or stale:
        print(f"\n{len(refused)} sleep(s) or wall-clock assertion(s) in the fast suites, {len(stale)} stale "
              "allow-list entr(y/ies). Wait on the event itself (an asyncio.Event, a condition, the job's "
              "status with a deadline helper, the callback dispatcher's wait_idle()); timing belongs in bench/. "
              "Only a test of timing itself may be allowed, in ALLOWED with why.", file=sys.stderr)
        return 1
    print(f"no sleeps or wall-clock assertions in {', '.join(argv or DEFAULT_DIRS)} "
          f"({len(found)} allowed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
