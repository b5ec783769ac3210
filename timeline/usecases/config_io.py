"""The config file and the database: export what a guild sees as TOML, sync the file at start-up.

Which source wins: the config file. At start-up `sync_config` puts every config-file feed,
watch and alias (guild 0, origin "config") back to what the file says -- including a watch
paused or edited from Discord. Rows created from Discord (origin "discord", the guild's id)
are never touched.

Nothing on the timeline is deleted by a sync. A feed or watch the file no longer lists is
*retired* (`retired_at` set): not polled, not alerting, its entries, events, notes and alert
records kept and searchable. Listing it again revives the same row with its history. Only
aliases, which hold no history, are removed. Deleting a feed's history is
`services.feeds.purge_feed`, an explicit act.

Identity, i.e. which stored row a config entry is:
- a feed is the row with the same URL, else the row with the same name (a new URL for the
  same name); so renaming a feed in the file keeps its id and entries;
- a watch is the row with the same name, else a config row with the same (query, channel)
  that no other entry of the file claims; so renaming a watch keeps its id and its alert
  records, and the events it already alerted are not alerted again.

Safety valve: a sync that would retire more than half of the active config feeds, or of the
active config watches (and at least two), is refused with `ConfigRetiresTooMuch` (exit 78)
unless the caller accepts it (`--accept-config`): a wrong or half-edited file must not
silently switch the team's alerts off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app.config import ConfigProblems, FeedConfig, Settings, WatchConfig, check_settings
from timeline.domain.errors import ConfigError
from timeline.render.templates import parse_colour
from timeline.storage.models import GLOBAL_SCOPE, Alias, Feed, Watch
from timeline.usecases._common import scope
from timeline.usecases.feeds import check_tags

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncReport:
    """What `sync_config` changed, as "feed:Name"-style labels, plus entries it refused.

    `errors`: `FILE: KEY: REASON` lines for file entries the database would not take (a
    Discord-made row holds the name); problems of the file itself raise before any change.

    `retired`: feeds and watches that left the file (history kept); `revived`: retired ones the
    file lists again; `removed`: aliases only (they hold no history).
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ConfigRetiresTooMuch(ConfigError):
    """The config file would retire most of the feeds or watches at once (see the module doc)."""

    def __init__(self, path: str, what: list[tuple[str, int, int, list[str]]]) -> None:
        parts = [
            f"{n} of the {total} active {kind} ("
            + ", ".join(repr(x) for x in names[:5])
            + (", ..." if len(names) > 5 else "")
            + ")"
            for kind, n, total, names in what
        ]
        super().__init__(
            path,
            "(sync)",
            "this file would retire "
            + " and ".join(parts)
            + " at once, which stops their polling and alerts. Check that it is the right file; "
            "if the change is intended, run again with --accept-config",
        )
        self.counts = {kind: n for kind, n, _, _ in what}


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

    # Retired feeds and watches are not exported: loading the file must not revive them.
    feeds = list(
        (
            await session.scalars(
                select(Feed).where(Feed.guild_id.in_(visible), Feed.retired_at.is_(None))
            )
        ).all()
    )
    watches = list(
        (
            await session.scalars(
                select(Watch).where(Watch.guild_id.in_(visible), Watch.retired_at.is_(None))
            )
        ).all()
    )
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


async def sync_config(
    session: AsyncSession, settings: Settings, *, accept: bool = True, now: datetime | None = None
) -> SyncReport:
    """Make the guild-0 config rows match the file: add, update, retire and revive.

    Settings the loader would refuse raise ConfigProblems (the loader's own checks, so the
    sync refuses exactly what `config check` refuses) and change nothing. With
    `accept=False`, refuse (ConfigRetiresTooMuch, nothing changed) a sync that would retire
    more than half of the active config feeds or watches, and at least two.
    """
    problems = check_settings(settings)
    if problems:
        raise ConfigProblems(problems)
    now = now or datetime.now(UTC)
    report = SyncReport()
    feed_rows = list(
        (await session.scalars(select(Feed).where(Feed.guild_id == GLOBAL_SCOPE))).all()
    )
    watch_rows = list(
        (await session.scalars(select(Watch).where(Watch.guild_id == GLOBAL_SCOPE))).all()
    )
    feed_plan, feeds_out = _match_feeds(feed_rows, settings.feeds)
    watch_plan, watches_out = _match_watches(watch_rows, settings.watches)
    if not accept:
        _check_valve(settings.path, feed_rows, feeds_out, watch_rows, watches_out)
    await _sync_aliases(session, settings, report)
    await _sync_feeds(
        session, settings.path, settings.feeds, feed_rows, feed_plan, feeds_out, report, now
    )
    await _sync_watches(session, settings, watch_rows, watch_plan, watches_out, report, now)
    await session.flush()
    log.info(
        "config synced: %d added, %d updated, %d retired, %d revived, %d removed, %d refused",
        len(report.added),
        len(report.updated),
        len(report.retired),
        len(report.revived),
        len(report.removed),
        len(report.errors),
        extra={"path": settings.path},
    )
    for error in report.errors:
        log.warning("config: %s", error, extra={"path": settings.path})
    return report


