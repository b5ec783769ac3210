"""Date mentions found in news text, resolved against the published date (table-driven)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from timeline.domain.text_dates import MAX_TEXT, DateMention, extract_dates

# Thursday 3 July 2025, noon UTC.
PUB = datetime(2025, 7, 3, 12, 0, tzinfo=UTC)
D = date


def day(y: int, m: int, d: int) -> tuple[date, date, str]:
    return D(y, m, d), D(y, m, d), "day"


CASES: list[tuple[str, list[tuple[date, date, str]]]] = [
    # ranges
    ("The summit runs from July 9 to 11 in Vilnius.", [(D(2025, 7, 9), D(2025, 7, 11), "day")]),
    ("Talks are set for 9-11 July.", [(D(2025, 7, 9), D(2025, 7, 11), "day")]),
    ("between 9 and 11 July 2025", [(D(2025, 7, 9), D(2025, 7, 11), "day")]),
    ("The festival runs July 30 to August 2.", [(D(2025, 7, 30), D(2025, 8, 2), "day")]),
    ("from 28 December to 3 January 2025", [(D(2024, 12, 28), D(2025, 1, 3), "day")]),
    ("June 5–7, 2024 meeting in Rome", [(D(2024, 6, 5), D(2024, 6, 7), "day")]),
    # single days
    ("a report dated July 2 said", [day(2025, 7, 2)]),
    ("The vote was held on 9 July 2025.", [day(2025, 7, 9)]),
    ("It happened on July 9, 2025, officials said.", [day(2025, 7, 9)]),
    ("Deadline: 2025-07-09.", [day(2025, 7, 9)]),
    ("published 2024-02-29T10:00:00Z", [day(2024, 2, 29)]),
    ("on the 4th of July", [day(2025, 7, 4)]),
    ("on Sept. 30 the law takes effect", [day(2025, 9, 30)]),
    ("Signed on 13/4/2025 in Paris.", [day(2025, 4, 13)]),
    ("the June 28 attack", [day(2025, 6, 28)]),
    # months
    ("In April this year the ministry said", [(D(2025, 4, 1), D(2025, 4, 30), "month")]),
    ("In April, the ministry said", [(D(2025, 4, 1), D(2025, 4, 30), "month")]),
    ("prices fell in March 2024", [(D(2024, 3, 1), D(2024, 3, 31), "month")]),
    ("since early June", [(D(2025, 6, 1), D(2025, 6, 30), "month")]),
    ("last December", [(D(2024, 12, 1), D(2024, 12, 31), "month")]),
    ("next January", [(D(2026, 1, 1), D(2026, 1, 31), "month")]),
    ("by mid-August", [(D(2025, 8, 1), D(2025, 8, 31), "month")]),
    ("April last year", [(D(2024, 4, 1), D(2024, 4, 30), "month")]),
    # relative
    ("yesterday", [day(2025, 7, 2)]),
    ("Officials said today that", [day(2025, 7, 3)]),
    ("the meeting tomorrow", [day(2025, 7, 4)]),
    ("Shelling overnight and last night", [day(2025, 7, 2)]),
    ("last week", [(D(2025, 6, 23), D(2025, 6, 29), "week")]),
    ("this week", [(D(2025, 6, 30), D(2025, 7, 6), "week")]),
    ("next month", [(D(2025, 8, 1), D(2025, 8, 31), "month")]),
    ("last year", [(D(2024, 1, 1), D(2024, 12, 31), "year")]),
    ("three days ago", [day(2025, 6, 30)]),
    ("two weeks ago", [(D(2025, 6, 16), D(2025, 6, 22), "week")]),
    ("last weekend", [(D(2025, 6, 28), D(2025, 6, 29), "day")]),
    # weekdays
    ("said on Tuesday", [day(2025, 7, 1)]),
    ("said Thursday", [day(2025, 7, 3)]),
    ("will meet on Tuesday", [day(2025, 7, 8)]),
    ("is scheduled for Saturday", [day(2025, 7, 5)]),
    ("last Friday", [day(2025, 6, 27)]),
    ("next Monday", [day(2025, 7, 7)]),
    ("Monday's vote", [day(2025, 6, 30)]),
    # years and decades
    ("in 2019", [(D(2019, 1, 1), D(2019, 12, 31), "year")]),
    ("the first cut since 2019.", [(D(2019, 1, 1), D(2019, 12, 31), "year")]),
    ("since the 1990s", [(D(1990, 1, 1), D(1999, 12, 31), "decade")]),
    ("in the late 1980s", [(D(1980, 1, 1), D(1989, 12, 31), "decade")]),
    ("music of the '90s", [(D(1990, 1, 1), D(1999, 12, 31), "decade")]),
    ("the 2022-2024 period", [(D(2022, 1, 1), D(2024, 12, 31), "year")]),
    # things that are not dates
    ("open 24/7", []),
    ("the 75th anniversary of NATO", []),
    ("Boeing 737 Max", []),
    ("more than 2,000 people", []),
    ("2000 troops were sent", []),
    ("by 1900 GMT", []),
    ("you may go", []),
    ("March on Washington", []),
    ("a 3/4 majority", []),
    ("3/4/2025", []),  # March 4 or 3 April: ambiguous, so nothing
    ("July 32", []),
    ("2025-02-30", []),
    ("magnitude 5.1 quake", []),
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] or "empty" for c in CASES])
def test_extract_dates_table(text: str, expected: list[tuple[date, date, str]]) -> None:
    got = [(m.start, m.end, m.precision) for m in extract_dates(text, PUB)]
    assert got == expected


def test_table_has_at_least_forty_sentences() -> None:
    assert len(CASES) >= 40


def test_phrase_is_the_text_the_date_came_from() -> None:
    mentions = extract_dates("The summit runs from July 9 to 11 in Vilnius.", PUB)
    assert mentions == [
        DateMention(D(2025, 7, 9), D(2025, 7, 11), "day", "from July 9 to 11"),
    ]


def test_several_mentions_come_in_text_order() -> None:
    text = "On Tuesday the court met; a ruling is due on 9 July, two years after a vote in 2023."
    got = [(m.phrase, m.precision) for m in extract_dates(text, PUB)]
    assert got == [("On Tuesday", "day"), ("9 July", "day"), ("2023", "year")]


def test_year_boundary_uses_the_nearest_year() -> None:
    pub = datetime(2024, 1, 2, 9, tzinfo=UTC)
    assert [(m.start, m.end) for m in extract_dates("on December 31", pub)] == [
        (D(2023, 12, 31), D(2023, 12, 31))
    ]
    assert [m.start for m in extract_dates("yesterday", pub)] == [D(2024, 1, 1)]


def test_published_in_another_time_zone_uses_its_own_calendar_day() -> None:
    tokyo = timezone(timedelta(hours=9))
    pub = datetime(2025, 7, 4, 8, 30, tzinfo=tokyo)  # 23:30 UTC on the 3rd
    assert [m.start for m in extract_dates("today", pub)] == [D(2025, 7, 4)]


def test_late_utc_story_naming_tomorrows_weekday_means_tomorrow() -> None:
    # 23:00 UTC Thursday is Friday morning in Beijing: "on Friday" is not last week's Friday.
    pub = datetime(2025, 7, 3, 23, 0, tzinfo=UTC)
    assert [m.start for m in extract_dates("China said on Friday", pub)] == [D(2025, 7, 4)]
    morning = datetime(2025, 7, 3, 6, 0, tzinfo=UTC)
    assert [m.start for m in extract_dates("China said on Friday", morning)] == [D(2025, 6, 27)]


def test_hostile_text_is_cut_and_never_crashes() -> None:
    junk = ("9-" * 5000) + ("July " * 5000) + "\x00\ud7ff" + "1" * 10_000
    mentions = extract_dates(junk, PUB)
    assert all(isinstance(m, DateMention) for m in mentions)
    assert all(m.start <= m.end for m in mentions)
    long_text = "x" * (MAX_TEXT + 10) + " on 9 July 2025"
    assert extract_dates(long_text, PUB) == []
