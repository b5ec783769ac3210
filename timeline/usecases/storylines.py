"""Storylines, the use cases: list, show, chart, export, rename, merge, split, detach.

Each function is the one door of a `/story …` command and its `timeline-bot story …` twin: it
checks the guild scope and the arguments, changes or reads the rows, logs who changed what,
and returns plain views. Storylines form by themselves in ingest (see
:mod:`timeline.storage.storylines`); the admin actions here correct them, and ingest respects
the corrections (a renamed storyline keeps its title, a detached event stays out).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.errors import BadQuery, Conflict, NotFound
from timeline.domain.storylines import WINDOW
from timeline.domain.typed_dates import day_bound
from timeline.storage.models import Alert, Event, Storyline, Watch
from timeline.usecases._common import get_event, scope
from timeline.usecases.chart import NO_WATCH, ChartData, ChartLabel, bucket_start
from timeline.usecases.export import FORMATS, render_csv, render_ics, render_json, render_markdown
from timeline.usecases.timeline import event_views
from timeline.usecases.views import EventView

log = logging.getLogger(__name__)

MAX_TITLE = 200
MAX_LIST = 25
MAX_EVENTS = 2_000


@dataclass(frozen=True, slots=True)
class StorylineSummary:
    """One storyline as `/story list` shows it."""

    id: int
    title: str
    events: int
    first_at: datetime
    last_at: datetime
    watches: list[str] = field(default_factory=list)
    title_edited: bool = False

    def active(self, now: datetime, window: timedelta = WINDOW) -> bool:
        """Whether an event joined within the storyline window of `now`."""
        return self.last_at >= now - window


@dataclass(frozen=True, slots=True)
class StorylineDetail:
    """A storyline with its events, oldest first (what `/story show` tells)."""

    storyline: StorylineSummary
    events: list[EventView]
    truncated: bool = False


def _title(title: str) -> str:
    cleaned = " ".join((title or "").split())
    if not cleaned:
        raise BadQuery("a storyline title must not be empty")
    if len(cleaned) > MAX_TITLE:
        raise BadQuery(f"a storyline title has at most {MAX_TITLE} characters")
    return cleaned


async def get_storyline(session: AsyncSession, guild_id: int, storyline_id: int) -> Storyline:
    """Load a storyline visible to `guild_id` or raise NotFound (another guild's included)."""
    row = await session.scalar(
        select(Storyline).where(
            Storyline.id == storyline_id, Storyline.guild_id.in_(scope(guild_id))
        )
    )
    if row is None:
        raise NotFound(f"no storyline #{storyline_id} on this server's timeline")
    return row


async def _summaries(session: AsyncSession, rows: list[Storyline]) -> list[StorylineSummary]:
    ids = [r.id for r in rows]
    if not ids:
        return []
    stats = {
        sid: (int(n), first, last)
        for sid, n, first, last in (
            await session.execute(
                select(
                    Event.storyline_id,
                    func.count(Event.id),
                    func.min(Event.occurred_at),
                    func.max(Event.occurred_at),
                )
                .where(Event.storyline_id.in_(ids))
                .group_by(Event.storyline_id)
            )
        ).all()
    }
    watches: dict[int, list[str]] = {i: [] for i in ids}
    for sid, name in (
        await session.execute(
            select(Event.storyline_id, Watch.name)
            .join(Alert, Alert.event_id == Event.id)
            .join(Watch, Watch.id == Alert.watch_id)
            .where(Event.storyline_id.in_(ids))
            .group_by(Event.storyline_id, Watch.name)
            .order_by(Watch.name)
        )
    ).all():
        watches[sid].append(name)
    out = []
    for r in rows:
        n, first, last = stats.get(r.id, (0, r.created_at, r.updated_at))
        out.append(
            StorylineSummary(r.id, r.title, n, first, last, watches[r.id], bool(r.title_edited))
        )
    return out


async def list_storylines(
    session: AsyncSession,
    guild_id: int,
    *,
    active_only: bool = True,
    now: datetime | None = None,
    limit: int = MAX_LIST,
) -> list[StorylineSummary]:
    """The guild's storylines, most recently continued first (active ones only by default)."""
    if not 1 <= limit <= 200:
        raise BadQuery("limit must be between 1 and 200")
    now = now or datetime.now(UTC)
    last = (
        select(Event.storyline_id, func.max(Event.occurred_at).label("last_at"))
        .where(Event.storyline_id.is_not(None))
        .group_by(Event.storyline_id)
        .subquery()
    )
    query = (
        select(Storyline)
        .join(last, last.c.storyline_id == Storyline.id)
        .where(Storyline.guild_id.in_(scope(guild_id)))
        .order_by(last.c.last_at.desc(), Storyline.id.desc())
        .limit(limit)
    )
    if active_only:
        query = query.where(last.c.last_at >= now - WINDOW)
    rows = list((await session.scalars(query)).all())
    return await _summaries(session, rows)


async def storyline_titles(session: AsyncSession, guild_id: int, prefix: str) -> list[Storyline]:
    """Storylines whose title contains `prefix` (for autocomplete), newest first."""
    query = (
        select(Storyline)
        .where(Storyline.guild_id.in_(scope(guild_id)))
        .order_by(Storyline.updated_at.desc(), Storyline.id.desc())
        .limit(MAX_LIST)
    )
    cleaned = (prefix or "").strip().lstrip("#")
    if cleaned.isdigit():
        query = query.where(Storyline.id == int(cleaned))
    elif cleaned:
        escaped = cleaned.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Storyline.title.ilike(f"%{escaped}%", escape="\\"))
    return list((await session.scalars(query)).all())