def _check_valve(
    path: str,
    feed_rows: list[Feed],
    feeds_out: list[Feed],
    watch_rows: list[Watch],
    watches_out: list[Watch],
) -> None:
    too_many: list[tuple[str, int, int, list[str]]] = []
    checks: list[tuple[str, list[Feed] | list[Watch], list[Feed] | list[Watch]]] = [
        ("feeds", feed_rows, feeds_out),
        ("watches", watch_rows, watches_out),
    ]
    for kind, rows, out in checks:
        active = [r for r in rows if r.origin == "config" and r.retired_at is None]
        if len(out) >= 2 and len(out) * 2 > len(active):
            too_many.append((kind, len(out), len(active), [r.name for r in out]))
    if too_many:
        raise ConfigRetiresTooMuch(path, too_many)


def _match_feeds(
    rows: list[Feed], confs: tuple[FeedConfig, ...]
) -> tuple[list[Feed | None], list[Feed]]:
    """Pair each config feed with its row (same URL, else same name); return the rows to retire."""
    taken: set[int] = set()
    plan: list[Feed | None] = []
    for conf in confs:
        free = [r for r in rows if id(r) not in taken]
        row = next((r for r in free if r.url == conf.url), None) or next(
            (r for r in free if r.name.casefold() == conf.name.casefold()), None
        )
        if row is not None:
            taken.add(id(row))
        plan.append(row)
    out = [r for r in rows if id(r) not in taken and r.origin == "config" and r.retired_at is None]
    return plan, out


def _match_watches(
    rows: list[Watch], confs: tuple[WatchConfig, ...]
) -> tuple[list[Watch | None], list[Watch]]:
    """Pair each config watch with its row (same name, else same query and channel)."""
    taken: set[int] = set()
    plan: list[Watch | None] = [None] * len(confs)
    for i, conf in enumerate(confs):
        row = next((r for r in rows if r.name.casefold() == conf.name.casefold()), None)
        if row is not None and id(row) not in taken:
            taken.add(id(row))
            plan[i] = row
    # A renamed watch: the same query to the same channel, under a name the file no longer has.
    for i, conf in enumerate(confs):
        if plan[i] is not None or any(r.name.casefold() == conf.name.casefold() for r in rows):
            continue
        row = next(
            (
                r
                for r in rows
                if id(r) not in taken
                and r.origin == "config"
                and (r.query, r.channel_id) == (conf.query, conf.channel_id)
            ),
            None,
        )
        if row is not None:
            taken.add(id(row))
            plan[i] = row
    out = [r for r in rows if id(r) not in taken and r.origin == "config" and r.retired_at is None]
    return plan, out


def _free_name(rows: list[Feed] | list[Watch], keep: Feed | Watch | None, name: str) -> None:
    """Rename a retired row that holds `name`, so `keep` (or a new row) can take it."""
    for other in rows:
        if other is not keep and other.retired_at is not None:
            if other.name.casefold() == name.casefold():
                other.name = f"{other.name} (retired {other.id})"[:100]


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
        row = rows.get(name)
        if row is None:
            session.add(Alias(guild_id=GLOBAL_SCOPE, name=name, query=query, origin="config"))
            report.added.append(f"alias:{name}")
        elif row.origin == "discord":
            report.errors.append(
                _refused(settings.path, f"aliases.{name}", "a Discord-made alias has that name")
            )
        elif row.query != query or row.origin != "config":
            row.query, row.origin = query, "config"
            report.updated.append(f"alias:{name}")
    await session.flush()


def _refused(path: str, key: str, reason: str) -> str:
    return f"{path}: {key}: {reason}; this entry was not synced, rename one of the two"


