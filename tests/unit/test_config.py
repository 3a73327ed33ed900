from __future__ import annotations

from pathlib import Path

import pytest

from hpgc.cli import main
from hpgc.config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_toml_env_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "hpgc.toml"
    cfg.write_text('port = 9000\ntitle = "Test HPC"\n[local]\nmax_jobs = 2\n')
    monkeypatch.setenv("HPGC_LOCAL__MAX_JOBS", "3")
    s = load_settings(cfg, host="0.0.0.0")
    assert (s.port, s.title, s.host, s.local.max_jobs) == (9000, "Test HPC", "0.0.0.0", 3)


def test_invalid_configuration_is_readable(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('port = "eighty"\nunknown_key = 1\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    text = str(err.value)
    assert "port" in text and "unknown_key" in text and str(cfg) in text
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_cli_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("port = -1\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "port" in capsys.readouterr().err


def test_configuration_docs_are_current(tmp_path: Path) -> None:
    out = tmp_path / "configuration.md"
    assert main(["config-docs", "--output", str(out)]) == 0
    assert out.read_text() == (REPO / "docs/configuration.md").read_text(), (
        "docs/configuration.md is stale: run `hpgc config-docs --output docs/configuration.md`"
    )


def test_data_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(data_dir=Path("hpgc-data"))
    assert s.data_dir == tmp_path / "hpgc-data"  # job dirs are used by subprocesses with another cwd
