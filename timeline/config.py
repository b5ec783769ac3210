"""Load `config.toml` into typed, validated settings.

Every problem is a `ConfigError` that names the file, the key and what is allowed; the entry
point turns it into exit code 78 (EX_CONFIG). The Discord token never lives in the file: the
file names the environment variable that holds it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_USER_AGENT = "TimelineBot/0.1 (+https://github.com/timeline-bot/timeline-bot)"
NAME_RE = re.compile(r"^[\w][\w .\-]{0,99}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    token_env: str = "DISCORD_TOKEN"
    guild_ids: tuple[int, ...] = ()
    admin_role_id: int | None = None
    shard_count: int | None = None

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


class _Reader:
    """Pull typed values out of one TOML table, naming the full key in every error."""

    def __init__(self, path: str, prefix: str, table: Mapping[str, Any]) -> None:
        self.path = path
        self.prefix = prefix
        self.table = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.path, self.key(name), message)

    def _get(self, name: str, default: Any, required: bool) -> Any:
        self.used.add(name)
        if name not in self.table:
            if required:
                raise self.fail(name, "is required")
            return default
        return self.table[name]

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(name, default, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, got {type(value).__name__}")
        return value

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        required: bool = False,
    ) -> Any:
        value = self._get(name, default, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer, got {type(value).__name__}")
        if minimum is not None and value < minimum:
            raise self.fail(name, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.fail(name, f"must be at most {maximum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self._get(name, default, False)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"must be a number, got {type(value).__name__}")
        if not minimum <= value <= maximum:
            raise self.fail(name, f"must be between {minimum} and {maximum}, got {value}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, default, False)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self._get(name, [], False)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "must be a list of strings")
        return tuple(value)

    def snowflake(self, name: str, *, required: bool = False) -> Any:
        """A Discord id: an integer or a string of digits (TOML integers are 64-bit signed)."""
        value = self._get(name, None, required)
        if value is None:
            return None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
            raise self.fail(name, "must be a Discord id (a positive integer)")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            allowed = ", ".join(sorted(self.used))
            raise self.fail(unknown[0], f"unknown key; allowed keys here: {allowed}")


def _table(path: str, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(path, name, "must be a table ([" + name + "])")
    return value


def _check_url(reader: _Reader, name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise reader.fail(name, f"must be an http:// or https:// URL, got {url!r}")


def _check_allow(reader: _Reader, values: tuple[str, ...]) -> None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.\-]+", value):
                raise reader.fail(
                    "allow_private", f"{value!r} is neither an IP address, a CIDR nor a host name"
                ) from None


def _polling(path: str, data: Mapping[str, Any]) -> PollingSettings:
    r = _Reader(path, "polling", _table(path, data, "polling"))
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
    )
    r.finish()
    if not settings.user_agent.strip():
        raise r.fail("user_agent", "must not be empty")
    if settings.min_interval_seconds > settings.max_interval_seconds:
        raise r.fail("min_interval_seconds", "must not exceed polling.max_interval_seconds")
    if not (
        settings.min_interval_seconds <= settings.interval_seconds <= settings.max_interval_seconds
    ):
        raise r.fail(
            "interval_seconds",
            f"must be between min_interval_seconds ({settings.min_interval_seconds}) "
            f"and max_interval_seconds ({settings.max_interval_seconds})",
        )
    _check_allow(r, settings.allow_private)
    return settings


def _list_of_tables(path: str, data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(path, name, f"must be an array of tables ([[{name}]])")
    return value


def _name(r: _Reader, seen: set[str]) -> str:
    name = r.string("name", required=True).strip()
    if not NAME_RE.match(name):
        raise r.fail("name", "must be 1-100 letters, digits, spaces, '.', '-' or '_'")
    if name.casefold() in seen:
        raise r.fail("name", f"{name!r} is used twice")
    seen.add(name.casefold())
    return name


def _feeds(path: str, data: Mapping[str, Any], polling: PollingSettings) -> tuple[FeedConfig, ...]:
    feeds: list[FeedConfig] = []
    names: set[str] = set()
    urls: set[str] = set()
    for i, table in enumerate(_list_of_tables(path, data, "feeds")):
        r = _Reader(path, f"feeds[{i}]", table)
        name = _name(r, names)
        url = r.string("url", required=True).strip()
        _check_url(r, "url", url)
        if url in urls:
            raise r.fail("url", f"{url!r} is listed twice")
        urls.add(url)
        interval = r.integer(
            "interval_seconds",
            None,
            minimum=polling.min_interval_seconds,
            maximum=polling.max_interval_seconds,
        )
        feeds.append(FeedConfig(name, url, interval, r.strings("tags")))
        r.finish()
    return tuple(feeds)


def _watches(path: str, data: Mapping[str, Any]) -> tuple[WatchConfig, ...]:
    watches: list[WatchConfig] = []
    names: set[str] = set()
    for i, table in enumerate(_list_of_tables(path, data, "watches")):
        r = _Reader(path, f"watches[{i}]", table)
        name = _name(r, names)
        query = r.string("query", required=True)
        if not query.strip():
            raise r.fail("query", "must not be empty")
        watches.append(
            WatchConfig(
                name=name,
                query=query,
                channel_id=r.snowflake("channel_id", required=True),
                role_id=r.snowflake("role_id"),
                enabled=r.boolean("enabled", True),
            )
        )
        r.finish()
    return tuple(watches)


def _aliases(path: str, data: Mapping[str, Any]) -> dict[str, str]:
    table = _table(path, data, "aliases")
    aliases: dict[str, str] = {}
    for name, value in table.items():
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,50}", name):
            raise ConfigError(
                path, f"aliases.{name}", "alias names are 1-50 letters, digits, _ or -"
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(path, f"aliases.{name}", "must be a non-empty query string")
        aliases[name] = value
    return aliases


def _discord(path: str, data: Mapping[str, Any]) -> DiscordSettings:
    r = _Reader(path, "discord", _table(path, data, "discord"))
    token_env = r.string("token_env", "DISCORD_TOKEN")
    if not ENV_RE.match(token_env):
        raise r.fail("token_env", "must be an environment variable name such as DISCORD_TOKEN")
    if "token" in r.table:
        raise r.fail("token", "do not put the token in the file; set token_env instead")
    raw_guilds = r._get("guild_ids", [], False)
    if not isinstance(raw_guilds, list):
        raise r.fail("guild_ids", "must be a list of Discord guild ids")
    guild_ids: list[int] = []
    for value in raw_guilds:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise r.fail("guild_ids", f"{value!r} is not a Discord guild id")
        guild_ids.append(value)
    settings = DiscordSettings(
        token_env=token_env,
        guild_ids=tuple(guild_ids),
        admin_role_id=r.snowflake("admin_role_id"),
        shard_count=r.integer("shard_count", None, minimum=1, maximum=1000),
    )
    r.finish()
    return settings


def _alerts(path: str, data: Mapping[str, Any]) -> AlertSettings:
    r = _Reader(path, "alerts", _table(path, data, "alerts"))
    d = AlertSettings()
    raw_cron = r._get("digest_cron", {}, False)
    if not isinstance(raw_cron, dict):
        raise r.fail("digest_cron", 'must be a table of channel id = "cron expression"')
    cron: dict[int, str] = {}
    for channel, expr in raw_cron.items():
        if not str(channel).isdigit() or not isinstance(expr, str) or len(expr.split()) != 5:
            raise r.fail(
                f"digest_cron.{channel}",
                'must be a cron expression: "<minute> <hour> <day> <month> <weekday>"',
            )
        cron[int(channel)] = expr
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
    )
    r.finish()
    return settings


def _metrics(path: str, data: Mapping[str, Any]) -> MetricsSettings:
    r = _Reader(path, "metrics", _table(path, data, "metrics"))
    d = MetricsSettings()
    settings = MetricsSettings(
        host=r.string("host", d.host).strip(),
        port=r.integer("port", None, minimum=0, maximum=65535),
    )
    r.finish()
    if not settings.host:
        raise r.fail("host", "must be an address to listen on, such as 127.0.0.1")
    return settings


def _web(path: str, data: Mapping[str, Any]) -> WebSettings:
    r = _Reader(path, "web", _table(path, data, "web"))
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
        raise r.fail("secret", "do not put the secret in the file; set secret_env instead")
    r.finish()
    if not settings.host:
        raise r.fail("host", "must be an address to listen on, such as 127.0.0.1")
    if settings.base_url:
        parts = urlsplit(settings.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise r.fail(
                "base_url",
                "must be the http:// or https:// address members open, such as "
                f"https://timeline.example.org, got {settings.base_url!r}",
            )
    if not ENV_RE.match(settings.secret_env):
        raise r.fail(
            "secret_env", "must be an environment variable name such as TIMELINE_WEB_SECRET"
        )
    return settings


TOP_LEVEL = {
    "database",
    "polling",
    "feeds",
    "watches",
    "aliases",
    "discord",
    "alerts",
    "metrics",
    "web",
}


def parse_settings(data: Mapping[str, Any], path: str = "<config>") -> Settings:
    """Validate a decoded TOML document into Settings; raise ConfigError on the first problem."""
    for key in data:
        if key not in TOP_LEVEL:
            raise ConfigError(
                path, key, f"unknown section; allowed: {', '.join(sorted(TOP_LEVEL))}"
            )
    db = _Reader(path, "database", _table(path, data, "database"))
    url = db.string("url", DatabaseSettings().url).strip()
    db.finish()
    if not re.match(r"^(sqlite|postgresql|postgres)(\+\w+)?://", url):
        raise db.fail("url", "must be a sqlite:/// or postgresql:// URL")
    base_dir = Path(path).resolve().parent if not path.startswith("<") else None
    url = _resolve_sqlite_path(url, base_dir)
    polling = _polling(path, data)
    return Settings(
        path=path,
        database=DatabaseSettings(url),
        polling=polling,
        feeds=_feeds(path, data, polling),
        watches=_watches(path, data),
        aliases=_aliases(path, data),
        discord=_discord(path, data),
        alerts=_alerts(path, data),
        metrics=_metrics(path, data),
        web=_web(path, data),
    )


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
            name, "(file)", "not found; copy config.example.toml to config.toml"
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
