"""Export formats: CSV without formula injection, JSON, RFC 5545 iCalendar, Markdown."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.errors import BadQuery
from timeline.storage.engine import Database
from timeline.usecases.export import (
    csv_cell,
    export_events,
    ics_escape,
    ics_fold,
    md_escape,
    render_ics,
)
from timeline.usecases.views import EventView, SourceView

HOSTILE = "=cmd|' /C calc'!A0"


async def _seed(sdb: Database) -> None:
    async with sdb.session() as s:
        a = await make_feed(s, "Bloomberg", "https://bloomberg.example/rss")
        b = await make_feed(s, "Reuters", "https://reuters.example/rss")
        await make_story(
            s, [a, b], 'NATO Summit Draft Communique, "war machine"; allies', hours_ago=2
        )
        await make_story(s, [a], HOSTILE, hours_ago=30)


async def test_csv_quotes_and_defuses_formulas(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        name, data = await export_events(s, 0, "csv", now=NOW)
    assert name.endswith(".csv")
    text = data.decode("utf-8-sig")
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["title"] for r in rows] == [
        'NATO Summit Draft Communique, "war machine"; allies',
        "'" + HOSTILE,
    ]
    assert rows[0]["sources"] == "Bloomberg; Reuters"
    for cell in ("+1", "-1", "@SUM(A1)", "\t=x", "\r=x", "|x"):
        assert csv_cell(cell).startswith("'")
    assert csv_cell("plain") == "plain" and csv_cell(None) == ""


async def test_json_export_has_events_with_sources(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        name, data = await export_events(s, 0, "json", now=NOW)
    doc = json.loads(data)
    assert name.endswith(".json") and doc["count"] == 2
    first = doc["events"][0]
    assert [src["feed"] for src in first["sources"]] == ["Bloomberg", "Reuters"]
    assert first["occurred_at"] == "2025-07-10T10:00:00Z"
    assert doc["events"][1]["title"] == HOSTILE  # JSON keeps the text as it is


def test_ics_escaping_and_folding_follow_rfc5545() -> None:
    assert ics_escape("a,b;c\\d\ne\r\nf") == "a\\,b\\;c\\\\d\\ne\\nf"
    assert ics_escape("bell\x07") == "bell"
    line = "SUMMARY:" + "é" * 100
    folded = ics_fold(line)
    parts = folded.split("\r\n")
    assert all(len(p.encode("utf-8")) <= 75 for p in parts)
    assert all(p.startswith(" ") for p in parts[1:])
    assert "".join([parts[0]] + [p[1:] for p in parts[1:]]) == line  # unfolds to the original
    assert ics_fold("short") == "short"


def test_ics_document_structure() -> None:
    when = datetime(2025, 7, 9, 14, 5, 9, tzinfo=UTC)
    event = EventView(
        id=42,
        title="Allies, partners; and \\ others\nsecond line " + "long " * 30,
        link="https://x.example/a b",
        occurred_at=when,
        sources=[SourceView("Reuters", "T", "https://r.example/1", when, 1)],
        watches=["dual-use", "NATO, communique"],
    )
    data = render_ics([event], now=NOW, guild_id=7)
    text = data.decode("utf-8")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-2] == "END:VCALENDAR"
    assert all(len(line.encode()) <= 75 for line in lines)
    unfolded = text.replace("\r\n ", "")
    assert "UID:event-42-g7@timeline-bot" in unfolded
    assert "DTSTAMP:20250710T120000Z" in unfolded
    assert "DTSTART:20250709T140509Z" in unfolded
    assert "SUMMARY:Allies\\, partners\\; and \\\\ others\\nsecond line" in unfolded
    assert "URL:https://x.example/a%20b" in unfolded
    assert "CATEGORIES:dual-use,NATO\\, communique" in unfolded
    for key in ("VERSION:2.0", "PRODID:", "BEGIN:VEVENT", "END:VEVENT"):
        assert key in unfolded


async def test_ics_export_has_one_vevent_per_event(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        name, data = await export_events(s, 0, "ics", now=NOW)
    assert name.endswith(".ics")
    assert data.count(b"BEGIN:VEVENT") == 2 and data.count(b"UID:") == 2


async def test_markdown_groups_by_day_with_sources(sdb: Database) -> None:
    await _seed(sdb)
    async with sdb.session() as s:
        _, data = await export_events(s, 0, "md", now=NOW)
        _, windowed = await export_events(s, 0, "md", since=NOW - timedelta(hours=5), now=NOW)
    text = data.decode()
    assert text.index("## 2025-07-10") < text.index("## 2025-07-09")
    assert "  - Bloomberg, 10:00: [NATO Summit" in text
    assert "  - Reuters, 10:30:" in text
    assert "## 2025-07-09" not in windowed.decode()
    assert md_escape("a*b_[c](d)`e`") == "a\\*b\\_\\[c\\]\\(d\\)\\`e\\`"


async def test_unknown_format_is_refused(sdb: Database) -> None:
    async with sdb.session() as s:
        with pytest.raises(BadQuery, match="csv"):
            await export_events(s, 0, "xlsx")
