"""Mutation score of the fast suites (tests/unit tests/api) over hpgc's core modules, with mutmut 3.

mutmut plants one small change at a time in a module (a flipped comparison, a changed constant, a dropped
argument, ...) and runs the tests that reach that code: a mutant the tests fail on is "killed", one they pass
on "survived". The score of a module is killed / (mutants - those judged equivalent), where a timeout counts
as killed (the tests noticed: the mutant hung them) and "suspicious" (slow, unsure) and "no tests" do not.

    .venv/bin/python bench/mutation.py                      # every core module (slow: tens of minutes)
    .venv/bin/python bench/mutation.py 'hpgc/auth/*' 'hpgc/net/*'   # just these (globs as in only_mutate)
    .venv/bin/python bench/mutation.py --report             # the table from the last run(s), nothing run
    .venv/bin/python bench/mutation.py --rerun-survivors 'hpgc/auth/*'   # after changing tests: re-test survivors
    .venv/bin/python bench/mutation.py --survivors 'hpgc/auth/*'  # list survivors (then: mutmut show NAME)

It runs from the checkout's root: mutmut copies the tree into mutants/ (git-ignored) and keeps each mutant's
result there, so a second run only tests what changed; --fresh starts over. The committed [tool.mutmut] in
pyproject.toml is left as it is: this script sets only_mutate for its own run. Mutants judged equivalent (no
test could tell them apart from the original) are listed in tests/mutation-equivalent.txt, one name a line
followed by "# why"; they are left out of the score and counted in the "equiv." column.

Not in CI: it takes too long. Run it when you change one of the core modules (docs/testing.md).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT = REPO / "tests" / "mutation-equivalent.txt"

# The core: logic whose silent change a user would see (issue 21). Paths as mutmut's only_mutate globs.
CORE = [
    "hpgc/backends/slurm/jobid.py",
    "hpgc/backends/slurm/states.py",
    "hpgc/backends/slurm/commands/*.py",
    "hpgc/backends/slurm/poller.py",
    "hpgc/backends/slurm/script.py",
    "hpgc/packages/command.py",
    "hpgc/packages/inputs.py",
    "hpgc/jobs/submission.py",
    "hpgc/jobs/lifecycle.py",
    "hpgc/jobs/results.py",
    "hpgc/jobs/catalog.py",
    "hpgc/jobs/batching.py",
    "hpgc/jobs/documents.py",
    "hpgc/jobs/monitor.py",
    "hpgc/jobs/callbacks/dispatcher.py",
    "hpgc/jobs/callbacks/notifier.py",
    "hpgc/auth/settings.py",
    "hpgc/auth/identity.py",
    "hpgc/auth/principal.py",
    "hpgc/auth/issuer.py",
    "hpgc/auth/verifier.py",
    "hpgc/net/guard.py",
    "hpgc/store/*.py",
    "hpgc/api/results.py",
    "hpgc/models/names.py",
]

# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into this script's columns
KILLED, SURVIVED, TIMEOUT, SUSPICIOUS, NO_TESTS, NOT_RUN = "killed", "survived", "timeout", "suspicious", \
    "no tests", "not run"


def status_of(exit_code: int | None) -> str:
    if exit_code is None:
        return NOT_RUN
    if exit_code in (1, 3, 37):  # a failing test, pytest's internal error, the type checker
        return KILLED
    if exit_code == 0:
        return SURVIVED
    if exit_code in (5, 33):
        return NO_TESTS
    if exit_code in (36, 24, -24, 152, 255):
        return TIMEOUT
    if exit_code == 34:  # skipped
        return NOT_RUN
    return SUSPICIOUS  # 35, a crash (segfault), an interrupted check, anything unknown


@dataclass
class Row:
    module: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        (KILLED, SURVIVED, TIMEOUT, SUSPICIOUS, NO_TESTS, NOT_RUN), 0))
    equivalent: int = 0
    survivors: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:  # the denominator: every mutant tested, less those judged equivalent
        c = self.counts
        return c[KILLED] + c[SURVIVED] + c[TIMEOUT] + c[SUSPICIOUS] + c[NO_TESTS]

    @property
    def score(self) -> float | None:
        return 100.0 * (self.counts[KILLED] + self.counts[TIMEOUT]) / self.scored if self.scored else None


def source_files() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "hpgc").rglob("*.py"))


def select(globs: list[str]) -> list[str]:
    """The source files that mutmut's only_mutate would pick with these globs (fnmatch on the relative path)."""
    chosen = [f for f in source_files() if any(fnmatch.fnmatch(f, g) for g in globs)]
    missing = [g for g in globs if not any(fnmatch.fnmatch(f, g) for f in source_files())]
    if missing:
        sys.exit(f"no source file matches {missing}")
    return chosen


