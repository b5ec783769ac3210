"""`timeline-bot settings timezone|show`: the terminal twin of /settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli.main import main
from timeline.migrate import upgrade


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("settings") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def cfg(tmp_path: Path, migrated: Path) -> Path:
    shutil.copyfile(migrated, tmp_path / "t.db")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n[discord]\ntimezone = "Asia/Tokyo"\n'
    )
    return path


def test_set_and_show_a_guilds_zone(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(cfg), "settings", "show", "--guild", "5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["timezone"], shown["origin"], shown["utc_offset"]) == (
        "Asia/Tokyo",
        "config",
        "+0900",
    )
    argv = ["--config", str(cfg), "settings", "timezone", "America/Sao_Paulo", "--guild", "5"]
    assert main([*argv, "--actor", "ops"]) == 0
    assert "guild 5: timezone America/Sao_Paulo (UTC-0300) - set by ops" in capsys.readouterr().out
    assert main(["--config", str(cfg), "settings", "show", "--guild", "5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["timezone"], shown["origin"], shown["updated_by"]) == (
        "America/Sao_Paulo",
        "guild",
        "ops",
    )


def test_a_bad_zone_or_the_config_scope_is_refused(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(cfg), "settings", "timezone", "Nowhere/Town", "--guild", "5"]) == 1
    assert "unknown time zone 'Nowhere/Town'" in capsys.readouterr().err
    assert main(["--config", str(cfg), "settings", "timezone", "Europe/Paris"]) == 1
    assert "[discord] timezone" in capsys.readouterr().err
