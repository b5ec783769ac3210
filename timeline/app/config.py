"""Load `config.toml` into typed, validated settings.

Every problem is a `ConfigError` that names the file, the key and what is allowed; one load
collects all of them (one per key) into a `ConfigProblems`, which the entry point prints one
`FILE: KEY: REASON` line each before exiting with code 78 (EX_CONFIG). Beyond types and
ranges the loader checks what the rest of the program would otherwise refuse later: queries
and aliases with the query language's parser, digest crons with APScheduler's, Discord ids,
header values. `check_settings` is that second half on its own; the start-up sync runs it too.
The Discord token never lives in the file: the file names the environment variable that holds
it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from timeline.domain import delivery_options
from timeline.domain.errors import BadQuery, ConfigError
from timeline.domain.query import parse_query
from timeline.render.templates import colour_problem, template_problem

DEFAULT_USER_AGENT = "TimelineBot/0.1 (+https://github.com/timeline-bot/timeline-bot)"
NAME_RE = re.compile(r"^[\w][\w .\-]{0,99}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALIAS_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]{1,50}$")
TIMEZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+){0,2}$")


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "sqlite:///timeline.db"

    def __repr__(self) -> str:
        # A server URL may carry a password: keep it out of reprs and logs.
        return f"DatabaseSettings(url={redact_url(self.url)!r})"


@dataclass(frozen=True, slots=True)
class PollingSettings:
    interval_seconds: int = 900
    min_interval_seconds: int = 60
    max_interval_seconds: int = 86_400
    concurrency: int = 20
    per_host_concurrency: int = 2
    timeout_seconds: float = 20.0
    max_body_bytes: int = 10 * 1024 * 1024
    user_agent: str = DEFAULT_USER_AGENT
    max_redirects: int = 5
    jitter: float = 0.1
    backoff_max_seconds: int = 6 * 3600
    failing_after: int = 5
    alert_on_first_poll: bool = False
    allow_private: tuple[str, ...] = ()
    tick_seconds: float = 30.0
    parse_workers: int = 0
    skip_seen_items: bool = True
    lease_seconds: float = 300.0
    storyline_window_days: int = 30
    # Where a poller saves its storyline indexes for the next start: "auto" (beside a SQLite
    # database file, none on another database), a path, or "" (none).
    storyline_snapshot: str = "auto"
    # Where a poller saves its clustering indexes for the next start (the same choices).
    event_index_snapshot: str = "auto"


@dataclass(frozen=True, slots=True)
class FeedConfig:
    name: str
    url: str
    interval_seconds: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WatchConfig:
    name: str
    query: str
    channel_id: int
    role_id: int | None = None
    enabled: bool = True
    # The alert's description template (timeline.render.templates) and "#rrggbb" colour.
    template: str | None = None
    colour: str | None = None
    # "channel" (as the bot) or "webhook" (through the channel webhook, with this author).
    delivery: str = "channel"
    webhook_name: str | None = None
    webhook_avatar: str | None = None


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    token_env: str = "DISCORD_TOKEN"
    guild_ids: tuple[int, ...] = ()
    admin_role_id: int | None = None
    shard_count: int | None = None
    # IANA zone of the config file's guilds (a guild may choose its own with /settings).
    timezone: str = "UTC"

    def token(self, path: str = "config") -> str:
        """Return the bot token from the environment, or raise a ConfigError naming the variable."""
        value = os.environ.get(self.token_env, "").strip()
        if not value:
            raise ConfigError(
                path,
                "discord.token_env",
                f"the environment variable {self.token_env} is not set; put the bot token there",
            )
        return value


@dataclass(frozen=True, slots=True)
class AlertSettings:
    burst_threshold: int = 5
    digest_cron: dict[int, str] = field(default_factory=dict)
    max_attempts: int = 8
    retry_base_seconds: float = 2.0
    snippet_chars: int = 300
    delivery_interval_seconds: float = 5.0
    # Where a feed turning failing, and recovering, is announced (one notice per change).
    ops_channel_id: int | None = None


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    host: str = "127.0.0.1"
    port: int | None = None


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The `[web]` section: the read-only web timeline `/web` links to (off by default)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""  # what members' browsers open; default http://host:port
    token_lifetime_seconds: int = 12 * 3600
    secret_env: str = "TIMELINE_WEB_SECRET"

    @property
    def public_url(self) -> str:
        """The base URL links point at, without a trailing slash."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    def secret(self, path: str = "config") -> bytes:
        """Return the link-signing secret from the environment, or raise a ConfigError."""
        value = os.environ.get(self.secret_env, "").strip()
        if len(value) < MIN_WEB_SECRET:
            state = "is not set" if not value else f"is shorter than {MIN_WEB_SECRET} characters"
            raise ConfigError(
                path,
                "web.secret_env",
                f"the environment variable {self.secret_env} {state}; put a random secret of "
                f"at least {MIN_WEB_SECRET} characters there (e.g. `openssl rand -hex 32`)",
            )
        return value.encode("utf-8")