def load_equivalent(path: Path) -> dict[str, str]:
    """name → why, from a file of "mutant.name  # why" lines ('#' lines and blank lines are skipped)."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text().splitlines(), 1):
        name, _, why = line.partition("#")
        name = name.strip()
        if not name:
            continue
        if not why.strip():
            print(f"warning: {path.name}:{n}: {name} has no '# why'", file=sys.stderr)
        out[name] = why.strip()
    return out


def results(modules: list[str], equivalent: dict[str, str]) -> tuple[list[Row], list[str]]:
    rows, problems = [], []
    for module in modules:
        meta = REPO / "mutants" / (module + ".meta")
        row = Row(module)
        rows.append(row)
        if not meta.exists():
            problems.append(f"{module}: no results (not run yet)")
            continue
        for name, code in sorted(json.loads(meta.read_text())["exit_code_by_key"].items()):
            status = status_of(code)
            if name in equivalent:
                if status in (KILLED, TIMEOUT):
                    problems.append(f"{name} is listed as equivalent but the tests kill it: remove it from the list")
                else:
                    row.equivalent += 1
                    continue
            row.counts[status] += 1
            if status in (SURVIVED, SUSPICIOUS, NO_TESTS):
                row.survivors.append(f"{name}: {status}")
    return rows, problems


def print_table(rows: list[Row]) -> float | None:
    head = ("module", "killed", "survived", "timeout", "suspicious", "no tests", "equiv.", "score")
    width = max(len(head[0]), *(len(r.module) for r in rows), len("total"))
    fmt = f"{{:<{width}}}" + " {:>8}" * (len(head) - 1)
    print(fmt.format(*head))
    total = Row("total")
    for r in [*rows, total]:
        if r is total:
            for r2 in rows:
                for k, v in r2.counts.items():
                    total.counts[k] += v
                total.equivalent += r2.equivalent
            print("-" * (width + 9 * (len(head) - 1)))
        c = r.counts
        score = "-" if r.score is None else f"{r.score:.1f} %"
        print(fmt.format(r.module, c[KILLED], c[SURVIVED], c[TIMEOUT], c[SUSPICIOUS], c[NO_TESTS], r.equivalent,
                         score))
    not_run = total.counts[NOT_RUN]
    print(f"\n{total.equivalent} mutant(s) judged equivalent left out of the score ({EQUIVALENT.relative_to(REPO)}); "
          "score = (killed + timeout) / (killed + survived + timeout + suspicious + no tests)")
    if not_run:
        print(f"{not_run} mutant(s) not run yet (an interrupted run?): run again to test them")
    return total.score


def run_mutmut(modules: list[str], names: list[str], max_children: int, tests: list[str] | None = None) -> int:
    """mutmut run in a child process, with only_mutate set to these modules and, with `tests`, only those test
    files run (nothing written to pyproject.toml)."""
    child = (
        "import sys\n"
        "from mutmut import configuration\n"
        "cfg = configuration.config()\n"
        "cfg.only_mutate = sys.argv[1].split('\\n')\n"
        "if sys.argv[3]:\n"
        "    cfg.pytest_add_cli_args_test_selection = sys.argv[3].split('\\n')\n"
        "from mutmut.__main__ import cli\n"
        "sys.argv = ['mutmut', 'run', '--max-children', sys.argv[2], *sys.argv[4:]]\n"
        "cli()\n"
    )
    return subprocess.call([sys.executable, "-c", child, "\n".join(modules), str(max_children),
                            "\n".join(tests or []), *names], cwd=REPO)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*", help="source paths or globs ('hpgc/auth/*', 'hpgc/net/*'); "
                    "default: the core modules")
    ap.add_argument("--report", action="store_true", help="print the table from the results in mutants/; run nothing")
    ap.add_argument("--fresh", action="store_true", help="delete mutants/ first (forget every earlier result)")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="then re-test every mutant not killed (after you changed tests: mutmut keeps the result of "
                    "a mutant whose function did not change)")
    ap.add_argument("--survivors", action="store_true", help="also list each surviving mutant (mutmut show NAME)")
    ap.add_argument("--equivalent", type=Path, default=EQUIVALENT, help="the list of equivalent mutants")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel test processes")
    ap.add_argument("--min-score", type=float, help="exit 1 when the total score is below this (in %%)")
    ap.add_argument("--tests", nargs="+", metavar="PATH",
                    help="run only these test files for each mutant instead of the fast suites: a lower bound, fast "
                    "for modules every test reaches (the store, the job service), where a full run takes hours")
    args = ap.parse_args()

    os.chdir(REPO)
    modules = select(args.modules or CORE)
    equivalent = load_equivalent(args.equivalent)

    if not args.report:
        if args.fresh:
            shutil.rmtree(REPO / "mutants", ignore_errors=True)
        # mutmut copies tests/ over the old copy: a test file deleted or renamed since would still run there
        shutil.rmtree(REPO / "mutants" / "tests", ignore_errors=True)
        code = run_mutmut(modules, [], args.max_children, args.tests)  # new and changed mutants; the rest is kept
        if code:
            sys.exit(f"mutmut run failed (exit {code})")
        if args.rerun_survivors:
            # mutmut keeps a mutant's result while its function is unchanged, even when the tests changed
            rows, _ = results(modules, {})
            names = [s.split(":")[0] for r in rows for s in r.survivors]
            print(f"\nre-testing {len(names)} mutant(s) that were not killed")
            if names and (code := run_mutmut(modules, names, args.max_children, args.tests)):
                sys.exit(f"mutmut run failed (exit {code})")
        print()

    rows, problems = results(modules, equivalent)
    score = print_table(rows)
    for p in problems:
        print("note:", p)
    if args.survivors:
        for r in rows:
            if r.survivors:
                print(f"\n{r.module}:")
                for s in r.survivors:
                    print("   ", s)
    if args.min_score is not None and (score is None or score < args.min_score):
        sys.exit(1)


if __name__ == "__main__":
    main()
