#!/usr/bin/env python3
"""CI runs every test: fail when pytest's JUnit XML report (--junitxml) says a test was skipped.

A skip in CI means something the tests need is missing (a shell, chromium, the cluster, PyPI): .ci/test
installs all of it, so a skip there is a gap in what CI proves. Prints each skipped test with its reason.

    python tests/check_skips.py REPORT.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def skipped(report: Path) -> list[str]:
    """"test id: reason" of every skipped test in the report."""
    out = []
    for case in ET.parse(report).iter("testcase"):
        for skip in case.iter("skipped"):
            test = "::".join(p for p in (case.get("classname", ""), case.get("name", "")) if p)
            out.append(f"{test}: {skip.get('message') or skip.text or 'skipped'}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        found = skipped(Path(argv[0]))
    except (OSError, ET.ParseError) as exc:
        print(f"no readable pytest report in {argv[0]} ({exc}): pytest did not finish", file=sys.stderr)
        return 1
    for line in found:
        print(f"SKIPPED  {line}")
    if found:
        print(f"\n{len(found)} skipped test(s): CI runs every test; install or configure what they need "
              "(.ci/test).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