MIN_WEB_SECRET = 32


@dataclass(frozen=True, slots=True)
class Settings:
    path: str = "<defaults>"
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    polling: PollingSettings = field(default_factory=PollingSettings)
    feeds: tuple[FeedConfig, ...] = ()
    watches: tuple[WatchConfig, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    web: WebSettings = field(default_factory=WebSettings)


def redact_url(url: str) -> str:
    """Hide the password part of a database or feed URL."""
    return re.sub(r"(//[^:/@]+:)[^@/]*@", r"\1***@", url)


class ConfigProblems(ConfigError):
    """Every problem found in one config file; `str()` gives one `FILE: KEY: REASON` line each.

    `path`, `key` and `message` are the first problem's, so code that handles one
    ConfigError keeps working.
    """

    def __init__(self, problems: Sequence[ConfigError]) -> None:
        flat: list[ConfigError] = []
        for problem in problems:
            flat.extend(problem.problems if isinstance(problem, ConfigProblems) else [problem])
        if not flat:
            raise ValueError("ConfigProblems needs at least one problem")
        super().__init__(flat[0].path, flat[0].key, flat[0].message)
        self.problems: tuple[ConfigError, ...] = tuple(flat)

    def lines(self) -> list[str]:
        """Return one `FILE: KEY: REASON` line per problem."""
        return [f"{p.path}: {p.key}: {p.message}" for p in self.problems]

    def __str__(self) -> str:
        return "\n".join(self.lines())


class _Problems:
    """Collect problems, one per key (the first reason found for a key is the one kept)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: dict[str, str] = {}

    def add(self, key: str, message: str) -> None:
        self.found.setdefault(key, message)

    def errors(self) -> list[ConfigError]:
        """Return the problems in the order of the file's sections and entries."""
        keys = sorted(self.found, key=_key_order)
        return [ConfigError(self.path, key, self.found[key]) for key in keys]

    def raise_if_any(self) -> None:
        if self.found:
            raise ConfigProblems(self.errors())


_SECTIONS = (
    "database",
    "polling",
    "feeds",
    "watches",
    "aliases",
    "discord",
    "alerts",
    "metrics",
    "web",
)
_KEY_HEAD = re.compile(r"([^.\[]*)(?:\[(\d+)\])?")


def _key_order(key: str) -> tuple[int, int]:
    match = _KEY_HEAD.match(key)
    section, index = (match.group(1), match.group(2)) if match else (key, None)
    rank = _SECTIONS.index(section) if section in _SECTIONS else -1
    return rank, int(index) if index is not None else -1


_BARE_KEY = re.compile(r"[A-Za-z0-9_\-]+")
SNOWFLAKE_MAX = 2**63 - 1  # ids are stored as signed 64-bit integers (BigInteger)
SNOWFLAKE_RULE = f"must be a Discord id: a positive integer of at most {SNOWFLAKE_MAX}"


def _part(name: object) -> str:
    """Return a key part as written in TOML: bare when it can be, else quoted and escaped.

    Key names come from the file; quoting keeps each problem on one line whatever they hold.
    """
    text = str(name)
    return text if _BARE_KEY.fullmatch(text) else json.dumps(text)


def _show(value: str, limit: int = 80) -> str:
    """Quote a value from the file for a message: escaped, on one line, shortened."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def parse_snowflake(value: object) -> int | None:
    """Return `value` (an integer or a string of ASCII digits) as a Discord id, or None."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,20}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= SNOWFLAKE_MAX:
        return None
    return value


def url_problem(url: str) -> str | None:
    """Return why `url` cannot be a feed URL, or None."""
    parts = urlsplit(url)
    try:
        host = parts.hostname
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        return f"must be an http:// or https:// URL, got {_show(url)}"
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        return f"must not contain spaces or control characters, got {_show(url)}"
    return None


def header_problem(value: str) -> str | None:
    """Return why `value` cannot be sent as an HTTP header value, or None (RFC 9110 5.5)."""
    if not value.strip():
        return "must not be empty"
    if "\r" in value or "\n" in value:
        # A line break would end the header and let the rest of the value inject others.
        return f"must not contain a line break (CR or LF), got {_show(value)}"
    if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
        return f"must not contain control characters, got {_show(value)}"
    return None


def query_problem(text: str, aliases: Mapping[str, str]) -> str | None:
    """Return the query language's own error (with its column) for `text`, or None."""
    try:
        parse_query(text, aliases)
    except BadQuery as exc:
        return f"{exc} in {_show(text)}"
    return None


def cron_problem(expression: str) -> str | None:
    """Return why APScheduler would not schedule `expression`, or None (checked in UTC: the
    guild zone it later runs in changes when it fires, not whether it parses).

    The digest scheduler builds its trigger the same way (`CronTrigger.from_crontab`).
    """
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415 (APScheduler costs 0.2 s: only when a cron is checked)

    try:
        trigger = CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as exc:
        return (
            f'{exc}; must be a cron expression "<minute> <hour> <day> <month> <weekday>", '
            f"got {_show(expression)}"
        )
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        return f"never fires (no such date), got {_show(expression)}"
    return None


def timezone_problem(name: str) -> str | None:
    """Return why `name` is not an IANA time zone zoneinfo knows (e.g. Europe/Paris), or None."""

    # ZoneInfo also opens paths: refuse anything that is not shaped like a zone name first.
    if not TIMEZONE_RE.fullmatch(name) or ".." in name:
        return f'must be an IANA time zone name such as "Europe/Paris" or "UTC", got {_show(name)}'
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = [z for z in available_timezones() if z.casefold() == name.casefold()]
        if close:
            return f"unknown time zone {_show(name)}; did you mean {close[0]!r}? (names are case-sensitive)"
        return (
            f'unknown time zone {_show(name)}; use an IANA name such as "Europe/Paris", '
            '"America/New_York" or "UTC"'
        )
    return None


class _Reader:
    """Pull typed values out of one TOML table, recording a problem naming the full key.

    A bad or missing value is recorded and replaced by the default (or a placeholder the
    later checks also refuse), so one run finds every problem of the file.
    """

    def __init__(self, problems: _Problems, prefix: str, table: Mapping[str, Any]) -> None:
        self.problems = problems
        self.prefix = prefix
        self.table = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{_part(name)}" if self.prefix else _part(name)

    def fail(self, name: str, message: str) -> None:
        self.problems.add(self.key(name), message)

    def _get(self, name: str, default: Any, required: bool) -> Any:
        self.used.add(name)
        if name not in self.table:
            if required:
                self.fail(name, "is required")
            return default
        return self.table[name]

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(name, default, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(name, f"must be a string, got {type(value).__name__}")
            return default
        return value

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> Any:
        value = self._get(name, default, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"must be an integer, got {type(value).__name__}")
            return default
        if minimum is not None and value < minimum:
            self.fail(name, f"must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.fail(name, f"must be at most {maximum}, got {value}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self._get(name, default, False)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, f"must be a number, got {type(value).__name__}")
            return default
        if not minimum <= value <= maximum:
            self.fail(name, f"must be between {minimum} and {maximum}, got {value}")
            return default
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default, False)
        if not isinstance(value, bool):
            self.fail(name, "must be true or false")
            return default
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self._get(name, [], False)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, "must be a list of strings")
            return ()
        return tuple(value)

    def snowflake(self, name: str, *, required: bool = False) -> Any:
        """A Discord id: an integer or a string of digits; 0 (refused later) when bad."""
        value = self._get(name, None, required)
        if value is None:
            return 0 if required else None
        parsed = parse_snowflake(value)
        if parsed is None:
            self.fail(name, f"{SNOWFLAKE_RULE}, got {_show(str(value))}")
            return 0
        return parsed

    def finish(self) -> None:
        allowed = ", ".join(sorted(self.used))
        for unknown in sorted(set(self.table) - self.used):
            self.fail(unknown, f"unknown key; allowed keys here: {allowed}")


