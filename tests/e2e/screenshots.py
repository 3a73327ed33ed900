"""Regenerate docs/ui/*.png: the web interface's pages on a laptop and a phone, taken on the way through
tests/e2e/ui_journey.py (a real server, auth on, the development issuer).

    .venv/bin/python -m tests.e2e.screenshots [--out docs/ui]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.e2e.conftest import start_server
from tests.e2e.ui_journey import REPO, UI_ENV, Walk, report, walk_through


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ui")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", env={**UI_ENV, "HPGC_TITLE": "hpgc"})
        try:
            walk = asyncio.run(walk_through(Walk(server.url, shots=args.out)))
        finally:
            server.stop()
    print(f"{len(list(args.out.glob('*.png')))} screenshots in {args.out}")
    if any(walk.accessibility.values()):
        print("accessibility problems:", report(walk), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