async def show_storyline(
    session: AsyncSession, guild_id: int, storyline_id: int, *, limit: int = MAX_EVENTS
) -> StorylineDetail:
    """A storyline and its events, oldest first (with sources and what each source added)."""
    row = await get_storyline(session, guild_id, storyline_id)
    events = list(
        (
            await session.scalars(
                select(Event)
                .where(Event.storyline_id == row.id)
                .order_by(Event.occurred_at, Event.id)
                .limit(limit + 1)
            )
        ).all()
    )
    truncated = len(events) > limit
    views = await event_views(session, guild_id, events[:limit])
    (summary,) = await _summaries(session, [row])
    return StorylineDetail(summary, views, truncated)


async def storyline_chart(
    session: AsyncSession, guild_id: int, storyline_id: int, *, zone: tzinfo = UTC
) -> ChartData:
    """The storyline's events over time, one series per watch (the same picture as /chart).

    Days (and Monday-started weeks) are those of `zone`, the guild's time zone.
    """
    detail = await show_storyline(session, guild_id, storyline_id)
    if not detail.events:
        raise NotFound(f"storyline #{storyline_id} has no events")
    first = min(e.occurred_at for e in detail.events)
    last = max(e.occurred_at for e in detail.events)
    bucket: str = "week" if (last - first) > timedelta(days=90) else "day"

    def local_day(moment: datetime) -> date:
        return moment.astimezone(zone).date()

    counts: dict[str, Counter[date]] = {}
    for e in detail.events:
        day = bucket_start(local_day(e.occurred_at), bucket)  # type: ignore[arg-type]
        for name in e.watches or [NO_WATCH]:
            counts.setdefault(name, Counter())[day] += 1
    start = bucket_start(local_day(first), bucket)  # type: ignore[arg-type]
    end = bucket_start(local_day(last), bucket)  # type: ignore[arg-type]
    step = timedelta(days=7 if bucket == "week" else 1)
    days = []
    day = start
    while day <= end:
        days.append(day)
        day += step
    series = {name: [(d, c.get(d, 0)) for d in days] for name, c in sorted(counts.items())}
    biggest = sorted(detail.events, key=lambda e: (-len(e.sources), e.occurred_at))[:5]
    labels = [ChartLabel(e.id, local_day(e.occurred_at), e.title, len(e.sources)) for e in biggest]
    return ChartData(
        bucket,  # type: ignore[arg-type]
        day_bound(start, zone=zone),
        # Inclusive, as /chart's: the last moment of the last bucket's last day.
        day_bound(end + step - timedelta(days=1), end=True, zone=zone),
        series,
        labels,
        len(detail.events),
        zone=zone,
    )


