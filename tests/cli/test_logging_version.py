"""The CLI's --version, and log lines an operator or a log collector can use."""

from __future__ import annotations

import io
import json
import logging

import pytest

from timeline.cli import common
from timeline.cli.main import main


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("timeline-bot 0.")


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("timeline.x", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_text_lines_have_date_zone_and_context() -> None:
    line = common.TextFormatter().format(_record("feed failing", feed_id=3, actor="ann#1"))
    date, rest = line.split("T", 1)
    assert len(date) == 10 and date[4] == "-"  # 2026-12-06
    assert rest[8] in "+-"  # the zone offset right after HH:MM:SS
    assert line.endswith("feed failing [actor='ann#1' feed_id=3]")


def test_json_lines_carry_context_and_redact_secrets() -> None:
    common.SECRETS.add("s3cr3t-token-value")
    try:
        line = common.JsonFormatter().format(
            _record("connect with s3cr3t-token-value", guild_id=42, url="x?k=s3cr3t-token-value")
        )
    finally:
        common.SECRETS.secrets.discard("s3cr3t-token-value")
    body = json.loads(line)
    assert body["level"] == "WARNING" and body["logger"] == "timeline.x"
    assert body["guild_id"] == 42
    assert "s3cr3t" not in line
    assert body["message"] == "connect with [redacted]"
    assert "+" in body["ts"] or "-" in body["ts"][10:]


def test_log_format_flag_reaches_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("summary text"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        code = main(["--log-format", "json", "match", "NATO", "--title", "NATO summit"])
        assert code == 0
        assert isinstance(root.handlers[0].formatter, common.JsonFormatter)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
