"""The config file and the database: export what a guild sees as TOML, sync the file at start-up.

Which source wins: the config file. At start-up `sync_config` puts every config-file feed,
watch and alias (guild 0, origin "config") back to what the file says -- including a watch
paused or edited from Discord -- and removes config rows the file no longer lists. Rows
created from Discord (origin "discord", the guild's id) are never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..config import Settings
from ..errors import BadQuery
from ..models import GLOBAL_SCOPE, Alias, Feed, Watch
from . import _query
from ._common import scope
from .aliases import find_cycle
from .feeds import check_tags, delete_feed_rows

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncReport:
    """What `sync_config` changed, as "feed:Name"-style labels, plus queries it refused."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- TOML writing -----------------------------------------------------------------------------

_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    """Return `value` as a TOML basic string with every required escape (TOML 1.0 "String")."""
    out = ['"']
    for ch in value:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\ufffd")  # a lone surrogate cannot be written as UTF-8 at all
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_key(key: str) -> str:
    """Return a bare key when TOML allows one, else a quoted key."""
    if key and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in key):
        return key
    return toml_string(key)


async def export_config_toml(
    session: AsyncSession, guild_id: int, *, now: datetime | None = None
) -> str:
    """Return the feeds, watches and aliases the guild sees as TOML the config loader accepts."""
    now = now or datetime.now(UTC)
    visible = scope(guild_id)

    feeds = list((await session.scalars(select(Feed).where(Feed.guild_id.in_(visible)))).all())
    watches = list((await session.scalars(select(Watch).where(Watch.guild_id.in_(visible)))).all())
    aliases = list((await session.scalars(select(Alias).where(Alias.guild_id.in_(visible)))).all())
    # A guild's own row wins over a config-file row of the same name (it shadows it).
    feeds.sort(key=lambda r: (r.guild_id == GLOBAL_SCOPE, r.id))
    watches.sort(key=lambda r: (r.guild_id == GLOBAL_SCOPE, r.id))
    aliases.sort(key=lambda r: (r.guild_id == GLOBAL_SCOPE, r.id))
    lines = [
        f"# Feeds, watches and aliases of guild {guild_id}, exported by Timeline Bot",
        f"# on {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC. Add [database], [discord] etc. as needed.",
        "",
    ]
    seen: set[str] = set()
    alias_lines = []
    for alias in aliases:
        if alias.name in seen:
            continue
        seen.add(alias.name)
        alias_lines.append(f"{toml_key(alias.name)} = {toml_string(alias.query)}")
    if alias_lines:
        lines += ["[aliases]", *sorted(alias_lines), ""]
    names: set[str] = set()
    urls: set[str] = set()
    for feed in sorted(feeds, key=lambda f: f.name.casefold()):
        if feed.name.casefold() in names or feed.url in urls:
            continue  # a guild feed shadowing a config one of the same name or URL
        names.add(feed.name.casefold())
        urls.add(feed.url)
        lines += ["[[feeds]]", f"name = {toml_string(feed.name)}", f"url = {toml_string(feed.url)}"]
        if feed.interval_seconds is not None:
            lines.append(f"interval_seconds = {int(feed.interval_seconds)}")
        if feed.tags:
            lines.append("tags = [" + ", ".join(toml_string(t) for t in feed.tags) + "]")
        lines.append("")
    names = set()
    for watch in sorted(watches, key=lambda w: w.name.casefold()):
        if watch.name.casefold() in names:
            continue
        names.add(watch.name.casefold())
        lines += [
            "[[watches]]",
            f"name = {toml_string(watch.name)}",
            f"query = {toml_string(watch.query)}",
            f"channel_id = {int(watch.channel_id)}",
        ]
        if watch.role_id is not None:
            lines.append(f"role_id = {int(watch.role_id)}")
        if not watch.enabled:
            lines.append("enabled = false")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --- sync at start-up ---------------------------------------------------------------------------


async def sync_config(session: AsyncSession, settings: Settings) -> SyncReport:
    """Make the guild-0 config rows match the file: add, update, and remove what it dropped."""
    report = SyncReport()
    await _sync_aliases(session, settings, report)
    await _sync_feeds(session, settings, report)
    await _sync_watches(session, settings, report)
    await session.flush()
    log.info(
        "config synced: %d added, %d updated, %d removed, %d refused",
        len(report.added),
        len(report.updated),
        len(report.removed),
        len(report.errors),
        extra={"path": settings.path},
    )
    for error in report.errors:
        log.warning("config: %s", error, extra={"path": settings.path})
    return report


