"""Chart data: events per watch per day or week, largest events, window, query, guild scope."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.errors import BadQuery
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Watch
from timeline.usecases.chart import NO_WATCH, ChartData, bucket_start, chart_data, render_png


async def _seed(sdb: Database) -> None:
    async with sdb.session() as s:
        reuters = await make_feed(s, "Reuters", "https://reuters.example/rss")
        ap = await make_feed(s, "AP", "https://ap.example/rss")
        bbc = await make_feed(s, "BBC", "https://bbc.example/rss")
        mine = await make_feed(s, "Guild2 Blog", "https://two.example/rss", 2, "discord")
        nato = Watch(name="NATO", query="NATO", channel_id=1)
        drones = Watch(name="Drones", query="drone", channel_id=1)
        theirs = Watch(guild_id=2, name="Theirs", query="x", channel_id=2)
        s.add_all([nato, drones, theirs])
        await s.flush()
        # NOW is Thursday 2025-07-10 12:00 UTC.
        for days, title, feeds, watches in [
            (0, "NATO summit drone deal", [reuters, ap, bbc], [nato, drones]),
            (0, "NATO communique", [reuters], [nato]),
            (1, "Drone factory", [ap, reuters], [drones]),
            (5, "NATO exercise", [reuters], [nato, theirs]),
            (9, "Harvest festival", [bbc], []),
            (60, "Old NATO story", [reuters], [nato]),
        ]:
            event = await make_story(s, feeds, title, hours_ago=24 * days)
            for watch in watches:
                s.add(Alert(watch_id=watch.id, event_id=event.id, channel_id=1, status="sent"))
        await make_story(s, [mine], "Guild two only", hours_ago=2)


async def test_counts_per_watch_per_day_with_the_largest_events(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        data = await chart_data(s, 1, bucket="day", now=NOW)
    today, yesterday = date(2025, 7, 10), date(2025, 7, 9)
    assert data.series == {
        "Drones": [(yesterday, 1), (today, 1)],
        "NATO": [(date(2025, 7, 5), 1), (today, 2)],
        NO_WATCH: [(date(2025, 7, 1), 1)],
    }
    assert data.events == 5 and not data.capped
    # No `since`: the window fits the data, from the oldest counted event's day to now.
    assert data.since == NOW.replace(day=1, hour=0) and data.until == NOW
    assert [(label.title, label.sources) for label in data.labels] == [
        ("NATO summit drone deal", 3),
        ("Drone factory", 2),
    ]


async def test_week_buckets_start_on_monday_and_query_filters(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        weekly = await chart_data(s, 1, bucket="week", now=NOW)
        nato = await chart_data(s, 1, query="NATO", since=NOW - timedelta(days=7), now=NOW)
    monday = date(2025, 7, 7)
    assert weekly.series["NATO"] == [(date(2025, 5, 5), 1), (date(2025, 6, 30), 1), (monday, 2)]
    assert weekly.since == NOW.replace(month=5, day=11, hour=0)  # the oldest event's day
    assert sum(count for _, count in weekly.series[NO_WATCH]) == 1
    assert nato.events == 3
    assert nato.series == {
        "Drones": [(date(2025, 7, 10), 1)],
        "NATO": [(date(2025, 7, 5), 1), (date(2025, 7, 10), 2)],
    }


async def test_another_guild_sees_its_own_watches_only(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        data = await chart_data(s, 2, since=NOW - timedelta(days=7), now=NOW)
    assert data.series["Theirs"] == [(date(2025, 7, 5), 1)]
    # Guild two's own story has no alert; guild one's watches are not shown to it.
    assert "Drones" in data.series and "NATO" in data.series  # config-file watches (guild 0)
    assert (date(2025, 7, 10), 1) in data.series[NO_WATCH]


async def test_newest_events_only_when_capped_and_bad_input(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        data = await chart_data(s, 1, now=NOW, max_events=2)
        assert data.capped and data.events == 2
        with pytest.raises(BadQuery, match="unknown bucket 'month'"):
            await chart_data(s, 1, bucket="month", now=NOW)
        with pytest.raises(BadQuery, match="since must be before until"):
            await chart_data(s, 1, since=NOW, until=NOW - timedelta(days=1), now=NOW)
        with pytest.raises(BadQuery, match="column"):
            await chart_data(s, 1, query="NATO (", now=NOW)
        empty = await chart_data(s, 1, since=NOW + timedelta(days=1), until=NOW + timedelta(days=2))
    assert empty.series == {} and empty.events == 0
    assert render_png(empty).startswith(b"\x89PNG")
    assert render_png(data, data.title("NATO")).startswith(b"\x89PNG")


async def test_without_a_period_the_chart_ends_at_the_newest_event(sdb: Database) -> None:
    async with sdb.session() as s:
        reuters = await make_feed(s, "Reuters", "https://reuters.example/rss")
        # Nothing in the last 30 days: the default window would be empty.
        for days in (95, 97, 100):
            await make_story(s, [reuters], f"Story {days} days ago", hours_ago=24 * days)
        data = await chart_data(s, 1, now=NOW)
        recent = await chart_data(s, 1, since=NOW - timedelta(days=30), now=NOW)
    assert recent.events == 0
    assert data.events == 3
    assert data.until == NOW - timedelta(days=95)
    assert data.since == (NOW - timedelta(days=100)).replace(hour=0)
    assert [day for day, _ in data.series[NO_WATCH]] == [
        (NOW - timedelta(days=n)).date() for n in (100, 97, 95)
    ]


def test_weeks_start_on_monday() -> None:
    assert bucket_start(date(2025, 7, 13), "week") == date(2025, 7, 7)
    assert bucket_start(date(2025, 7, 7), "week") == date(2025, 7, 7)
    assert bucket_start(date(2025, 7, 13), "day") == date(2025, 7, 13)


def test_a_period_too_long_to_draw_is_a_bad_query() -> None:

    start = datetime(2020, 1, 1, tzinfo=UTC)
    data = ChartData(
        "day", start, NOW, {"NATO": [(date(2020, 1, 1), 1), (date(2025, 7, 1), 2)]}, [], 3
    )
    with pytest.raises(BadQuery, match="too long to draw"):
        render_png(data)
    assert data.title(" NATO ") == "Timeline: NATO (2020-01-01 to 2025-07-10, per day)"
