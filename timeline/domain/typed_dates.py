"""Parse the `since` / `until` values people type: ISO dates and relative forms like `7d`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from timeline.domain.errors import BadQuery

_RELATIVE = re.compile(
    r"^(\d{1,6})\s*(m|min|mins|h|hr|hrs|d|day|days|w|wk|wks|week|weeks)$", re.ASCII
)
_UNITS = {
    "m": "minutes",
    "min": "minutes",
    "mins": "minutes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "d": "days",
    "day": "days",
    "days": "days",
    "w": "weeks",
    "wk": "weeks",
    "wks": "weeks",
    "week": "weeks",
    "weeks": "weeks",
}
MAX_TEXT = 64
# Far enough for any news timeline, near enough that datetime arithmetic never overflows.
_MIN_YEAR, _MAX_YEAR = 1900, 2200

HELP = "use an ISO date (2025-07-09), a date-time (2025-07-09T14:00Z), 7d, 24h, 30m, 2w, today or yesterday"


class BadTime(BadQuery):
    """A `since`/`until` value that is not a date, a date-time or a relative time."""


def parse_when(text: str, now: datetime, *, end: bool = False, zone: tzinfo = UTC) -> datetime:
    """Turn `text` into an aware UTC datetime relative to `now`.

    A bare date (`2025-07-09`, `today`, `yesterday`) means that day in `zone` (the guild's
    time zone): its first moment, or its last (the microsecond before the next day starts)
    when `end` is true, so `--until 2025-07-09` includes that day. A date-time without an
    offset is read in `zone` too; relative forms (`7d`) do not depend on it.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    raw = text.strip()
    if not raw:
        raise BadTime(f"empty time: {HELP}")
    if len(raw) > MAX_TEXT:
        raise BadTime(f"time too long ({len(raw)} characters): {HELP}")
    lowered = raw.lower()
    if lowered in ("now",):
        return now
    if lowered in ("today", "yesterday"):
        day = now.astimezone(zone).date() - timedelta(days=1 if lowered == "yesterday" else 0)
        return day_bound(day, end, zone)
    match = _RELATIVE.match(lowered)
    if match:
        amount = int(match.group(1))
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: amount})
        except OverflowError:
            raise BadTime(f"{raw!r} reaches too far back: {HELP}") from None
    return _parse_iso(raw, end, zone)


def day_bound(day: date, end: bool = False, zone: tzinfo = UTC) -> datetime:
    """Return the first moment of `day` in `zone` (or its last, when `end`), in UTC.

    Computed from local midnights: a day is 23 or 25 hours long when the clocks change, and
    where a zone skips midnight itself zoneinfo moves the wall time forward (PEP 495).
    """
    if end:
        return day_bound(day + timedelta(days=1), False, zone) - timedelta(microseconds=1)
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def _parse_iso(raw: str, end: bool, zone: tzinfo) -> datetime:
    # Only pure ISO forms are accepted: fromisoformat is strict and never guesses day/month order.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw, re.ASCII):
        try:
            day = date.fromisoformat(raw)
        except ValueError as exc:
            raise BadTime(f"{raw!r} is not a valid date ({exc})") from None
        _check_year(raw, day.year)
        return day_bound(day, end, zone)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][0-9:.,+\-Zz]{2,40}", raw, re.ASCII):
        raise BadTime(f"{raw!r} is not a time I understand: {HELP}")
    try:
        moment = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        raise BadTime(f"{raw!r} is not a valid date-time ({exc})") from None
    _check_year(raw, moment.year)
    if moment.tzinfo is None:
        # A time without an offset is wall-clock time where the guild is.
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _check_year(raw: str, year: int) -> None:
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise BadTime(f"{raw!r}: year must be between {_MIN_YEAR} and {_MAX_YEAR}")
