"""Watches: the saved queries that alert a channel.

Config-file watches (guild 0, origin "config") may be edited and paused from Discord, but the
file wins: `sync_config` at start-up puts every config watch back to what the file says. A
config watch the file no longer lists is retired (`retired_at`): it alerts no more, its alert
records stay, and listing it again (same name, or same query and channel) brings it back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain import delivery_options
from timeline.domain.errors import BadQuery, Conflict, NotFound
from timeline.render.templates import colour_problem, parse_colour, template_problem
from timeline.storage.models import GLOBAL_SCOPE, Alert, Watch, utcnow
from timeline.storage.outbox import AlertView, load_alert_views
from timeline.usecases import _query
from timeline.usecases._common import (
    MAX_QUERY,
    aliases_for,
    check_name,
    check_origin,
    clean_text,
    scope,
)
from timeline.usecases.views import HitView

log = logging.getLogger(__name__)

MAX_TEST_DAYS = 3650
TEST_COUNT_CAP = 1000
AUTOCOMPLETE_LIMIT = 25


@dataclass(frozen=True, slots=True)
class WatchView:
    """A watch as the commands show it."""

    id: int
    name: str
    query: str
    channel_id: int
    role_id: int | None
    enabled: bool
    origin: str
    guild_id: int
    created_by: str | None
    retired_at: datetime | None = None
    template: str | None = None
    colour: int | None = None
    delivery: str = "channel"
    webhook_name: str | None = None
    webhook_avatar: str | None = None


@dataclass(frozen=True, slots=True)
class WatchTest:
    """What a query would have matched: how many stored entries and the newest few."""

    count: int
    first: list[HitView]
    capped: bool = False
    days: int = 0


def _view(watch: Watch) -> WatchView:
    return WatchView(
        id=watch.id,
        name=watch.name,
        query=watch.query,
        channel_id=watch.channel_id,
        role_id=watch.role_id,
        enabled=watch.enabled,
        origin=watch.origin,
        guild_id=watch.guild_id,
        created_by=watch.created_by,
        retired_at=watch.retired_at,
        template=watch.template,
        colour=watch.colour,
        delivery=watch.delivery or "channel",
        webhook_name=watch.webhook_name,
        webhook_avatar=watch.webhook_avatar,
    )


def _check_snowflake(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise BadQuery(f"{what} must be a Discord id (a positive integer)")
    return value


async def _validate_query(session: AsyncSession, guild_id: int, query: str) -> str:
    text = clean_text(query, "query", MAX_QUERY)
    _query.parse(text, await aliases_for(session, guild_id))
    return text


async def _visible(session: AsyncSession, guild_id: int) -> list[Watch]:
    return list(
        (
            await session.scalars(
                select(Watch).where(Watch.guild_id.in_(scope(guild_id))).order_by(Watch.name)
            )
        ).all()
    )


async def get_watch(session: AsyncSession, guild_id: int, name: str) -> Watch:
    """Find a visible watch by name (case-insensitive; the guild's own wins) or raise NotFound."""
    wanted = name.strip().casefold()
    found = [w for w in await _visible(session, guild_id) if w.name.casefold() == wanted]
    if not found:
        raise NotFound(f"no watch named {name.strip()!r} on this server (see the watch list)")
    found.sort(key=lambda w: w.guild_id == GLOBAL_SCOPE)
    return found[0]


async def add_watch(
    session: AsyncSession,
    guild_id: int,
    name: str,
    query: str,
    channel_id: int,
    actor: str,
    *,
    role_id: int | None = None,
    origin: str = "discord",
) -> WatchView:
    """Create a watch after checking its query parses (with the guild's aliases)."""
    clean_name = check_name(name, "watch")
    _check_snowflake(channel_id, "channel")
    _check_snowflake(role_id, "role")
    text = await _validate_query(session, guild_id, query)
    same = [
        w for w in await _visible(session, guild_id) if w.name.casefold() == clean_name.casefold()
    ]
    retired = next((w for w in same if w.retired_at and w.guild_id == guild_id), None)
    if retired is not None and len(same) == 1:
        # The same watch again: its alert records come back with it, so the events it
        # already posted are not posted a second time.
        retired.query, retired.channel_id, retired.role_id = text, channel_id, role_id
        retired.retired_at = None
        retired.enabled = True
        await session.flush()
        log.info(
            "watch %r revived by %s, with its alert records",
            retired.name,
            actor,
            extra={"watch_id": retired.id, "guild_id": guild_id, "actor": actor},
        )
        return _view(retired)
    if same:
        raise Conflict(f"a watch named {clean_name!r} already exists: pick another name or edit it")
    watch = Watch(
        guild_id=guild_id,
        name=clean_name,
        query=text,
        channel_id=channel_id,
        role_id=role_id,
        enabled=True,
        origin=check_origin(origin),
        created_by=actor[:100],
    )
    session.add(watch)
    await session.flush()
    log.info(
        "watch %r added by %s",
        clean_name,
        actor,
        extra={"watch_id": watch.id, "guild_id": guild_id, "actor": actor},
    )
    return _view(watch)


async def edit_watch(
    session: AsyncSession,
    guild_id: int,
    name: str,
    actor: str,
    *,
    query: str | None = None,
    channel_id: int | None = None,
    role_id: int | None = None,
    clear_role: bool = False,
) -> WatchView:
    """Change a watch's query, channel or role; unchanged fields are left alone."""
    watch = await get_watch(session, guild_id, name)
    changes = []
    if query is not None:
        watch.query = await _validate_query(session, guild_id, query)
        changes.append("query")
    if channel_id is not None:
        watch.channel_id = _check_snowflake(channel_id, "channel") or watch.channel_id
        changes.append("channel")
    if clear_role:
        watch.role_id = None
        changes.append("role")
    elif role_id is not None:
        watch.role_id = _check_snowflake(role_id, "role")
        changes.append("role")
    if not changes:
        raise BadQuery("nothing to change: give a new query, channel or role")
    await session.flush()
    log.info(
        "watch %r edited (%s) by %s",
        watch.name,
        ", ".join(changes),
        actor,
        extra={"watch_id": watch.id, "guild_id": guild_id, "actor": actor},
    )
    return _view(watch)


async def remove_watch(session: AsyncSession, guild_id: int, name: str, actor: str) -> WatchView:
    """Stop a watch: it is retired, alerts no more, and keeps its alert records (which events
    it posted, the timeline's "watches" of each event); config-file watches are refused.

    Alerts it had queued but not yet posted are dropped: nothing was posted, so no record is
    lost, and a removed watch must not post afterwards. Adding a watch of the same name again
    revives it with its records.
    """
    watch = await get_watch(session, guild_id, name)
    if watch.origin == "config" and guild_id != GLOBAL_SCOPE:
        raise Conflict(
            f"watch {watch.name!r} comes from the config file: remove it there, or pause it here"
        )
    if watch.retired_at is not None:
        raise Conflict(f"watch {watch.name!r} is already retired")
    watch.retired_at = utcnow()
    dropped = await session.execute(
        delete(Alert).where(
            Alert.watch_id == watch.id, Alert.status == "pending", Alert.message_id.is_(None)
        )
    )
    await session.flush()
    view = _view(watch)
    log.info(
        "watch %r retired by %s (alert records kept, %d queued alerts dropped)",
        view.name,
        actor,
        dropped.rowcount or 0,  # type: ignore[attr-defined]
        extra={"watch_id": view.id, "guild_id": guild_id, "actor": actor},
    )
    return view


async def set_watch_enabled(
    session: AsyncSession, guild_id: int, name: str, enabled: bool, actor: str
) -> WatchView:
    """Pause (`enabled=False`) or resume a watch."""
    watch = await get_watch(session, guild_id, name)
    watch.enabled = enabled
    await session.flush()
    log.info(
        "watch %r %s by %s",
        watch.name,
        "resumed" if enabled else "paused",
        actor,
        extra={"watch_id": watch.id, "guild_id": guild_id, "actor": actor},
    )
    return _view(watch)


async def pause_watch(session: AsyncSession, guild_id: int, name: str, actor: str) -> WatchView:
    """Stop a watch from alerting until it is resumed."""
    return await set_watch_enabled(session, guild_id, name, False, actor)


async def resume_watch(session: AsyncSession, guild_id: int, name: str, actor: str) -> WatchView:
    """Let a paused watch alert again."""
    return await set_watch_enabled(session, guild_id, name, True, actor)


async def list_watches(session: AsyncSession, guild_id: int) -> list[WatchView]:
    """Return the watches the guild sees, by name."""
    return [_view(w) for w in await _visible(session, guild_id)]


async def watch_names(
    session: AsyncSession, guild_id: int, prefix: str = "", limit: int = AUTOCOMPLETE_LIMIT
) -> list[str]:
    """Return watch names for autocomplete: those starting with `prefix`, then containing it."""
    wanted = prefix.strip().casefold()
    names = [w.name for w in await _visible(session, guild_id)]
    first = [n for n in names if n.casefold().startswith(wanted)]
    rest = [n for n in names if wanted in n.casefold() and n not in first]
    return (first + rest)[:limit]


async def test_watch(
    session: AsyncSession, guild_id: int, query: str, days: int, now: datetime
) -> WatchTest:
    """Count the stored entries of the last `days` days `query` matches, without saving it."""
    if not 1 <= days <= MAX_TEST_DAYS:
        raise BadQuery(f"days must be between 1 and {MAX_TEST_DAYS}")
    text = clean_text(query, "query", MAX_QUERY)
    parsed = _query.parse(text, await aliases_for(session, guild_id))
    hits = await _query.search(
        session,
        parsed,
        guild_ids=scope(guild_id),
        since=now - timedelta(days=days),
        until=now,
        limit=TEST_COUNT_CAP + 1,
    )
    capped = len(hits) > TEST_COUNT_CAP
    return WatchTest(count=min(len(hits), TEST_COUNT_CAP), first=hits[:5], capped=capped, days=days)


# pytest would otherwise try to collect the service function as a test when imported there.
test_watch.__test__ = False  # type: ignore[attr-defined]


def _check_template(template: str | None, colour: str | None) -> tuple[str | None, int | None]:
    clean = None
    if template is not None:
        clean = template.strip("\n")
        reason = template_problem(clean)
        if reason:
            raise BadQuery(f"template {reason}")
    value = None
    if colour is not None and colour.strip():
        reason = colour_problem(colour)
        if reason:
            raise BadQuery(f"colour {reason}")
        value = parse_colour(colour)
    return clean, value


async def set_template(
    session: AsyncSession,
    guild_id: int,
    name: str,
    actor: str,
    *,
    template: str | None = None,
    colour: str | None = None,
    clear: bool = False,
) -> WatchView:
    """Give a watch its message template and colour (`clear`: back to the default)."""
    watch = await get_watch(session, guild_id, name)
    if watch.origin == "config" and guild_id != GLOBAL_SCOPE:
        raise Conflict(f"watch {watch.name!r} comes from the config file: set its template there")
    if clear:
        if template is not None or colour is not None:
            raise BadQuery("give a template or colour, or clear, not both")
        watch.template, watch.colour = None, None
    else:
        if template is None and colour is None:
            raise BadQuery("give a template, a colour, or clear")
        clean, value = _check_template(template, colour)
        if clean is not None:
            watch.template = clean
        if value is not None:
            watch.colour = value
    await session.flush()
    log.info(
        "watch %r template %s by %s",
        watch.name,
        "cleared" if clear else "set",
        actor,
        extra={"watch_id": watch.id, "guild_id": guild_id, "actor": actor},
    )
    return _view(watch)


async def set_delivery(
    session: AsyncSession,
    guild_id: int,
    name: str,
    actor: str,
    *,
    mode: str,
    webhook_name: str | None = None,
    avatar_url: str | None = None,
) -> WatchView:
    """Choose how a watch posts: as the bot (`channel`) or through the channel's webhook
    (`webhook`, with `webhook_name` and `avatar_url` as the messages' author)."""
    watch = await get_watch(session, guild_id, name)
    if watch.origin == "config" and guild_id != GLOBAL_SCOPE:
        raise Conflict(f"watch {watch.name!r} comes from the config file: set its delivery there")
    if reason := delivery_options.mode_problem(mode):
        raise BadQuery(f"delivery {reason}")
    if mode != delivery_options.WEBHOOK:
        if webhook_name is not None or avatar_url is not None:
            raise BadQuery("a webhook name or avatar needs the webhook delivery")
        watch.delivery = None if mode == delivery_options.CHANNEL else mode
        watch.webhook_name, watch.webhook_avatar = None, None
    else:
        if webhook_name is not None and (
            reason := delivery_options.webhook_name_problem(webhook_name)
        ):
            raise BadQuery(f"webhook name {reason}")
        if avatar_url is not None and (reason := delivery_options.avatar_problem(avatar_url)):
            raise BadQuery(f"avatar URL {reason}")
        watch.delivery = mode
        watch.webhook_name = webhook_name.strip() if webhook_name is not None else None
        watch.webhook_avatar = avatar_url.strip() if avatar_url is not None else None
    await session.flush()
    log.info(
        "watch %r delivery set to %s by %s",
        watch.name,
        mode,
        actor,
        extra={"watch_id": watch.id, "guild_id": guild_id, "actor": actor},
    )
    return _view(watch)


async def preview_alert(
    session: AsyncSession,
    guild_id: int,
    name: str,
    *,
    template: str | None = None,
    colour: str | None = None,
) -> AlertView:
    """The watch's alert for its latest event, as it would be posted, with `template` and
    `colour` if given (nothing is saved): what `/watch preview` shows."""
    watch = await get_watch(session, guild_id, name)
    clean, value = _check_template(template, colour)
    latest = await session.scalar(
        select(Alert.id).where(Alert.watch_id == watch.id).order_by(Alert.id.desc()).limit(1)
    )
    if latest is None:
        raise NotFound(f"watch {watch.name!r} has not matched any story yet: nothing to preview")
    (view,) = await load_alert_views(session, [latest])
    return replace(
        view,
        template=clean if clean is not None else view.template,
        colour=value if value is not None else view.colour,
    )
