"""Feeds a guild follows: add (after the caller probed the URL), remove, purge, list, status."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds.types import FetchResult, FetchState
from timeline.domain.errors import BadQuery, Conflict, FeedUnusable, NotFound
from timeline.storage.models import GLOBAL_SCOPE, Entry, Event, Feed, utcnow
from timeline.usecases._common import (
    check_name,
    check_origin,
    refresh_occurred_at,
    sanitise_name,
    scope,
    url_host,
)
from timeline.usecases._common import (
    check_url as check_url,  # (part of this use case's API: the cogs and the CLI call it)
)

log = logging.getLogger(__name__)

MIN_INTERVAL = 60
MAX_INTERVAL = 86_400
MAX_TAGS = 20


@dataclass(frozen=True, slots=True)
class FeedProbe:
    """The result of fetching a feed URL once, produced by the caller (who may use aiohttp)."""

    title: str | None
    entry_count: int
    error: str | None = None
    final_url: str | None = None


@dataclass(frozen=True, slots=True)
class FeedView:
    """A feed as `/feed list` shows it."""

    id: int
    name: str
    url: str
    interval_seconds: int | None
    tags: list[str]
    origin: str
    enabled: bool
    status: str
    title: str | None
    guild_id: int
    retired_at: datetime | None = None
    # add_feed followed a retired feed again (its stored history with it).
    revived: bool = False


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A feed's polling health."""

    name: str
    url: str
    status: str
    last_success_at: datetime | None
    last_checked_at: datetime | None
    last_error: str | None
    error_count: int
    next_check_at: datetime | None
    entry_count: int
    enabled: bool
    retired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PurgeView:
    """What `purge_feed` deleted (or, with `dry_run`, would delete)."""

    name: str
    url: str
    entries: int
    events: int
    done: bool


def _view(feed: Feed) -> FeedView:
    return FeedView(
        id=feed.id,
        name=feed.name,
        url=feed.url,
        interval_seconds=feed.interval_seconds,
        tags=list(feed.tags or []),
        origin=feed.origin,
        enabled=feed.enabled,
        status=feed.status,
        title=feed.title,
        guild_id=feed.guild_id,
        retired_at=feed.retired_at,
    )


def check_interval(
    interval: int | None, minimum: int = MIN_INTERVAL, maximum: int = MAX_INTERVAL
) -> int | None:
    """Refuse a polling interval outside [minimum, maximum] seconds."""
    if interval is None:
        return None
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise BadQuery("interval must be a whole number of seconds")
    if not minimum <= interval <= maximum:
        raise BadQuery(f"interval must be between {minimum} and {maximum} seconds, got {interval}")
    return interval


def check_tags(tags: list[str] | tuple[str, ...]) -> list[str]:
    """Clean a feed's tags: short, unique, at most MAX_TAGS."""
    out: list[str] = []
    for tag in tags:
        value = " ".join(str(tag).split())[:50]
        if value and value not in out:
            out.append(value)
    return out[:MAX_TAGS]


async def _visible(session: AsyncSession, guild_id: int) -> list[Feed]:
    return list(
        (
            await session.scalars(
                select(Feed).where(Feed.guild_id.in_(scope(guild_id))).order_by(Feed.name)
            )
        ).all()
    )


async def unique_feed_name(session: AsyncSession, guild_id: int, wanted: str) -> str:
    """Return `wanted`, or `wanted (2)`, `(3)`... whichever no visible feed uses yet."""
    taken = {f.name.casefold() for f in await _visible(session, guild_id)}
    if wanted.casefold() not in taken:
        return wanted
    for n in range(2, 1000):
        candidate = f"{wanted[:95]} {n}"
        if candidate.casefold() not in taken:
            return candidate
    raise Conflict(f"too many feeds named like {wanted!r}")


class FeedFetcher(Protocol):
    """What fetches a feed once (feeds.fetch.Fetcher): injected, so the core imports no
    HTTP client."""

    async def fetch(self, state: FetchState) -> FetchResult: ...


async def probe_feed(fetcher: FeedFetcher, url: str) -> FeedProbe:
    """Fetch `url` once and describe what came back: title and entries, or the reason.

    The one probe behind `/feed add` and `timeline-bot feed add`.
    """
    result = await fetcher.fetch(FetchState(url=url))
    if result.outcome == "error":
        return FeedProbe(None, 0, error=result.error or "the fetch failed")
    return FeedProbe(result.feed_title, len(result.items), final_url=result.permanent_url)


