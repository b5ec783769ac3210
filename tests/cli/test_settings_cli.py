"""`timeline-bot settings timezone|show`: the terminal twin of /settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from timeline.cli.main import main
from timeline.storage.migrate import upgrade


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


def test_timeline_groups_days_and_reads_dates_in_the_guilds_zone(
    cfg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--config", str(cfg)]
    # The config scope's zone is the file's: Asia/Tokyo (UTC+9, no DST).
    assert main([*base, "add-event", "2025-07-09T23:30", "Late in Tokyo"]) == 0
    assert main([*base, "add-event", "2025-07-10T08:00", "Morning in Tokyo"]) == 0
    capsys.readouterr()
    assert main([*base, "timeline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "== Thursday 2025-07-10 (Asia/Tokyo) =="
    assert "2025-07-10T08:00:00+09:00  Morning in Tokyo" in lines[1]
    assert lines[2] == "== Wednesday 2025-07-09 (Asia/Tokyo) =="
    assert "2025-07-09T23:30:00+09:00  Late in Tokyo" in lines[3]
    assert main([*base, "timeline", "--until", "2025-07-09", "--json"]) == 0
    (only,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert only["title"] == "Late in Tokyo"
    assert (only["occurred_at"], only["occurred_local"]) == (
        "2025-07-09T14:30:00Z",
        "2025-07-09T23:30:00+09:00",
    )
    assert main([*base, "timeline", "--since", "2025-07-10", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "Morning in Tokyo" in md and "Late" not in md and "- 08:00 JST · " in md