def _table(problems: _Problems, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        problems.add(name, f"must be a table ([{name}])")
        return {}
    return value


def _list_of_tables(
    problems: _Problems, data: Mapping[str, Any], name: str
) -> list[Mapping[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.add(name, f"must be an array of tables ([[{name}]])")
        return []
    return value


def _polling(problems: _Problems, data: Mapping[str, Any]) -> PollingSettings:
    r = _Reader(problems, "polling", _table(problems, data, "polling"))
    d = PollingSettings()
    settings = PollingSettings(
        interval_seconds=r.integer("interval_seconds", d.interval_seconds, minimum=10),
        min_interval_seconds=r.integer("min_interval_seconds", d.min_interval_seconds, minimum=10),
        max_interval_seconds=r.integer("max_interval_seconds", d.max_interval_seconds, minimum=10),
        concurrency=r.integer("concurrency", d.concurrency, minimum=1, maximum=1000),
        per_host_concurrency=r.integer(
            "per_host_concurrency", d.per_host_concurrency, minimum=1, maximum=100
        ),
        timeout_seconds=r.number("timeout_seconds", d.timeout_seconds, minimum=0.1, maximum=600),
        max_body_bytes=r.integer(
            "max_body_bytes", d.max_body_bytes, minimum=1024, maximum=512 * 1024 * 1024
        ),
        user_agent=r.string("user_agent", d.user_agent),
        max_redirects=r.integer("max_redirects", d.max_redirects, minimum=0, maximum=20),
        jitter=r.number("jitter", d.jitter, minimum=0.0, maximum=0.5),
        backoff_max_seconds=r.integer("backoff_max_seconds", d.backoff_max_seconds, minimum=10),
        failing_after=r.integer("failing_after", d.failing_after, minimum=1, maximum=1000),
        alert_on_first_poll=r.boolean("alert_on_first_poll", d.alert_on_first_poll),
        allow_private=r.strings("allow_private"),
        tick_seconds=r.number("tick_seconds", d.tick_seconds, minimum=0.05, maximum=3600),
        parse_workers=r.integer("parse_workers", d.parse_workers, minimum=0, maximum=64),
        skip_seen_items=r.boolean("skip_seen_items", d.skip_seen_items),
        lease_seconds=r.number("lease_seconds", d.lease_seconds, minimum=0.5, maximum=86_400),
        storyline_window_days=r.integer(
            "storyline_window_days", d.storyline_window_days, minimum=1, maximum=365
        ),
        storyline_snapshot=r.string("storyline_snapshot", d.storyline_snapshot),
        event_index_snapshot=r.string("event_index_snapshot", d.event_index_snapshot),
    )
    r.finish()
    return settings


def _feeds(problems: _Problems, data: Mapping[str, Any]) -> tuple[FeedConfig, ...]:
    feeds: list[FeedConfig] = []
    for i, table in enumerate(_list_of_tables(problems, data, "feeds")):
        r = _Reader(problems, f"feeds[{i}]", table)
        feeds.append(
            FeedConfig(
                name=r.string("name", "", required=True).strip(),
                url=r.string("url", "", required=True).strip(),
                interval_seconds=r.integer("interval_seconds", None, minimum=10),
                tags=r.strings("tags"),
            )
        )
        r.finish()
    return tuple(feeds)


def _watches(problems: _Problems, data: Mapping[str, Any]) -> tuple[WatchConfig, ...]:
    watches: list[WatchConfig] = []
    for i, table in enumerate(_list_of_tables(problems, data, "watches")):
        r = _Reader(problems, f"watches[{i}]", table)
        watches.append(
            WatchConfig(
                name=r.string("name", "", required=True).strip(),
                query=r.string("query", "", required=True),
                channel_id=r.snowflake("channel_id", required=True),
                role_id=r.snowflake("role_id"),
                enabled=r.boolean("enabled", True),
                template=r.string("template"),
                colour=r.string("colour"),
                delivery=r.string("delivery", "channel") or "channel",
                webhook_name=r.string("webhook_name"),
                webhook_avatar=r.string("webhook_avatar"),
            )
        )
        r.finish()
    return tuple(watches)


def _aliases(problems: _Problems, data: Mapping[str, Any]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for name, value in _table(problems, data, "aliases").items():
        if not isinstance(value, str):
            problems.add(f"aliases.{_part(name)}", "must be a non-empty query string")
            value = ""
        aliases[name] = value
    return aliases


def _discord(problems: _Problems, data: Mapping[str, Any]) -> DiscordSettings:
    r = _Reader(problems, "discord", _table(problems, data, "discord"))
    token_env = r.string("token_env", "DISCORD_TOKEN")
    if not ENV_RE.fullmatch(token_env):
        r.fail("token_env", "must be an environment variable name such as DISCORD_TOKEN")
    if "token" in r.table:
        # Recorded before finish(), so this reason wins over "unknown key".
        r.fail("token", "do not put the token in the file; set token_env instead")
    raw_guilds = r._get("guild_ids", [], False)
    guild_ids: list[int] = []
    if not isinstance(raw_guilds, list):
        r.fail("guild_ids", "must be a list of Discord guild ids")
        raw_guilds = []
    for i, value in enumerate(raw_guilds):
        guild_id = parse_snowflake(value)
        if guild_id is None:
            problems.add(f"discord.guild_ids[{i}]", f"{SNOWFLAKE_RULE}, got {_show(str(value))}")
        else:
            guild_ids.append(guild_id)
    settings = DiscordSettings(
        token_env=token_env,
        guild_ids=tuple(guild_ids),
        admin_role_id=r.snowflake("admin_role_id"),
        shard_count=r.integer("shard_count", None, minimum=1, maximum=1000),
        timezone=r.string("timezone", DiscordSettings().timezone).strip(),
    )
    r.finish()
    return settings


def _alerts(problems: _Problems, data: Mapping[str, Any]) -> AlertSettings:
    r = _Reader(problems, "alerts", _table(problems, data, "alerts"))
    d = AlertSettings()
    raw_cron = r._get("digest_cron", {}, False)
    if not isinstance(raw_cron, dict):
        r.fail("digest_cron", 'must be a table of "<channel id>" = "<cron expression>"')
        raw_cron = {}
    cron: dict[int, str] = {}
    for channel, expression in raw_cron.items():
        key = f"alerts.digest_cron.{_part(channel)}"
        channel_id = parse_snowflake(channel)
        if channel_id is None:
            problems.add(key, f"the key {SNOWFLAKE_RULE.removeprefix('must be ')}")
        elif channel_id in cron:
            problems.add(key, f"channel {channel_id} has a digest already")
        elif not isinstance(expression, str):
            problems.add(key, 'must be a cron expression "<minute> <hour> <day> <month> <weekday>"')
        else:
            cron[channel_id] = expression
    settings = AlertSettings(
        burst_threshold=r.integer("burst_threshold", d.burst_threshold, minimum=1, maximum=100),
        digest_cron=cron,
        max_attempts=r.integer("max_attempts", d.max_attempts, minimum=1, maximum=100),
        retry_base_seconds=r.number(
            "retry_base_seconds", d.retry_base_seconds, minimum=0.0, maximum=3600
        ),
        snippet_chars=r.integer("snippet_chars", d.snippet_chars, minimum=50, maximum=3000),
        delivery_interval_seconds=r.number(
            "delivery_interval_seconds", d.delivery_interval_seconds, minimum=0.05, maximum=3600
        ),
        ops_channel_id=r.snowflake("ops_channel_id"),
    )
    r.finish()
    return settings


def _metrics(problems: _Problems, data: Mapping[str, Any]) -> MetricsSettings:
    r = _Reader(problems, "metrics", _table(problems, data, "metrics"))
    d = MetricsSettings()
    settings = MetricsSettings(
        host=r.string("host", d.host).strip(),
        port=r.integer("port", None, minimum=0, maximum=65535),
    )
    r.finish()
    if not settings.host:
        r.fail("host", "must be an address to listen on, such as 127.0.0.1")
    return settings


def _web(problems: _Problems, data: Mapping[str, Any]) -> WebSettings:
    r = _Reader(problems, "web", _table(problems, data, "web"))
    d = WebSettings()
    settings = WebSettings(
        enabled=r.boolean("enabled", d.enabled),
        host=r.string("host", d.host).strip(),
        port=r.integer("port", d.port, minimum=0, maximum=65535),
        base_url=r.string("base_url", d.base_url).strip(),
        token_lifetime_seconds=r.integer(
            "token_lifetime_seconds", d.token_lifetime_seconds, minimum=60, maximum=30 * 86400
        ),
        secret_env=r.string("secret_env", d.secret_env).strip(),
    )
    if "secret" in r.table:
        # Recorded before finish(): the first reason for a key is the one kept.
        r.fail("secret", "do not put the secret in the file; set secret_env instead")
    r.finish()
    if not settings.host:
        r.fail("host", "must be an address to listen on, such as 127.0.0.1")
    if settings.base_url:
        parts = urlsplit(settings.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            r.fail(
                "base_url",
                "must be the http:// or https:// address members open, such as "
                f"https://timeline.example.org, got {_show(settings.base_url)}",
            )
    if not ENV_RE.match(settings.secret_env):
        r.fail("secret_env", "must be an environment variable name such as TIMELINE_WEB_SECRET")
    return settings


TOP_LEVEL = set(_SECTIONS)


# --- checks shared by the loader and the start-up sync ------------------------------------------


def check_settings(settings: Settings) -> list[ConfigError]:
    """Return every problem of `settings` that the loader refuses, one ConfigError per key.

    `parse_settings` runs exactly these checks on what it read, and `sync_config` runs them
    on the Settings it is given, so `config check` and the sync cannot disagree.
    """
    problems = _Problems(settings.path)
    _check(problems, settings)
    return problems.errors()


def _check(problems: _Problems, settings: Settings) -> None:
    _check_polling(problems, settings.polling)
    _check_feeds(problems, settings.feeds, settings.polling)
    _check_aliases(problems, settings.aliases)
    _check_watches(problems, settings.watches, settings.aliases)
    _check_discord(problems, settings.discord)
    for channel_id, expression in settings.alerts.digest_cron.items():
        key = f"alerts.digest_cron.{_part(channel_id)}"
        if parse_snowflake(channel_id) is None:
            problems.add(key, f"the key {SNOWFLAKE_RULE.removeprefix('must be ')}")
        reason = cron_problem(expression)
        if reason:
            problems.add(key, reason)


def _check_polling(problems: _Problems, polling: PollingSettings) -> None:
    reason = header_problem(polling.user_agent)
    if reason:
        problems.add("polling.user_agent", reason)
    if polling.min_interval_seconds > polling.max_interval_seconds:
        problems.add("polling.min_interval_seconds", "must not exceed polling.max_interval_seconds")
    elif (
        not polling.min_interval_seconds
        <= polling.interval_seconds
        <= (polling.max_interval_seconds)
    ):
        problems.add(
            "polling.interval_seconds",
            f"must be between min_interval_seconds ({polling.min_interval_seconds}) "
            f"and max_interval_seconds ({polling.max_interval_seconds})",
        )
    for value in polling.allow_private:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.\-]+", value):
                problems.add(
                    "polling.allow_private",
                    f"{_show(value)} is neither an IP address, a CIDR nor a host name",
                )


def _name_problem(name: str, seen: set[str]) -> str | None:
    if not NAME_RE.fullmatch(name):
        return "must be 1-100 letters, digits, spaces, '.', '-' or '_'"
    if name.casefold() in seen:
        return f"{name!r} is used twice"
    seen.add(name.casefold())
    return None


def _check_feeds(
    problems: _Problems, feeds: tuple[FeedConfig, ...], polling: PollingSettings
) -> None:
    names: set[str] = set()
    urls: set[str] = set()
    for i, feed in enumerate(feeds):
        reason = _name_problem(feed.name, names)
        if reason:
            problems.add(f"feeds[{i}].name", reason)
        reason = url_problem(feed.url)
        if reason is None and feed.url in urls:
            reason = f"{_show(feed.url)} is listed twice"
        if reason:
            problems.add(f"feeds[{i}].url", reason)
        urls.add(feed.url)
        low, high = polling.min_interval_seconds, polling.max_interval_seconds
        if feed.interval_seconds is not None and not low <= feed.interval_seconds <= high:
            problems.add(
                f"feeds[{i}].interval_seconds",
                f"must be between polling.min_interval_seconds ({low}) and "
                f"polling.max_interval_seconds ({high}), got {feed.interval_seconds}",
            )


def _check_aliases(problems: _Problems, aliases: Mapping[str, str]) -> None:
    seen: set[str] = set()
    for name, query in aliases.items():
        key = f"aliases.{_part(name)}"
        folded = name.casefold()
        if not ALIAS_NAME_RE.fullmatch(name):
            problems.add(key, "alias names are 1-50 letters, digits, _ or -")
        elif folded in seen:
            # @names are case-insensitive in queries: two such aliases would shadow each other.
            problems.add(key, f"{name!r} is used twice (alias names ignore case)")
        seen.add(folded)
        if not query.strip():
            problems.add(key, "must be a non-empty query string")
        else:
            # The query language expands @names recursively: unknown and cyclic aliases fail here.
            reason = query_problem(query, aliases)
            if reason:
                problems.add(key, reason)


def _check_watches(
    problems: _Problems, watches: tuple[WatchConfig, ...], aliases: Mapping[str, str]
) -> None:
    names: set[str] = set()
    for i, watch in enumerate(watches):
        for key, reason in _watch_problems(watch, names, aliases):
            if reason:
                problems.add(f"watches[{i}].{key}", reason)


def _watch_problems(
    watch: WatchConfig, names: set[str], aliases: Mapping[str, str]
) -> list[tuple[str, str | None]]:
    """(key, reason or None) for each key of one `[[watches]]` table; `names` collects names."""

    def optional(value: str | None, check: Callable[[str], str | None]) -> str | None:
        return None if value is None else check(value)

    found = [
        ("name", _name_problem(watch.name, names)),
        (
            "query",
            "must not be empty" if not watch.query.strip() else query_problem(watch.query, aliases),
        ),
        ("channel_id", None if parse_snowflake(watch.channel_id) is not None else SNOWFLAKE_RULE),
        (
            "role_id",
            None
            if watch.role_id is None or parse_snowflake(watch.role_id) is not None
            else SNOWFLAKE_RULE,
        ),
        ("template", optional(watch.template, template_problem)),
        ("colour", optional(watch.colour, colour_problem)),
        ("delivery", delivery_options.mode_problem(watch.delivery)),
    ]
    for key, value, check in (
        ("webhook_name", watch.webhook_name, delivery_options.webhook_name_problem),
        ("webhook_avatar", watch.webhook_avatar, delivery_options.avatar_problem),
    ):
        if value is not None and watch.delivery != delivery_options.WEBHOOK:
            found.append((key, 'needs delivery = "webhook"'))
        else:
            found.append((key, optional(value, check)))
    return found


def _check_discord(problems: _Problems, discord: DiscordSettings) -> None:
    for i, guild_id in enumerate(discord.guild_ids):
        if parse_snowflake(guild_id) is None:
            problems.add(f"discord.guild_ids[{i}]", SNOWFLAKE_RULE)
    if discord.admin_role_id is not None and parse_snowflake(discord.admin_role_id) is None:
        problems.add("discord.admin_role_id", SNOWFLAKE_RULE)
    reason = timezone_problem(discord.timezone)
    if reason:
        problems.add("discord.timezone", reason)


def parse_settings(data: Mapping[str, Any], path: str = "<config>") -> Settings:
    """Validate a decoded TOML document into Settings; raise ConfigProblems listing every problem."""
    problems = _Problems(path)
    for key in data:
        if key not in TOP_LEVEL:
            problems.add(_part(key), f"unknown section; allowed: {', '.join(sorted(TOP_LEVEL))}")
    db = _Reader(problems, "database", _table(problems, data, "database"))
    url = db.string("url", DatabaseSettings().url).strip()
    db.finish()
    if not re.match(r"^(sqlite|postgresql|postgres)(\+\w+)?://", url):
        db.fail("url", "must be a sqlite:/// or postgresql:// URL")
    base_dir = Path(path).resolve().parent if not path.startswith("<") else None
    url = _resolve_sqlite_path(url, base_dir)
    settings = Settings(
        path=path,
        database=DatabaseSettings(url),
        polling=_polling(problems, data),
        feeds=_feeds(problems, data),
        watches=_watches(problems, data),
        aliases=_aliases(problems, data),
        discord=_discord(problems, data),
        alerts=_alerts(problems, data),
        metrics=_metrics(problems, data),
        web=_web(problems, data),
    )
    _check(problems, settings)
    problems.raise_if_any()
    return settings


def _resolve_sqlite_path(url: str, base_dir: Path | None) -> str:
    """Make a relative SQLite path relative to the config file, not to the working directory."""
    match = re.match(r"^(sqlite(?:\+\w+)?:///)([^/].*)$", url)
    if not match or base_dir is None or match.group(2).startswith(":memory:"):
        return url
    return match.group(1) + str(base_dir / match.group(2))


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate the TOML file at `path`."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            name,
            "(file)",
            "not found; write one with `timeline-bot config init` (a copy of config.example.toml)",
        ) from None
    except OSError as exc:
        raise ConfigError(name, "(file)", f"cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(name, "(file)", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, "(syntax)", f"is not valid TOML: {exc}") from None
    return parse_settings(data, name)