async def export_storyline(
    session: AsyncSession,
    guild_id: int,
    storyline_id: int,
    fmt: str,
    *,
    now: datetime | None = None,
    zone: tzinfo = UTC,
) -> tuple[str, bytes]:
    """Render one storyline's events (oldest first) as csv, json, ics or md.

    As the timeline export: times stay UTC, CSV and JSON add each time in `zone` (the
    guild's), and Markdown groups days and writes times in it.
    """
    if fmt not in FORMATS:
        raise BadQuery(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    detail = await show_storyline(session, guild_id, storyline_id)
    events = detail.events
    if fmt == "csv":
        data = render_csv(events, zone)
    elif fmt == "json":
        data = render_json(events, now=now, guild_id=guild_id, zone=zone)
    elif fmt == "ics":
        data = render_ics(events, now=now, guild_id=guild_id)
    else:
        heading = f"# Storyline #{storyline_id}: {detail.storyline.title}\n\n"
        data = (heading + render_markdown(events, zone)).encode("utf-8")
    log.info(
        "exported storyline %d (%d events) as %s",
        storyline_id,
        len(events),
        fmt,
        extra={"guild_id": guild_id},
    )
    return f"storyline-{storyline_id}-{now:%Y%m%d-%H%M%S}.{fmt}", data


async def rename_storyline(
    session: AsyncSession, guild_id: int, storyline_id: int, title: str, actor: str
) -> StorylineSummary:
    """Give a storyline a title of the team's; ingest keeps it from then on."""
    row = await get_storyline(session, guild_id, storyline_id)
    old, row.title, row.title_edited = row.title, _title(title), True
    await session.flush()
    log.info(
        "storyline %d renamed from %r to %r by %s",
        row.id,
        old,
        row.title,
        actor,
        extra={"guild_id": guild_id, "actor": actor},
    )
    (summary,) = await _summaries(session, [row])
    return summary


async def merge_storylines(
    session: AsyncSession, guild_id: int, keep_id: int, other_id: int, actor: str
) -> StorylineSummary:
    """Move every event of `other_id` into `keep_id` and remove `other_id`."""
    if keep_id == other_id:
        raise Conflict("cannot merge a storyline into itself")
    keep = await get_storyline(session, guild_id, keep_id)
    other = await get_storyline(session, guild_id, other_id)
    if keep.guild_id != other.guild_id:
        raise Conflict("cannot merge storylines of different scopes (config file and server)")
    moved = await session.execute(
        update(Event).where(Event.storyline_id == other.id).values(storyline_id=keep.id)
    )
    await session.execute(delete(Storyline).where(Storyline.id == other.id))
    keep.updated_at = datetime.now(UTC)
    await session.flush()
    log.info(
        "storyline %d merged into %d (%d events) by %s",
        other_id,
        keep_id,
        moved.rowcount or 0,  # type: ignore[attr-defined]
        actor,
        extra={"guild_id": guild_id, "actor": actor},
    )
    (summary,) = await _summaries(session, [keep])
    return summary


async def detach_event(session: AsyncSession, guild_id: int, event_id: int, actor: str) -> int:
    """Take one event out of its storyline for good; return the storyline it left.

    Ingest does not put a detached event back. A storyline left with no events is removed.
    """
    event = await get_event(session, guild_id, event_id)
    if event.storyline_id is None:
        raise Conflict(f"event #{event_id} is not part of a storyline")
    left = event.storyline_id
    event.storyline_id = None
    event.storyline_detached = True
    await session.flush()
    await _drop_if_empty(session, left)
    log.info(
        "event %d detached from storyline %d by %s",
        event_id,
        left,
        actor,
        extra={"guild_id": guild_id, "actor": actor},
    )
    return left


async def split_storyline(
    session: AsyncSession, guild_id: int, storyline_id: int, from_event_id: int, actor: str
) -> StorylineSummary:
    """Move `from_event_id` and every later event of the storyline into a new storyline."""
    row = await get_storyline(session, guild_id, storyline_id)
    event = await get_event(session, guild_id, from_event_id)
    if event.storyline_id != row.id:
        raise Conflict(f"event #{from_event_id} is not part of storyline #{storyline_id}")
    first_id = await session.scalar(
        select(Event.id)
        .where(Event.storyline_id == row.id)
        .order_by(Event.occurred_at, Event.id)
        .limit(1)
    )
    if first_id == event.id:
        raise Conflict(
            f"event #{from_event_id} is the storyline's first event: nothing would be left; "
            "rename the storyline instead"
        )
    now = datetime.now(UTC)
    new = Storyline(
        guild_id=row.guild_id,
        title=_title(f"{row.title} (from {event.occurred_at:%d %b %Y})"[:MAX_TITLE]),
        title_edited=False,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(new)
    await session.flush()
    await session.execute(
        update(Event)
        .where(
            Event.storyline_id == row.id,
            (Event.occurred_at > event.occurred_at)
            | ((Event.occurred_at == event.occurred_at) & (Event.id >= event.id)),
        )
        .values(storyline_id=new.id)
    )
    await session.flush()
    log.info(
        "storyline %d split at event %d into new storyline %d by %s",
        storyline_id,
        from_event_id,
        new.id,
        actor,
        extra={"guild_id": guild_id, "actor": actor},
    )
    (summary,) = await _summaries(session, [new])
    return summary


async def _drop_if_empty(session: AsyncSession, storyline_id: int) -> None:
    left = await session.scalar(
        select(func.count(Event.id)).where(Event.storyline_id == storyline_id)
    )
    if not left:
        await session.execute(delete(Storyline).where(Storyline.id == storyline_id))
