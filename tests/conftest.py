from __future__ import annotations

from pathlib import Path

import pytest

from hpgc.auth import AuthSettings
from hpgc.config import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults in a temporary data dir, without auth (auth has its own tests)."""
    return Settings(data_dir=tmp_path / "data", appkgs_dir=REPO / "appkgs", auth=AuthSettings(enabled=False),
                    poll_interval_s=0.2)
