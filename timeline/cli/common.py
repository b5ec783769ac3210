"""Helpers shared by the CLI commands: settings, database, exit codes, logging."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime

from timeline.app.config import ConfigProblems, Settings
from timeline.app.config import load_settings as _load
from timeline.domain.errors import ConfigError
from timeline.storage.engine import Database

EX_OK = 0
EX_USAGE = 2
EX_CONFIG = 78  # sysexits.h EX_CONFIG, as Red-DiscordBot uses it

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "TIMELINE_BOT_CONFIG"


def config_path(args: argparse.Namespace) -> str:
    """Return the config path from --config, $TIMELINE_BOT_CONFIG, or ./config.toml."""
    return getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def load_settings(args: argparse.Namespace) -> Settings:
    """Load and validate the settings named by the command line (raises ConfigError)."""
    return _load(config_path(args))


def accept_config(args: argparse.Namespace) -> bool:
    """Return whether `--accept-config` was given: sync even if it retires most feeds/watches."""
    return bool(getattr(args, "accept_config", False))


def web_secret(settings: Settings) -> bytes | None:
    """Return the web link secret when `[web]` is enabled (ConfigError if unset), else None.

    The secret is added to the log redaction list.
    """
    if not settings.web.enabled:
        return None
    secret = settings.web.secret(settings.path)
    SECRETS.add(secret.decode("utf-8"))
    return secret


def open_database(settings: Settings) -> Database:
    """Open the configured database (the caller disposes it)."""
    return Database(settings.database.url)


def print_err(message: str) -> None:
    """Write one line to stderr."""
    print(message, file=sys.stderr)


def report_config_error(exc: ConfigError) -> int:
    """Print each problem as `FILE: KEY: REASON` on stderr, log one line; return EX_CONFIG."""
    lines = exc.lines() if isinstance(exc, ConfigProblems) else [str(exc)]
    log.error(
        "config refused: %d problem(s) in %s; the first: %s: %s",
        len(lines),
        exc.path,
        exc.key,
        exc.message,
        extra={"path": exc.path},
    )
    for line in lines:
        print_err(line)
    return EX_CONFIG


def iso(value: datetime | None) -> str | None:
    """Format an aware datetime as ISO 8601 UTC with a Z."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


class SecretFilter(logging.Filter):
    """Replace known secrets in log records, wherever they appear."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 8:
            self.secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


SECRETS = SecretFilter()


# The attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
LOG_FORMATS = ("text", "json")


def record_context(record: logging.LogRecord) -> dict[str, object]:
    """Return the `extra=` context of a record (feed, guild, actor, ...), in a stable order."""
    return {
        key: value
        for key, value in sorted(record.__dict__.items())
        if key not in _RECORD_FIELDS and not key.startswith("_")
    }


def _redact(text: str) -> str:
    for secret in SECRETS.secrets:
        text = text.replace(secret, "[redacted]")
    return text


class TextFormatter(logging.Formatter):
    """One line per record: date, time and zone, level, logger, message, then its context."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = record_context(record)
        if context:
            first, nl, rest = line.partition("\n")
            pairs = " ".join(f"{key}={value!r}" for key, value in context.items())
            line = f"{first} [{pairs}]{nl}{rest}"
        return _redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: ts, level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update({key: _jsonable(value) for key, value in record_context(record).items()})
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return _redact(json.dumps(body, ensure_ascii=False))


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def setup_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr, one line per record (text or JSON), secrets redacted."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(SECRETS)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns the product's own lines.
    for noisy in ("discord", "apscheduler", "aiosqlite", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
