"""A guild's time zone decides what a day is: `since`/`until` dates, chart days, export days.

Storage stays UTC: the same rows read in Europe/Paris fall on other days than in UTC.
NOW (factories) is 2025-07-10 12:00 UTC; Paris is UTC+2 in July, Tokyo UTC+9.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.typed_dates import day_bound, parse_when
from timeline.storage.engine import Database
from timeline.usecases.chart import NO_WATCH, chart_data
from timeline.usecases.export import export_events

PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("text", "end", "zone", "expected"),
    [
        ("2025-07-09", False, PARIS, datetime(2025, 7, 8, 22, 0, tzinfo=UTC)),
        ("2025-07-09", True, PARIS, datetime(2025, 7, 9, 21, 59, 59, 999999, tzinfo=UTC)),
        # At 2025-07-10 12:00 UTC it is already 21:00 in Tokyo: today is the 10th there...
        ("today", False, TOKYO, datetime(2025, 7, 9, 15, 0, tzinfo=UTC)),
        ("yesterday", True, TOKYO, datetime(2025, 7, 9, 14, 59, 59, 999999, tzinfo=UTC)),
        # ... and in Honolulu (UTC-10) it is 02:00 on the 10th.
        ("today", False, ZoneInfo("Pacific/Honolulu"), datetime(2025, 7, 10, 10, tzinfo=UTC)),
        # A time without an offset is wall time in the zone; one with an offset is kept.
        ("2025-07-09T14:00", False, PARIS, datetime(2025, 7, 9, 12, 0, tzinfo=UTC)),
        ("2025-07-09T14:00Z", False, PARIS, datetime(2025, 7, 9, 14, 0, tzinfo=UTC)),
        ("2025-07-09T14:00+05:30", False, PARIS, datetime(2025, 7, 9, 8, 30, tzinfo=UTC)),
        # Relative times do not depend on the zone.
        ("24h", False, TOKYO, NOW - timedelta(hours=24)),
    ],
)
def test_a_date_is_that_day_in_the_guilds_zone(
    text: str, end: bool, zone: ZoneInfo, expected: datetime
) -> None:
    assert parse_when(text, NOW, end=end, zone=zone) == expected


def test_days_when_the_clocks_change_are_23_and_25_hours_long() -> None:
    spring, autumn = date(2025, 3, 30), date(2025, 10, 26)
    for day, hours in ((spring, 23), (autumn, 25)):
        start = day_bound(day, zone=PARIS)
        end = day_bound(day, True, zone=PARIS)
        assert end - start == timedelta(hours=hours, microseconds=-1)
    # A zone whose clocks skip midnight itself (Chile, first Sunday of September 2024):
    # the day still starts at its first existing moment, 01:00 local = 04:00 UTC.
    assert day_bound(date(2024, 9, 8), zone=ZoneInfo("America/Santiago")) == datetime(
        2024, 9, 8, 4, 0, tzinfo=UTC
    )


async def _late_evening(sdb: Database) -> None:
    """One story at 23:30 UTC on the 9th: the 10th (01:30) in Paris."""
    async with sdb.session() as s:
        feed = await make_feed(s, "Le Monde", "https://lemonde.example/rss")
        await make_story(s, [feed], "Sommet de l'OTAN à Vilnius", hours_ago=12.5)
        await make_story(s, [feed], "Réunion à midi", hours_ago=1)  # 11:00 UTC on the 10th


async def test_chart_days_are_the_guilds(sdb: Database) -> None:
    await _late_evening(sdb)
    async with sdb.session() as s:
        utc = await chart_data(s, 0, now=NOW)
        paris = await chart_data(s, 0, now=NOW, zone=PARIS)
        since = parse_when("2025-07-10", NOW, zone=PARIS)
        windowed = await chart_data(s, 0, since=since, until=NOW, now=NOW, zone=PARIS)
    assert utc.series == {NO_WATCH: [(date(2025, 7, 9), 1), (date(2025, 7, 10), 1)]}
    assert paris.series == {NO_WATCH: [(date(2025, 7, 10), 2)]}
    # The fitted window starts at the guild's midnight, and the title names its days.
    assert paris.since == datetime(2025, 7, 9, 22, 0, tzinfo=UTC)
    assert "(2025-07-10 to 2025-07-10, per day)" in paris.title()
    assert windowed.events == 2


async def test_exports_write_days_in_the_zone_and_keep_utc(sdb: Database) -> None:
    await _late_evening(sdb)
    async with sdb.session() as s:
        _, md = await export_events(s, 0, "md", now=NOW, zone=PARIS)
        _, md_utc = await export_events(s, 0, "md", now=NOW)
        _, raw_csv = await export_events(s, 0, "csv", now=NOW, zone=PARIS)
        _, raw_json = await export_events(s, 0, "json", now=NOW, zone=PARIS)
        _, ics = await export_events(s, 0, "ics", now=NOW, zone=PARIS)
    text = md.decode()
    assert "## 2025-07-09" not in text and text.count("## 2025-07-10") == 1
    assert "- 01:30 CEST · " in text and "  - Le Monde, 01:30: " in text
    assert "## 2025-07-09" in md_utc.decode() and "- 23:30 UTC · " in md_utc.decode()
    rows = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8-sig"))))
    late = next(r for r in rows if r["title"].startswith("Sommet"))
    assert (late["occurred_at"], late["occurred_local"]) == (
        "2025-07-09T23:30:00Z",
        "2025-07-10T01:30:00+02:00",
    )
    doc = json.loads(raw_json)
    assert doc["timezone"] == "Europe/Paris"
    assert {e["occurred_at"]: e["occurred_local"] for e in doc["events"]}[
        "2025-07-09T23:30:00Z"
    ] == "2025-07-10T01:30:00+02:00"
    # iCalendar stays in UTC (RFC 5545 form with Z): calendars convert for their readers.
    assert b"DTSTART:20250709T233000Z" in ics
