"""The [web] section: off by default, validated like the rest (exit 78, key named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from timeline.app.config import parse_settings
from timeline.cli.main import main
from timeline.domain.errors import ConfigError

SECRET_ENV = "TLBOT_TEST_WEB_SECRET"


def test_web_is_off_by_default() -> None:
    web = parse_settings({}).web
    assert web.enabled is False
    assert web.public_url == "http://127.0.0.1:8080"


def test_web_section_is_read() -> None:
    web = parse_settings(
        {
            "web": {
                "enabled": True,
                "host": "0.0.0.0",
                "port": 9000,
                "base_url": "https://timeline.example.org/",
                "token_lifetime_seconds": 600,
                "secret_env": SECRET_ENV,
            }
        }
    ).web
    assert (web.enabled, web.host, web.port, web.token_lifetime_seconds) == (
        True,
        "0.0.0.0",
        9000,
        600,
    )
    assert web.public_url == "https://timeline.example.org"
    assert web.secret_env == SECRET_ENV


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"enabled": "yes"}, "web.enabled", "true or false"),
        ({"port": 70000}, "web.port", "at most 65535"),
        ({"host": " "}, "web.host", "address to listen on"),
        ({"base_url": "ftp://x"}, "web.base_url", "http:// or https://"),
        ({"base_url": "timeline.example.org"}, "web.base_url", "http:// or https://"),
        ({"token_lifetime_seconds": 5}, "web.token_lifetime_seconds", "at least 60"),
        ({"secret_env": "not a name"}, "web.secret_env", "environment variable name"),
        ({"secret": "hunter2hunter2"}, "web.secret", "do not put the secret in the file"),
        ({"colour": "red"}, "web.colour", "unknown key"),
    ],
)
def test_bad_web_values_name_the_key(table: dict[str, object], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"web": table}, "conf.toml")
    assert info.value.key == key
    assert words in info.value.message
    assert "hunter2" not in str(info.value)


def test_missing_web_secret_exits_78_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLBOT_TEST_TOKEN", "discord-token-for-tests")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    path = tmp_path / "config.toml"
    path.write_text(
        "[discord]\ntoken_env = 'TLBOT_TEST_TOKEN'\n"
        f"[web]\nenabled = true\nsecret_env = '{SECRET_ENV}'\n"
    )
    for command in (["run"], ["discord"], ["config", "check", "--token"]):
        assert main(["--config", str(path), *command]) == 78
        err = capsys.readouterr().err
        assert SECRET_ENV in err and "web.secret_env" in err and str(path) in err
    monkeypatch.setenv(SECRET_ENV, "short")
    assert main(["--config", str(path), "run"]) == 78
    err = capsys.readouterr().err
    assert "shorter than 32" in err and "short" not in err.replace("shorter", "")


def test_config_check_names_the_web_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[web]\nenabled = true\nbase_url = 'https://tl.example.org'\n")
    assert main(["--config", str(path), "config", "check"]) == 0
    assert "web timeline at https://tl.example.org" in capsys.readouterr().out