async def _sync_feeds(
    session: AsyncSession,
    path: str,
    confs: tuple[FeedConfig, ...],
    rows: list[Feed],
    plan: list[Feed | None],
    out: list[Feed],
    report: SyncReport,
    now: datetime,
) -> None:
    for old_feed in out:
        old_feed.retired_at = now
        report.retired.append(f"feed:{old_feed.name}")
        log.warning(
            "feed %r retired: no longer in the config file (its history is kept)",
            old_feed.name,
            extra={"feed_id": old_feed.id, "url": old_feed.url},
        )
    await session.flush()
    for i, (conf, row) in enumerate(zip(confs, plan, strict=True)):
        if row is None:
            _free_name(rows, None, conf.name)
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
            report.errors.append(
                _refused(path, f"feeds[{i}]", "a Discord-made feed uses that name or URL")
            )
            continue
        if row.retired_at is not None:
            row.retired_at = None
            row.next_check_at = now
            report.revived.append(f"feed:{conf.name}")
            log.info(
                "feed %r revived: back in the config file, with its history",
                conf.name,
                extra={"feed_id": row.id, "url": conf.url},
            )
        new = (conf.name, conf.url, conf.interval_seconds, check_tags(list(conf.tags)), "config")
        old = (row.name, row.url, row.interval_seconds, list(row.tags or []), row.origin)
        if new != old:
            if row.url != conf.url:
                # A new address: forget the old one's caching validators.
                row.etag = row.last_modified = row.body_hash = None
            if row.name != conf.name:
                _free_name(rows, row, conf.name)
                await session.flush()
            row.name, row.url, row.interval_seconds, row.tags, row.origin = new
            report.updated.append(f"feed:{conf.name}")
        await session.flush()


async def _sync_watches(  # noqa: C901 (one branch per watch change)
    session: AsyncSession,
    settings: Settings,
    rows: list[Watch],
    plan: list[Watch | None],
    out: list[Watch],
    report: SyncReport,
    now: datetime,
) -> None:
    for old_watch in out:
        old_watch.retired_at = now
        report.retired.append(f"watch:{old_watch.name}")
        log.warning(
            "watch %r retired: no longer in the config file (its alert records are kept)",
            old_watch.name,
            extra={"watch_id": old_watch.id},
        )
    await session.flush()
    for i, (conf, row) in enumerate(zip(settings.watches, plan, strict=True)):
        if row is None:
            _free_name(rows, None, conf.name)
            row = Watch(
                guild_id=GLOBAL_SCOPE,
                name=conf.name,
                query=conf.query,
                channel_id=conf.channel_id,
                role_id=conf.role_id,
                enabled=conf.enabled,
                template=conf.template,
                colour=_colour(conf.colour),
                delivery=_delivery(conf.delivery),
                webhook_name=conf.webhook_name,
                webhook_avatar=conf.webhook_avatar,
                origin="config",
                created_by="config",
            )
            session.add(row)
            rows.append(row)
            report.added.append(f"watch:{conf.name}")
            await session.flush()
            continue
        if row.origin == "discord":
            report.errors.append(
                _refused(settings.path, f"watches[{i}].name", "a Discord-made watch has that name")
            )
            continue
        if row.retired_at is not None:
            row.retired_at = None
            report.revived.append(f"watch:{conf.name}")
            log.info(
                "watch %r revived: back in the config file, with its alert records",
                conf.name,
                extra={"watch_id": row.id},
            )
        if (row.template, row.colour) != (conf.template, _colour(conf.colour)):
            row.template, row.colour = conf.template, _colour(conf.colour)
            if f"watch:{conf.name}" not in report.updated:
                report.updated.append(f"watch:{conf.name}")
        wanted = (_delivery(conf.delivery), conf.webhook_name, conf.webhook_avatar)
        if (row.delivery, row.webhook_name, row.webhook_avatar) != wanted:
            row.delivery, row.webhook_name, row.webhook_avatar = wanted
            if f"watch:{conf.name}" not in report.updated:
                report.updated.append(f"watch:{conf.name}")
        new = (conf.name, conf.query, conf.channel_id, conf.role_id, conf.enabled, "config")
        old = (row.name, row.query, row.channel_id, row.role_id, row.enabled, row.origin)
        if new != old:
            if row.name != conf.name:
                log.info(
                    "watch %r renamed to %r by the config file (same query and channel: "
                    "same watch, its alert records kept)",
                    row.name,
                    conf.name,
                    extra={"watch_id": row.id},
                )
                _free_name(rows, row, conf.name)
                await session.flush()
            (row.name, row.query, row.channel_id, row.role_id, row.enabled, row.origin) = new
            if f"watch:{conf.name}" not in report.updated:
                report.updated.append(f"watch:{conf.name}")
        await session.flush()


def _delivery(mode: str) -> str | None:
    # The default ("channel") is stored as NULL, as on rows made before delivery options.
    return None if mode == "channel" else mode


def _colour(value: str | None) -> int | None:
    return None if value is None else parse_colour(value)
