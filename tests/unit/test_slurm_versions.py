"""Slurm versions and their dialects (hpgc/backends/slurm/commands/versions.py), from what `sbatch --version`
prints on each tested release (tests/data/slurm/<version>/version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpgc.backends.slurm.commands.versions import SlurmVersion, dialect

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"


@pytest.mark.parametrize("text, version", [("slurm 24.11.5\n", "24.11.5"), ("slurm-wlm 22.05.8", "22.05.8"),
                                           ("slurm 26.05.5", "26.05.5"), ("slurm 23.02", "23.02.0")])
def test_version_parsed(text: str, version: str) -> None:
    assert str(SlurmVersion.parse(text)) == version


@pytest.mark.parametrize("text", ["", "command not found", "slurm", "sbatch: error: x 24.11"])
def test_not_a_version(text: str) -> None:
    assert SlurmVersion.parse(text) is None
    assert dialect(text).describe() == "an unknown Slurm version"


def test_tested_and_rate_limiting() -> None:
    assert dialect("slurm 22.05.8").tested and not dialect("slurm 22.05.8").rate_limiting
    assert dialect("slurm 24.11.5").rate_limiting and dialect("slurm 26.05.5").tested
    old = dialect("slurm 21.08.8")
    assert not old.tested and old.describe() == "Slurm 21.08.8 (hpgc is tested with 22.05, 24.11, 26.05)"


def test_every_recorded_version_is_a_tested_one() -> None:
    recorded = [p for p in DATA.iterdir() if (p / "version").is_file()]
    for folder in recorded:
        d = dialect((folder / "version").read_text())
        assert d.tested and d.version is not None and d.version.release == folder.name, folder
