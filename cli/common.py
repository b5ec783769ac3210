"""Helpers shared by the CLI commands: settings, database, exit codes, logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime

from timeline.config import Settings
from timeline.config import load_settings as _load
from timeline.db import Database

EX_OK = 0
EX_USAGE = 2
EX_CONFIG = 78  # sysexits.h EX_CONFIG, as Red-DiscordBot uses it

DEFAULT_CONFIG = "config.toml"
CONFIG_ENV = "TIMELINE_BOT_CONFIG"


def config_path(args: argparse.Namespace) -> str:
    """Return the config path from --config, $TIMELINE_BOT_CONFIG, or ./config.toml."""
    return getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def load_settings(args: argparse.Namespace) -> Settings:
    """Load and validate the settings named by the command line (raises ConfigError)."""
    return _load(config_path(args))


def open_database(settings: Settings) -> Database:
    """Open the configured database (the caller disposes it)."""
    return Database(settings.database.url)


def print_err(message: str) -> None:
    """Write one line to stderr."""
    print(message, file=sys.stderr)


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


def setup_logging(level: str) -> None:
    """Log to stderr in one line per record, secrets redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(SECRETS)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns the product's own lines.
    for noisy in ("discord", "apscheduler", "aiosqlite", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
