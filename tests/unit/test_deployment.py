"""docs/deploy/hpgc.service is a unit systemd accepts (`systemd-analyze verify`), with the hardening
docs/deployment.md promises; .ci/test installs systemd where it is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "docs/deploy/hpgc.service"


def test_the_unit_file_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (apt-get install systemd; .ci/test does)"
    # verify checks that ExecStart exists: point it at this checkout's hpgc instead of /opt/hpgc's
    hpgc = Path(sys.executable).with_name("hpgc")
    unit = tmp_path / "hpgc.service"
    unit.write_text(UNIT.read_text().replace("/opt/hpgc/.venv/bin/hpgc", str(hpgc)))
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "hpgc.service" not in out.stderr, out.stderr


def test_the_unit_is_hardened() -> None:
    lines = set(UNIT.read_text().splitlines())
    for option in ("User=hpgc", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                   "UMask=0077", "CapabilityBoundingSet=", "ReadWritePaths=/var/lib/hpgc"):
        assert option in lines, option
