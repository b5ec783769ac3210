"""What `/chart` and `timeline-bot chart` draw: events per bucket per watch, and the largest.

The counts are made here (the only place with SQL); `timeline.render.chart.render_chart` draws them.
An event counts once in every watch that alerted on it; events no watch alerted on (manual
ones, for instance) count under `NO_WATCH`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.errors import BadQuery
from timeline.domain.typed_dates import day_bound
from timeline.storage.models import Alert, Entry, Event, Watch
from timeline.usecases._common import scope
from timeline.usecases.timeline import SEARCH_CAP, _conditions

log = logging.getLogger(__name__)

Bucket = Literal["day", "week"]
BUCKETS: tuple[Bucket, ...] = ("day", "week")
NO_WATCH = "no watch"
MAX_CHART_EVENTS = 20_000
MAX_LABELS = 5
# Without `since`, a chart shows at most this much history, ending at the newest event (or at
# `until` when given), narrowed to the days that have events.
DEFAULT_SPAN = {"day": timedelta(days=30), "week": timedelta(weeks=26)}


@dataclass(frozen=True, slots=True)
class ChartLabel:
    """One of the largest events (most sources), to name on the chart."""

    event_id: int
    day: date
    title: str
    sources: int


@dataclass(frozen=True, slots=True)
class ChartData:
    """Event counts per watch per bucket (bucket start date -> count), oldest bucket first."""

    bucket: Bucket
    since: datetime
    until: datetime
    series: dict[str, list[tuple[date, int]]]
    labels: list[ChartLabel] = field(default_factory=list)
    events: int = 0
    capped: bool = False  # more events matched than MAX_CHART_EVENTS (or the search cap)
    # The period was chosen to fit the events (no since/until given), not asked for: the
    # picture then spans the data, padded, rather than exactly since..until.
    fitted: bool = True
    # The guild's time zone: what a day is for the buckets, the labels and the period shown.
    zone: tzinfo = UTC

    def first_day(self) -> date:
        """Return the period's first day in the guild's zone."""
        return self.since.astimezone(self.zone).date()

    def last_day(self) -> date:
        """Return the period's last day in the guild's zone (`until` is inclusive)."""
        return self.until.astimezone(self.zone).date()

    def title(self, query: str | None = None) -> str:
        """Return a chart title naming the query and the period."""
        what = f"Timeline: {query.strip()}" if query and query.strip() else "Timeline"
        return (
            f"{what} ({self.first_day():%Y-%m-%d} to {self.last_day():%Y-%m-%d}, per {self.bucket})"
        )


def bucket_start(day: date, bucket: Bucket) -> date:
    """Return the first day of `day`'s bucket (weeks start on Monday, ISO 8601)."""
    return day - timedelta(days=day.weekday()) if bucket == "week" else day