async def _sync_aliases(session: AsyncSession, settings: Settings, report: SyncReport) -> None:
    rows = {
        a.name: a
        for a in (await session.scalars(select(Alias).where(Alias.guild_id == GLOBAL_SCOPE))).all()
    }
    for name, old_alias in rows.items():
        if old_alias.origin == "config" and name not in settings.aliases:
            await session.delete(old_alias)
            report.removed.append(f"alias:{name}")
    for name, query in settings.aliases.items():
        cycle = find_cycle(dict(settings.aliases), name)
        if cycle:
            report.errors.append(f"alias @{name}: cycle " + " -> ".join("@" + n for n in cycle))
        else:
            try:
                _query.parse(query, settings.aliases)
            except BadQuery as exc:
                report.errors.append(f"alias @{name}: {exc}")
        row = rows.get(name)
        if row is None:
            session.add(Alias(guild_id=GLOBAL_SCOPE, name=name, query=query, origin="config"))
            report.added.append(f"alias:{name}")
        elif row.origin == "discord":
            report.errors.append(f"alias @{name}: a Discord-made alias has that name; kept it")
        elif row.query != query or row.origin != "config":
            row.query, row.origin = query, "config"
            report.updated.append(f"alias:{name}")
    await session.flush()


async def _sync_feeds(session: AsyncSession, settings: Settings, report: SyncReport) -> None:
    rows = list((await session.scalars(select(Feed).where(Feed.guild_id == GLOBAL_SCOPE))).all())
    wanted_urls = {f.url for f in settings.feeds}
    wanted_names = {f.name.casefold() for f in settings.feeds}
    for old_feed in list(rows):
        if old_feed.origin == "config" and old_feed.url not in wanted_urls:
            if old_feed.name.casefold() in wanted_names:
                continue  # a new URL for the same name: updated below, keeping its entries
            removed_name = old_feed.name
            await delete_feed_rows(session, old_feed)
            rows.remove(old_feed)
            report.removed.append(f"feed:{removed_name}")
    for conf in settings.feeds:
        row = next((r for r in rows if r.url == conf.url), None) or next(
            (r for r in rows if r.name.casefold() == conf.name.casefold()), None
        )
        if row is None:
            row = Feed(
                guild_id=GLOBAL_SCOPE,
                name=conf.name,
                url=conf.url,
                interval_seconds=conf.interval_seconds,
                tags=check_tags(list(conf.tags)),
                origin="config",
                created_by="config",
            )
            session.add(row)
            rows.append(row)
            report.added.append(f"feed:{conf.name}")
            await session.flush()
            continue
        if row.origin == "discord":
            report.errors.append(f"feed {conf.name!r}: a Discord-made feed uses that name or URL")
            continue
        new = (conf.name, conf.url, conf.interval_seconds, check_tags(list(conf.tags)), "config")
        old = (row.name, row.url, row.interval_seconds, list(row.tags or []), row.origin)
        if new != old:
            if row.url != conf.url:
                # A new address: forget the old one's caching validators.
                row.etag = row.last_modified = row.body_hash = None
            row.name, row.url, row.interval_seconds, row.tags, row.origin = new
            report.updated.append(f"feed:{conf.name}")
            await session.flush()


async def _sync_watches(session: AsyncSession, settings: Settings, report: SyncReport) -> None:
    rows = {
        w.name.casefold(): w
        for w in (await session.scalars(select(Watch).where(Watch.guild_id == GLOBAL_SCOPE))).all()
    }
    wanted = {w.name.casefold() for w in settings.watches}
    for key, old_watch in rows.items():
        if old_watch.origin == "config" and key not in wanted:
            await session.delete(old_watch)
            report.removed.append(f"watch:{old_watch.name}")
    await session.flush()
    for conf in settings.watches:
        try:
            _query.parse(conf.query, settings.aliases)
        except BadQuery as exc:
            report.errors.append(f"watch {conf.name!r}: {exc}")
            continue
        row = rows.get(conf.name.casefold())
        if row is None:
            session.add(
                Watch(
                    guild_id=GLOBAL_SCOPE,
                    name=conf.name,
                    query=conf.query,
                    channel_id=conf.channel_id,
                    role_id=conf.role_id,
                    enabled=conf.enabled,
                    origin="config",
                    created_by="config",
                )
            )
            report.added.append(f"watch:{conf.name}")
            continue
        if row.origin == "discord":
            report.errors.append(f"watch {conf.name!r}: a Discord-made watch has that name")
            continue
        new = (conf.name, conf.query, conf.channel_id, conf.role_id, conf.enabled, "config")
        old = (row.name, row.query, row.channel_id, row.role_id, row.enabled, row.origin)
        if new != old:
            (row.name, row.query, row.channel_id, row.role_id, row.enabled, row.origin) = new
            report.updated.append(f"watch:{conf.name}")
    await session.flush()