async def add_feed(
    session: AsyncSession,
    guild_id: int,
    url: str,
    name: str | None,
    interval: int | None,
    actor: str,
    probe: FeedProbe | None,
    *,
    tags: list[str] | tuple[str, ...] = (),
    origin: str = "discord",
    interval_bounds: tuple[int, int] = (MIN_INTERVAL, MAX_INTERVAL),
) -> FeedView:
    """Add a feed the caller has fetched once (`probe`); refuse it if the probe failed.

    `probe=None` skips the check (OPML import and config sync, which cannot fetch here).
    """
    clean_url = check_url(url, "feed URL")
    if probe is not None and probe.error:
        raise FeedUnusable(f"{clean_url} cannot be used: {probe.error}")
    check_interval(interval, *interval_bounds)
    visible = await _visible(session, guild_id)
    retired = next(
        (f for f in visible if f.url == clean_url and f.retired_at and f.guild_id == guild_id),
        None,
    )
    if retired is not None:
        return await _revive(session, retired, name, interval, actor, visible)
    if name and name.strip():
        clean_name = check_name(name, "feed")
    else:
        title = probe.title if probe is not None and probe.title else url_host(clean_url)
        clean_name = await unique_feed_name(session, guild_id, sanitise_name(title))
    for feed in visible:
        if feed.url == clean_url:
            raise Conflict(f"this server already follows {clean_url} as {feed.name!r}")
        if feed.name.casefold() == clean_name.casefold():
            raise Conflict(f"a feed named {clean_name!r} already exists: give another name")
    feed = Feed(
        guild_id=guild_id,
        name=clean_name,
        url=clean_url,
        interval_seconds=interval,
        tags=check_tags(list(tags)),
        origin=check_origin(origin),
        enabled=True,
        title=probe.title[:500] if probe is not None and probe.title else None,
        created_by=actor[:100],
    )
    session.add(feed)
    await session.flush()
    log.info(
        "feed %r added by %s",
        clean_name,
        actor,
        extra={"feed_id": feed.id, "url": clean_url, "guild_id": guild_id, "actor": actor},
    )
    return _view(feed)


async def get_feed(session: AsyncSession, guild_id: int, name_or_url: str) -> Feed:
    """Find a visible feed by name (case-insensitive) or exact URL, or raise NotFound."""
    wanted = name_or_url.strip()
    feeds = await _visible(session, guild_id)
    found = [f for f in feeds if f.url == wanted] or [
        f for f in feeds if f.name.casefold() == wanted.casefold()
    ]
    if not found:
        raise NotFound(f"no feed named {wanted!r} on this server (see the feed list)")
    found.sort(key=lambda f: f.guild_id == GLOBAL_SCOPE)
    return found[0]


async def _revive(
    session: AsyncSession,
    feed: Feed,
    name: str | None,
    interval: int | None,
    actor: str,
    visible: list[Feed],
) -> FeedView:
    """Follow a retired feed again: the same row, so its stored history is its own again."""
    if name and name.strip():
        clean_name = check_name(name, "feed")
        for other in visible:
            if other is not feed and other.name.casefold() == clean_name.casefold():
                raise Conflict(f"a feed named {clean_name!r} already exists: give another name")
        feed.name = clean_name
    feed.retired_at = None
    feed.enabled = True
    if interval is not None:
        feed.interval_seconds = interval
    feed.next_check_at = utcnow()
    await session.flush()
    log.info(
        "feed %r revived by %s, with its history",
        feed.name,
        actor,
        extra={"feed_id": feed.id, "url": feed.url, "guild_id": feed.guild_id, "actor": actor},
    )
    return replace(_view(feed), revived=True)


async def remove_feed(
    session: AsyncSession, guild_id: int, name_or_url: str, actor: str
) -> FeedView:
    """Stop following a feed: it is retired, and its stories stay on the timeline and in
    search (the team's record). Adding its URL again follows it again, with that history;
    `purge_feed` is the one way to delete it."""
    feed = await get_feed(session, guild_id, name_or_url)
    if feed.origin == "config" and guild_id != GLOBAL_SCOPE:
        raise Conflict(f"feed {feed.name!r} comes from the config file: remove it there")
    if feed.retired_at is not None:
        raise Conflict(
            f"feed {feed.name!r} is already retired (its history is kept; purge deletes it)"
        )
    feed.retired_at = utcnow()
    feed.lease_owner = None
    feed.lease_until = None
    await session.flush()
    view = _view(feed)
    log.info(
        "feed %r retired by %s (history kept)",
        view.name,
        actor,
        extra={"feed_id": view.id, "url": view.url, "guild_id": guild_id, "actor": actor},
    )
    return view


