"""Table test of the `since`/`until` parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from timeline.domain.errors import BadQuery
from timeline.domain.typed_dates import parse_when

NOW = datetime(2025, 7, 10, 15, 30, tzinfo=UTC)

GOOD = [
    ("7d", False, NOW - timedelta(days=7)),
    ("24h", False, NOW - timedelta(hours=24)),
    ("30m", False, NOW - timedelta(minutes=30)),
    ("2w", False, NOW - timedelta(weeks=2)),
    (" 3 days ", False, NOW - timedelta(days=3)),
    ("1WEEK", False, NOW - timedelta(weeks=1)),
    ("today", False, datetime(2025, 7, 10, tzinfo=UTC)),
    ("Yesterday", False, datetime(2025, 7, 9, tzinfo=UTC)),
    ("yesterday", True, datetime(2025, 7, 9, 23, 59, 59, 999999, tzinfo=UTC)),
    ("2025-07-01", False, datetime(2025, 7, 1, tzinfo=UTC)),
    ("2025-07-01", True, datetime(2025, 7, 1, 23, 59, 59, 999999, tzinfo=UTC)),
    ("2025-07-01T14:05", False, datetime(2025, 7, 1, 14, 5, tzinfo=UTC)),
    ("2025-07-01T14:05:09Z", False, datetime(2025, 7, 1, 14, 5, 9, tzinfo=UTC)),
    ("2025-07-01 14:05+02:00", False, datetime(2025, 7, 1, 12, 5, tzinfo=UTC)),
    ("now", False, NOW),
]


@pytest.mark.parametrize(("text", "end", "expected"), GOOD)
def test_parse_when_accepts(text: str, end: bool, expected: datetime) -> None:
    result = parse_when(text, NOW, end=end)
    assert result == expected
    assert result.tzinfo is not None and result.utcoffset() == timedelta(0)


BAD = [
    "",
    "   ",
    "soon",
    "7",
    "-7d",
    "7 parsecs",
    "07/10/2025",
    "2025-13-01",
    "2025-02-30",
    "0001-01-01",
    "9999-01-01",
    "2025-07-01T25:00",
    "2025-07-01Tjunk",
    "9999999d",
    "x" * 10_000,
    "2025-07-01\x00",
    "１２d",
]


@pytest.mark.parametrize("text", BAD)
def test_parse_when_refuses_junk_with_a_domain_error(text: str) -> None:
    with pytest.raises(BadQuery) as info:
        parse_when(text, NOW)
    assert str(info.value)


def test_parse_when_converts_now_to_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert parse_when("today", local) == datetime(2025, 7, 10, tzinfo=UTC)


def test_parse_when_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        parse_when("7d", datetime(2025, 7, 10))