async def chart_data(  # noqa: C901 (one branch per filter)
    session: AsyncSession,
    guild_id: int,
    *,
    query: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bucket: str = "day",
    now: datetime | None = None,
    aliases: Mapping[str, str] | None = None,
    max_events: int = MAX_CHART_EVENTS,
    max_labels: int = MAX_LABELS,
    search_cap: int = SEARCH_CAP,
    watch: str | None = None,
    source: str | None = None,
    zone: tzinfo = UTC,
) -> ChartData:
    """Count the guild's events per watch per `bucket` between `since` and `until`.

    Days (and Monday-started weeks) are those of `zone`, the guild's time zone.

    A given `since` or `until` is kept as given. Without either, the window fits the data:
    it ends at the newest matching event (at `now` when there is none) and starts at the
    oldest event counted, at most 30 days (day buckets) or 26 weeks (week buckets) before
    its end. With only `until`, the start fits the data the same way. Only the newest
    `max_events` events (and, with a query, the events of the newest `search_cap` matching
    entries) are counted; `capped` says when a limit was reached. A given period longer than
    `timeline.render.chart.MAX_BUCKETS` days is counted per week.
    """
    if bucket not in BUCKETS:
        raise BadQuery(f"unknown bucket {bucket!r}: use day or week")
    chosen: Bucket = "week" if bucket == "week" else "day"
    now = (now or datetime.now(UTC)).astimezone(UTC)
    fit_start = since is None
    fitted = since is None and until is None
    if until is None:
        until = now
        if fitted:
            latest = await _newest(
                session, guild_id, query, until, aliases, search_cap, watch=watch, source=source
            )
            until = latest or until
    since = since or until - DEFAULT_SPAN[chosen]
    if since > until:
        raise BadQuery("since must be before until")
    from timeline.render.chart import MAX_BUCKETS  # noqa: PLC0415 (Matplotlib: only when a chart is drawn)

    if chosen == "day" and (until - since).days + 1 > MAX_BUCKETS:
        # More days than one picture can hold bars for: count per week (the caption says so).
        chosen = "week"
    conds, capped = await _conditions(
        session,
        guild_id,
        query=query,
        since=since,
        until=until,
        watch=watch,
        source=source,
        aliases=aliases,
        search_cap=search_cap,
    )
    newest = (
        select(Event.id, Event.occurred_at, Event.title)
        .where(*conds)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(max_events + 1)
        .subquery()
    )
    rows = (await session.execute(select(newest))).all()
    if len(rows) > max_events:
        capped = True
        rows = rows[:max_events]
    if not rows:
        return ChartData(chosen, since, until, {}, [], 0, capped, fitted, zone)
    if fit_start:
        oldest = min(row.occurred_at for row in rows).astimezone(zone)
        since = max(since, day_bound(oldest.date(), zone=zone))
    keep = {row.id for row in rows}
    watches: dict[int, set[str]] = {}
    watch_rows = await session.execute(
        select(Alert.event_id, Watch.name)
        .join(Watch, Watch.id == Alert.watch_id)
        .join(newest, newest.c.id == Alert.event_id)
        .where(Watch.guild_id.in_(scope(guild_id)))
    )
    for event_id, name in watch_rows:
        if event_id in keep:
            watches.setdefault(event_id, set()).add(name)
    sources = dict(
        (
            await session.execute(
                select(Entry.event_id, func.count(Entry.id))
                .join(newest, newest.c.id == Entry.event_id)
                .group_by(Entry.event_id)
            )
        )
        .tuples()
        .all()
    )

    counts: dict[str, dict[date, int]] = {}
    for row in rows:
        day = bucket_start(row.occurred_at.astimezone(zone).date(), chosen)
        for name in sorted(watches.get(row.id) or {NO_WATCH}):
            per = counts.setdefault(name, {})
            per[day] = per.get(day, 0) + 1
    series = {name: sorted(per.items()) for name, per in sorted(counts.items())}
    largest = sorted(
        rows, key=lambda r: (-int(sources.get(r.id, 0)), -r.occurred_at.timestamp(), -r.id)
    )
    labels = [
        ChartLabel(
            r.id,
            bucket_start(r.occurred_at.astimezone(zone).date(), chosen),
            r.title,
            int(sources.get(r.id, 0)),
        )
        for r in largest[:max_labels]
        if sources.get(r.id, 0) > 1
    ]
    log.debug(
        "chart data: %d events in %d series", len(rows), len(series), extra={"guild_id": guild_id}
    )
    return ChartData(chosen, since, until, series, labels, len(rows), capped, fitted, zone)


async def _newest(
    session: AsyncSession,
    guild_id: int,
    query: str | None,
    until: datetime,
    aliases: Mapping[str, str] | None,
    search_cap: int,
    watch: str | None = None,
    source: str | None = None,
) -> datetime | None:
    """Return the time of the newest matching event up to `until`, or None if there is none."""
    conds, _ = await _conditions(
        session,
        guild_id,
        query=query,
        since=None,
        until=until,
        watch=watch,
        source=source,
        aliases=aliases,
        search_cap=search_cap,
    )
    newest = (await session.execute(select(func.max(Event.occurred_at)).where(*conds))).scalar()
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return newest


def render_png(data: ChartData, title: str = "") -> bytes:
    """Draw `data` as a PNG (CPU-bound: run it in a worker thread from async code)."""
    from timeline.render.chart import render_chart  # noqa: PLC0415 (Matplotlib: only when a chart is drawn)

    try:
        return render_chart(
            data.series,
            bucket=data.bucket,
            labels=[(label.day, label.title) for label in data.labels],
            title=title,
            # A fitted period is the data's own extent: the picture pads it. An asked-for
            # period is drawn as asked (`until` is inclusive; a storyline's ends at midnight).
            window=None
            if data.fitted
            else (
                data.since.astimezone(data.zone).date(),
                (data.until - timedelta(microseconds=1)).astimezone(data.zone).date(),
            ),
        )
    except ValueError as exc:
        # Too many buckets for one picture: the message says what to change.
        raise BadQuery(str(exc)) from None
