"""The web interface end to end in headless Chromium with auth on (tests/e2e/ui_journey.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.cdp import CHROMIUM
from tests.e2e.conftest import start_server
from tests.e2e.ui_journey import UI_ENV, Walk, report, walk_through

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/test installs it)")


def test_a_scientists_whole_path_in_a_browser(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env=UI_ENV)
    try:
        walk = asyncio.run(walk_through(Walk(server.url)))
    finally:
        server.stop()
    print("progress seen on the job page:", walk.progress_seen)
    # progress changed at least twice on the job page while it stayed the same document (no reload)
    assert len(set(walk.progress_seen)) >= 3, walk.progress_seen
    assert walk.downloaded.startswith(b"\x89PNG\r\n\x1a\n")
    assert walk.after_signout == (401, "/auth/authorize")  # JSON refused, pages back to sign in
    assert set(walk.accessibility) == {"signin", "deploy", "processes", "process", "job", "jobs", "landing"}
    assert all(v == [] for v in walk.accessibility.values()), report(walk)
