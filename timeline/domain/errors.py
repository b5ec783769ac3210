"""The domain exception tree: one place the Discord layer and the CLI turn into messages."""

from __future__ import annotations


class TimelineError(Exception):
    """Base of every error a person can be shown."""


class ConfigError(TimelineError):
    """The configuration file (or environment) is invalid."""

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        super().__init__(f"{path}: {key}: {message}")


class BadQuery(TimelineError):
    """A watch or search query that does not parse; `column` is 1-based."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.message = message
        self.column = column
        text = f"{message} at column {column}" if column is not None else message
        super().__init__(text)


class NotFound(TimelineError):
    """A feed, watch, event or alias that does not exist (in this guild)."""


class Conflict(TimelineError):
    """A name or URL that already exists."""


class FeedUnusable(TimelineError):
    """A feed URL that cannot be used: unreachable, not a feed, refused."""
