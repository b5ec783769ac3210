"""Config loading: the example validates, bad files name the file, the key and what is allowed."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from timeline.app.config import (
    AlertSettings,
    ConfigProblems,
    DatabaseSettings,
    DiscordSettings,
    FeedConfig,
    MetricsSettings,
    PollingSettings,
    Settings,
    WatchConfig,
    check_settings,
    load_settings,
    parse_settings,
)
from timeline.cli.common import SecretFilter
from timeline.cli.main import main
from timeline.domain.errors import ConfigError
from timeline.storage.engine import Database
from timeline.storage.models import Alias, Watch
from timeline.usecases.config_io import sync_config

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid() -> None:
    settings = load_settings(ROOT / "config.example.toml")
    assert [f.name for f in settings.feeds] == ["BBC World", "NATO News"]
    assert settings.watches[0].query == "NATO communique"
    assert settings.watches[0].role_id == 234567890123456789
    assert settings.aliases["china"] == "China OR Chinese OR Beijing"
    assert settings.discord.token_env == "DISCORD_TOKEN"
    assert settings.alerts.digest_cron == {123456789012345678: "0 18 * * *"}
    assert settings.discord.timezone == "Europe/Paris"
    # The relative SQLite path is anchored at the config file's folder.
    assert settings.database.url == f"sqlite:///{ROOT / 'timeline.db'}"


def test_every_example_key_is_commented() -> None:
    lines = (ROOT / "config.example.toml").read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if "=" in stripped and not stripped.startswith("#") and not stripped.startswith("["):
            assert lines[i - 1].strip().startswith("#"), (
                f"config.example.toml line {i + 1} has no comment above it: {line}"
            )


@pytest.mark.parametrize(
    "cls",
    [
        DatabaseSettings,
        PollingSettings,
        FeedConfig,
        WatchConfig,
        DiscordSettings,
        AlertSettings,
        MetricsSettings,
    ],
)
def test_example_documents_every_setting(cls: type) -> None:
    text = (ROOT / "config.example.toml").read_text()
    for name in (f.name for f in dataclasses.fields(cls)):
        assert re.search(rf"^(#? ?{name} = |\[[a-z.]*{name}\])", text, re.M), (
            f"{cls.__name__}.{name} undocumented"
        )


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ("[polling]\ninterval_seconds = 'often'", "polling.interval_seconds", "integer"),
        ("[polling]\ninterval_seconds = 5", "polling.interval_seconds", "at least 10"),
        ("[polling]\nconcurency = 3", "polling.concurency", "allowed keys here"),
        ("[[feeds]]\nname = 'x'\nurl = 'ftp://x/feed'", "feeds[0].url", "http"),
        ("[[feeds]]\nurl = 'https://x/feed'", "feeds[0].name", "required"),
        (
            "[[feeds]]\nname='a'\nurl='https://a/'\n[[feeds]]\nname='A'\nurl='https://b/'",
            "feeds[1].name",
            "used twice",
        ),
        ("[[watches]]\nname = 'w'\nquery = 'x'", "watches[0].channel_id", "required"),
        ("[[watches]]\nname='w'\nquery='x'\nchannel_id=-4", "watches[0].channel_id", "Discord id"),
        ("[discord]\ntoken = 'abc'", "discord.token", "token_env"),
        ("[discord]\ntoken_env = 'not a name'", "discord.token_env", "environment variable"),
        ("[database]\nurl = 'mysql://x'", "database.url", "postgresql"),
        ("[polling]\nallow_private = ['not a host!']", "polling.allow_private", "CIDR"),
        ("[alerts.digest_cron]\n'12' = 'daily'", "alerts.digest_cron.12", "cron"),
        ("[surprise]\nx = 1", "surprise", "allowed"),
        ("[metrics]\nport = 70000", "metrics.port", "at most 65535"),
        ("[polling]\nlease_seconds = 0", "polling.lease_seconds", "between"),
        ("[discord]\ntimezone = 'Mars/Olympus'", "discord.timezone", "unknown time zone"),
        ("[discord]\ntimezone = 'europe/paris'", "discord.timezone", "'Europe/Paris'?"),
        ("[discord]\ntimezone = '../../etc/passwd'", "discord.timezone", "IANA"),
        ("[discord]\ntimezone = 2", "discord.timezone", "string"),
    ],
)
def test_bad_value_names_key_and_allowed(toml: str, key: str, allowed: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == key
    assert allowed in info.value.message
    assert str(path) in str(info.value)


def test_bad_config_exits_78_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[polling]\nconcurrency = 0\n")
    assert main(["--config", str(path), "config", "check"]) == 78
    err = capsys.readouterr().err
    assert str(path) in err and "polling.concurrency" in err and "at least 1" in err


def test_unknown_time_zone_exits_78_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[discord]\ntimezone = "Europe/Atlantis"\n')
    assert main(["--config", str(path), "config", "check"]) == 78
    err = capsys.readouterr().err
    assert f"{path}: discord.timezone: unknown time zone 'Europe/Atlantis'" in err


def test_invalid_toml_and_missing_file_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[polling\n")
    assert main(["--config", str(path), "config", "check"]) == 78
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "nope.toml"), "config", "check"]) == 78
    assert "not found" in capsys.readouterr().err


def test_missing_token_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TLBOT_TEST_TOKEN", raising=False)
    path = tmp_path / "config.toml"
    path.write_text("[discord]\ntoken_env = 'TLBOT_TEST_TOKEN'\n")
    assert main(["--config", str(path), "run"]) == 78
    assert "TLBOT_TEST_TOKEN" in capsys.readouterr().err


def test_database_password_not_in_repr() -> None:
    settings = parse_settings({"database": {"url": "postgresql://bob:hunter2@db/x"}})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(settings.database)


def test_token_is_redacted_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:

    secret = "MTIzNDU2Nzg5.abcdef.ghijklmnop"
    flt = SecretFilter()
    flt.add(secret)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token is %s", (secret,), None)
    flt.filter(record)
    assert secret not in record.getMessage()


def test_commands_on_an_unmigrated_database_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
    assert main(["--config", str(path), "timeline"]) == 1
    assert "timeline-bot db upgrade" in capsys.readouterr().err
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    assert main(["--config", str(path), "timeline"]) == 0


SYNC_CASES = [
    # (a field of Settings built in code, the same value as TOML)
    (
        {"watches": (WatchConfig("x", "(NATO", 10),)},
        "[[watches]]\nname = 'x'\nquery = '(NATO'\nchannel_id = 10\n",
    ),
    (
        {"watches": (WatchConfig("x", "@nope", 10),)},
        "[[watches]]\nname = 'x'\nquery = '@nope'\nchannel_id = 10\n",
    ),
    ({"aliases": {"a": "@b", "b": "@a"}}, "[aliases]\na = '@b'\nb = '@a'\n"),
    (
        {"alerts": AlertSettings(digest_cron={12: "61 * * * *"})},
        "[alerts.digest_cron]\n'12' = '61 * * * *'\n",
    ),
    (
        {"polling": PollingSettings(user_agent="bot\r\nX-Evil: 1")},
        '[polling]\nuser_agent = "bot\\r\\nX-Evil: 1"\n',
    ),
]


@pytest.mark.parametrize(("fields", "toml"), SYNC_CASES)
async def test_sync_refuses_exactly_what_the_loader_refuses(
    fields: dict[str, object], toml: str, db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigProblems) as loaded:
        load_settings(path)
    settings = Settings(path=str(path), **fields)  # type: ignore[arg-type]
    assert [str(e) for e in check_settings(settings)] == loaded.value.lines()
    async with db.session() as s:
        with pytest.raises(ConfigProblems) as synced:
            await sync_config(s, settings)
        assert synced.value.lines() == loaded.value.lines()
        # Refused before any change.
        assert (await s.scalars(select(Watch))).all() == []
        assert (await s.scalars(select(Alias))).all() == []
