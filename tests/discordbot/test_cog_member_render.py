"""What the member commands render stays inside Discord's limits, escaped and ping-free."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import discord

from discordbot.cogs.events import event_embed
from discordbot.cogs.search import hit_line, search_embed
from discordbot.cogs.status import status_embed
from discordbot.cogs.timeline import LINE_BUDGET, event_line, heading, timeline_embed
from discordbot.render import (
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_VALUE_LIMIT,
    FIELDS_LIMIT,
    discord_len,
)
from timeline.usecases.status import FailedAlert, FailingFeed, StatusView
from timeline.usecases.views import (
    DateView,
    EventDetail,
    EventView,
    HitView,
    NoteView,
    SourceView,
    TimelinePage,
)

T = datetime(2025, 7, 10, 12, 0, tzinfo=UTC)
HOSTILE = "@everyone <@&1> **bold** [x](javascript:alert(1)) `code` " + "🚀" * 40 + "x" * 3000
LONG_URL = "https://example.org/" + "a" * 2000


def _event(i: int, *, title: str = HOSTILE, link: str | None = LONG_URL) -> EventView:
    return EventView(
        id=i,
        title=title,
        link=link,
        occurred_at=T - timedelta(hours=i),
        sources=[SourceView(HOSTILE[:300], HOSTILE, LONG_URL, T, 1000 + j) for j in range(60)],
        watches=[HOSTILE[:100]] * 5,
        note_count=3,
    )


def _fits(embed: discord.Embed) -> None:
    assert len(embed) <= EMBED_TOTAL_LIMIT
    assert discord_len(embed.description or "") <= DESCRIPTION_LIMIT
    assert len(embed.fields) <= FIELDS_LIMIT
    for field in embed.fields:
        assert discord_len(field.value or "") <= FIELD_VALUE_LIMIT
        assert discord_len(field.name or "") <= 256
    assert discord_len(embed.title or "") <= 256
    text = "\n".join(
        [embed.title or "", embed.description or ""] + [f.value or "" for f in embed.fields]
    )
    assert "@everyone" not in text and "<@&1>" not in text


def test_a_page_of_ten_hostile_events_fits_an_embed() -> None:
    page = TimelinePage([_event(i) for i in range(10)], total=25, offset=10, limit=10)
    embed = timeline_embed(page, heading(HOSTILE, "w", "s"))
    _fits(embed)
    assert (embed.description or "").count("`#") == 10
    assert embed.footer.text == "Events 11–20 of 25 · page 2/3"


def test_an_event_line_drops_an_overlong_link_but_keeps_a_short_one() -> None:
    long_line = event_line(_event(1))
    assert discord_len(long_line) <= LINE_BUDGET and "](https://" not in long_line
    short = event_line(_event(2, title="NATO summit", link="https://ex.org/a(b)"))
    assert discord_len(short) <= LINE_BUDGET
    assert short.startswith("`#2` <t:") and "[NATO summit](https://ex.org/a%28b%29)" in short
    unsafe = EventView(3, "x", "javascript:alert(1)", T, manual=True)
    assert event_line(unsafe) == "`#3` <t:1752148800:f> x\nmanual entry"


def test_capped_query_pages_say_the_count_is_a_floor() -> None:
    page = TimelinePage([_event(1, link=None)], total=1000, offset=0, limit=10, capped=True)
    footer = timeline_embed(page, "Timeline").footer.text or ""
    assert "of 1000+" in footer and "only the newest matches were searched" in footer


def test_event_embed_with_many_sources_and_notes_fits() -> None:
    notes = [NoteView(i, HOSTILE[:100], HOSTILE, T) for i in range(40)]
    dates = [
        DateView(date(2025, 7, i + 1), date(2025, 7, i + 2), "day", HOSTILE) for i in range(20)
    ]
    embed = event_embed(EventDetail(_event(7), notes, dates))
    _fits(embed)
    names = [f.name for f in embed.fields]
    assert names[0] == "Sources (60)" and "More sources" in names


def test_search_lines_bold_the_terms_and_escape_the_rest() -> None:
    hit = HitView(
        entry_id=1,
        event_id=9,
        title="NATO *summit* @here",
        summary="The summit communique " * 50,
        link="https://reuters.example/a",
        published_at=T,
        feed_name="Reuters",
        terms=["summit"],
    )
    line = hit_line(hit)
    assert line.startswith("`#9` <t:") and "[Reuters](https://reuters.example/a)" in line
    assert "NATO \\***summit**\\* @\u200bhere" in line
    assert "> The **summit** communique" in line
    embed = search_embed(HOSTILE, [hit] * 10, 2, True)
    _fits(embed)
    assert embed.footer.text == "Stories 21–30, newest first · more on the next page"


def test_status_embed_with_many_failures_fits_and_warns() -> None:
    view = StatusView(
        feeds_total=40,
        feeds_ok=10,
        feeds_failing=[FailingFeed(HOSTILE[:200], HOSTILE, None) for _ in range(25)],
        last_poll_at=None,
        next_poll_at=T,
        alerts_pending=3,
        alerts_failed=[FailedAlert(HOSTILE[:100], HOSTILE) for _ in range(10)],
        version="1.2.3",
        alerts_failed_total=12,
    )
    embed = status_embed(view)
    _fits(embed)
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Feeds"] == "40 followed · 10 healthy · 25 failing · 5 not polled yet"
    failing = fields["Failing feeds"] or ""
    shown = failing.count("(last success never)")
    assert 0 < shown < 25 and failing.endswith(f"…and {25 - shown} more (see /feed status)")
    assert fields["Last poll"] == "never"
    assert embed.colour == discord.Colour.orange()


def test_a_healthy_status_is_green() -> None:
    view = StatusView(1, 1, [], T, T, 0, [], "0+unknown")
    embed = status_embed(view)
    assert embed.colour == discord.Colour.green()
    assert [f.name for f in embed.fields] == ["Feeds", "Last poll", "Next poll", "Alerts"]