async def purge_feed(
    session: AsyncSession,
    guild_id: int,
    name_or_url: str,
    actor: str,
    *,
    config_urls: Collection[str] = (),
    dry_run: bool = False,
) -> PurgeView:
    """Delete a feed and its history for good: entries, and the events only it carried.

    The one explicit way to delete stored stories (config sync only retires). A config-file
    feed that is still listed (not retired, or its URL in `config_urls`, the file the caller
    loaded) is refused: it would come back at the next start. With `dry_run`, check and count
    without deleting (what a confirmation prompt shows).
    """
    feed = await get_feed(session, guild_id, name_or_url)
    if feed.origin == "config" and (feed.retired_at is None or feed.url in config_urls):
        raise Conflict(
            f"feed {feed.name!r} is still in the config file: remove it from the config "
            "first (it is then retired at the next start), then purge it"
        )
    if feed.guild_id != guild_id and feed.origin != "config":
        raise Conflict(f"feed {feed.name!r} is shared by every server: purge it from the CLI")
    entries = int(
        await session.scalar(select(func.count(Entry.id)).where(Entry.feed_id == feed.id)) or 0
    )
    events = int(
        await session.scalar(
            select(func.count(Event.id)).where(
                Event.id.in_(select(Entry.event_id).where(Entry.feed_id == feed.id)),
                Event.manual.is_(False),
                ~exists().where(Entry.event_id == Event.id, Entry.feed_id != feed.id),
            )
        )
        or 0
    )
    view = PurgeView(feed.name, feed.url, entries, events, done=not dry_run)
    if dry_run:
        return view
    feed_id = feed.id
    await delete_feed_rows(session, feed)
    log.warning(
        "feed %r purged by %s: %d entries and %d events deleted",
        view.name,
        actor,
        entries,
        events,
        extra={"feed_id": feed_id, "url": view.url, "guild_id": guild_id, "actor": actor},
    )
    return view


async def delete_feed_rows(session: AsyncSession, feed: Feed) -> None:
    """Delete a feed, its entries, and the events only it carried (`remove_feed`, `purge_feed`)."""
    event_ids = list(
        (
            await session.scalars(
                select(Entry.event_id).where(Entry.feed_id == feed.id, Entry.event_id.is_not(None))
            )
        ).all()
    )
    await session.execute(delete(Entry).where(Entry.feed_id == feed.id))
    await session.execute(delete(Feed).where(Feed.id == feed.id))
    session.expunge(feed)
    if event_ids:
        # Events that only this feed carried go too; the others get their time recomputed.
        await session.execute(
            delete(Event).where(
                Event.id.in_(event_ids),
                Event.manual.is_(False),
                ~exists().where(Entry.event_id == Event.id),
            )
        )
        for event in (await session.scalars(select(Event).where(Event.id.in_(event_ids)))).all():
            await refresh_occurred_at(session, event)
    await session.flush()


async def list_feeds(session: AsyncSession, guild_id: int) -> list[FeedView]:
    """Return the feeds the guild sees, by name."""
    return [_view(f) for f in await _visible(session, guild_id)]


async def feed_status(session: AsyncSession, guild_id: int, name_or_url: str) -> FeedStatus:
    """Return one feed's polling health."""
    feed = await get_feed(session, guild_id, name_or_url)
    return (await _statuses(session, [feed]))[0]


async def feed_statuses(session: AsyncSession, guild_id: int) -> list[FeedStatus]:
    """Return every visible feed's polling health, by name."""
    return await _statuses(session, await _visible(session, guild_id))


async def _statuses(session: AsyncSession, feeds: list[Feed]) -> list[FeedStatus]:
    ids = [f.id for f in feeds]
    counts: dict[int, int] = {}
    if ids:
        counts = dict(
            (
                await session.execute(
                    select(Entry.feed_id, func.count(Entry.id))
                    .where(Entry.feed_id.in_(ids))
                    .group_by(Entry.feed_id)
                )
            )
            .tuples()
            .all()
        )
    return [
        FeedStatus(
            name=f.name,
            url=f.url,
            status=f.status,
            last_success_at=f.last_success_at,
            last_checked_at=f.last_checked_at,
            last_error=f.last_error,
            error_count=f.error_count,
            next_check_at=f.next_check_at if f.enabled and f.retired_at is None else None,
            entry_count=int(counts.get(f.id, 0)),
            enabled=f.enabled,
            retired_at=f.retired_at,
        )
        for f in feeds
    ]


async def feed_names(
    session: AsyncSession, guild_id: int, prefix: str = "", limit: int = 25
) -> list[str]:
    """Return feed names for autocomplete: those starting with `prefix`, then containing it."""
    wanted = prefix.strip().casefold()
    names = [f.name for f in await _visible(session, guild_id)]
    first = [n for n in names if n.casefold().startswith(wanted)]
    rest = [n for n in names if wanted in n.casefold() and n not in first]
    return (first + rest)[:limit]
