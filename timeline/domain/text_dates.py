"""Find the dates a news text mentions, resolved against the story's published date.

"from July 9 to 11" -> 9-11 July of the published year (day precision); "In April this year"
-> April (month precision); "on Tuesday" -> the Tuesday on or before publication (or after,
when the sentence looks ahead: "will meet on Tuesday"); "last week" -> that Monday-Sunday
(week precision); "the 1990s" -> 1990-1999 (decade precision). Things that only look like
dates ("24/7", "75th anniversary", "Boeing 737", "2,000 people", "at 1900 GMT") give nothing.

Pure functions, no I/O. Only English phrasing is understood; everything else is ignored.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

log = logging.getLogger(__name__)

Precision = Literal["day", "week", "month", "year", "decade"]

# Longer texts are cut: a feed summary is a few sentences, a hostile one may be megabytes.
MAX_TEXT = 20_000
_MIN_YEAR, _MAX_YEAR = 1000, 2999


@dataclass(frozen=True, slots=True)
class DateMention:
    """A date or date range a text mentions, how precise it is, and the words it came from."""

    start: date
    end: date
    precision: Precision
    phrase: str


_MONTH_NUMBERS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_WEEKDAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
_NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}

# Month names are matched case-sensitively with a capital ("May", not the verb "may").
_M = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_D = r"(?:[0-3]?\d)(?:st|nd|rd|th)?"
_Y = r"(?:1\d{3}|2\d{3})"
_DASH = r"(?:\s*[-–—]\s*|\s+(?:to|through|until|till|and)\s+)"
_B = r"(?<![\w/.,-])"  # not glued to a previous word, number, slash or decimal
_E = r"(?![\w/]|[.,]\d)"  # not followed by more of a word, a slash or a decimal part
_FUTURE = re.compile(
    r"\b(?:will|'ll|shall|to be held|is due|are due|due to|scheduled|set to|plans? to|planned"
    r"|expected to|is to|are to|upcoming|next|would)\b",
    re.IGNORECASE,
)
_SENTENCE_BREAK = re.compile(r"[.!?;]\s")
_TIME_SUFFIX = re.compile(r"\s*(?:GMT|UTC|BST|CET|CEST|ET|EDT|EST|PT|PDT|hours?\b|hrs\b|h\b)")
_YEAR_LEAD = re.compile(
    r"(?:\b(?:in|since|by|until|till|from|before|after|during|of|early|late|mid|end|start"
    r"|beginning|year|spring|summer|autumn|fall|winter|fiscal|through|to)[\s-]+|[(])$",
    re.IGNORECASE,
)


def _month(name: str) -> int:
    return _MONTH_NUMBERS[name[:3].lower()]


def _day(text: str) -> int:
    return int(re.match(r"\d+", text).group())  # type: ignore[union-attr]


def _valid(year: int, month: int, day: int) -> date | None:
    if not (_MIN_YEAR <= year <= _MAX_YEAR and 1 <= month <= 12):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return date(year, month, day)


def _nearest_year(month: int, day: int, pub: date) -> int:
    """Pick the year that puts day/month closest to the published date."""
    best, best_gap = pub.year, None
    for year in (pub.year - 1, pub.year, pub.year + 1):
        d = _valid(year, month, min(day, calendar.monthrange(year, month)[1]))
        if d is None:
            continue
        gap = abs((d - pub).days)
        if best_gap is None or gap < best_gap:
            best, best_gap = year, gap
    return best


def _month_span(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _looks_ahead(text: str, start: int) -> bool:
    """Tell whether the words just before `start`, within the sentence, speak of the future."""
    before = text[max(0, start - 60) : start]
    breaks = list(_SENTENCE_BREAK.finditer(before))
    if breaks:
        before = before[breaks[-1].end() :]
    return bool(_FUTURE.search(before))


_Res = tuple[date, date, Precision] | None
_Resolver = Callable[[re.Match[str], date, datetime], _Res]
_RULES: list[tuple[re.Pattern[str], _Resolver]] = []


def _rule(pattern: str, flags: int = 0) -> Callable[[_Resolver], _Resolver]:
    def register(fn: _Resolver) -> _Resolver:
        _RULES.append((re.compile(pattern, flags), fn))
        return fn

    return register


def _year_or_nearest(m: re.Match[str], month: int, day: int, pub: date) -> int:
    y = m.groupdict().get("y")
    return int(y) if y else _nearest_year(month, day, pub)


# Rules run in this order; a later rule never takes text an earlier one already matched.


@_rule(
    rf"{_B}(?:from\s+|between\s+)?(?P<m1>{_M})\s+(?P<d1>{_D}){_DASH}(?P<m2>{_M})\s+"
    rf"(?P<d2>{_D})(?:,?\s+(?P<y>{_Y}))?{_E}"
)
def _month_day_to_month_day(m: re.Match[str], pub: date, published: datetime) -> _Res:
    m1, m2 = _month(m["m1"]), _month(m["m2"])
    y2 = _year_or_nearest(m, m2, _day(m["d2"]), pub)
    y1 = y2 - 1 if m1 > m2 else y2
    start, end = _valid(y1, m1, _day(m["d1"])), _valid(y2, m2, _day(m["d2"]))
    return (start, end, "day") if start and end and start <= end else None


@_rule(
    rf"{_B}(?:from\s+|between\s+)?(?P<d1>{_D})\s+(?:of\s+)?(?P<m1>{_M}){_DASH}(?P<d2>{_D})"
    rf"\s+(?:of\s+)?(?P<m2>{_M})(?:,?\s+(?P<y>{_Y}))?{_E}"
)
def _day_month_to_day_month(m: re.Match[str], pub: date, published: datetime) -> _Res:
    return _month_day_to_month_day(m, pub, published)


@_rule(
    rf"{_B}(?:from\s+|between\s+)?(?P<m>{_M})\s+(?P<d1>{_D}){_DASH}(?P<d2>{_D})"
    rf"(?:,?\s+(?P<y>{_Y}))?{_E}"
)
def _month_day_range(m: re.Match[str], pub: date, published: datetime) -> _Res:
    month = _month(m["m"])
    d1, d2 = _day(m["d1"]), _day(m["d2"])
    year = _year_or_nearest(m, month, d1, pub)
    start, end = _valid(year, month, d1), _valid(year, month, d2)
    return (start, end, "day") if start and end and start < end else None


@_rule(
    rf"{_B}(?:from\s+|between\s+)?(?P<d1>{_D}){_DASH}(?P<d2>{_D})\s+(?:of\s+)?(?P<m>{_M})"
    rf"(?:,?\s+(?P<y>{_Y}))?{_E}"
)
def _day_range_month(m: re.Match[str], pub: date, published: datetime) -> _Res:
    return _month_day_range(m, pub, published)


@_rule(rf"{_B}(?P<y>{_Y})-(?P<mo>[01]\d)-(?P<d>[0-3]\d)(?![\d])")
def _iso(m: re.Match[str], pub: date, published: datetime) -> _Res:
    d = _valid(int(m["y"]), int(m["mo"]), int(m["d"]))
    return (d, d, "day") if d else None


@_rule(rf"{_B}(?P<a>\d{{1,2}})/(?P<b>\d{{1,2}})/(?P<y>{_Y}){_E}")
def _slash(m: re.Match[str], pub: date, published: datetime) -> _Res:
    # 3/4/2025 is March 4 in the US and 3 April elsewhere: only take unambiguous ones.
    a, b, y = int(m["a"]), int(m["b"]), int(m["y"])
    if a == b:
        d = _valid(y, a, b)
    elif a > 12:
        d = _valid(y, b, a)
    elif b > 12:
        d = _valid(y, a, b)
    else:
        return None
    return (d, d, "day") if d else None


@_rule(rf"{_B}(?P<m>{_M})\s+(?P<d>{_D})(?:,?\s+(?P<y>{_Y}))?{_E}")
def _month_day(m: re.Match[str], pub: date, published: datetime) -> _Res:
    month, day = _month(m["m"]), _day(m["d"])
    d = _valid(_year_or_nearest(m, month, day, pub), month, day)
    return (d, d, "day") if d else None


@_rule(rf"{_B}(?:the\s+)?(?P<d>{_D})\s+(?:of\s+)?(?P<m>{_M})(?:,?\s+(?P<y>{_Y}))?{_E}")
def _day_month(m: re.Match[str], pub: date, published: datetime) -> _Res:
    return _month_day(m, pub, published)


@_rule(
    rf"\b(?:(?P<q>(?i:early|mid|late|in|since|until|till|by|from|during|before|after|end of"
    rf"|start of|beginning of|last|next|this))[\s-]+)?(?P<m>{_M})(?:\s+(?:of\s+)?(?P<y>{_Y})"
    rf"|\s+(?P<rel>this|last|next)\s+year)?{_E}"
)
def _month_only(m: re.Match[str], pub: date, published: datetime) -> _Res:
    # A bare capitalised month name ("March", "May") is too often a verb, a name or a
    # sentence opener: it needs a year, a relative year or a leading word.
    if not (m["q"] or m["y"] or m["rel"]):
        return None
    month = _month(m["m"])
    if m["y"]:
        year = int(m["y"])
    elif m["rel"]:
        year = pub.year + {"this": 0, "last": -1, "next": 1}[m["rel"]]
    elif m["q"] and m["q"].lower() == "last":
        year = pub.year if month < pub.month else pub.year - 1
    elif m["q"] and m["q"].lower() == "next":
        year = pub.year if month > pub.month else pub.year + 1
    elif m["q"] and m["q"].lower() == "this":
        year = pub.year
    else:
        year = _nearest_year(month, 15, pub)
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    start, end = _month_span(year, month)
    return start, end, "month"


@_rule(r"\b(?:(?P<rel>yesterday|today|tomorrow|tonight)|last\s+night)\b", re.IGNORECASE)
def _relative_day(m: re.Match[str], pub: date, published: datetime) -> _Res:
    shift = {"yesterday": -1, "today": 0, "tomorrow": 1, "tonight": 0}.get(
        (m["rel"] or "").lower(), -1
    )
    d = pub + timedelta(days=shift)
    return d, d, "day"


@_rule(
    r"\b(?P<n>\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
    r"\s+(?P<unit>day|week|month|year)s?\s+ago\b",
    re.IGNORECASE,
)
def _ago(m: re.Match[str], pub: date, published: datetime) -> _Res:
    raw = m["n"].lower()
    n = int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]
    unit = m["unit"].lower()
    try:
        if unit == "day":
            d = pub - timedelta(days=n)
            return d, d, "day"
        if unit == "week":
            monday = pub - timedelta(days=pub.weekday() + 7 * n)
            return monday, monday + timedelta(days=6), "week"
        if unit == "month":
            index = pub.year * 12 + pub.month - 1 - n
            start, end = _month_span(index // 12, index % 12 + 1)
            return start, end, "month"
        return date(pub.year - n, 1, 1), date(pub.year - n, 12, 31), "year"
    except (ValueError, OverflowError):
        return None


@_rule(
    r"\b(?P<rel>this|last|next|past|coming)\s+(?P<unit>week|weekend|month|year)\b", re.IGNORECASE
)
def _relative_period(m: re.Match[str], pub: date, published: datetime) -> _Res:
    rel, unit = m["rel"].lower(), m["unit"].lower()
    shift = {"this": 0, "last": -1, "past": -1, "next": 1, "coming": 1}[rel]
    if unit == "week":
        monday = pub - timedelta(days=pub.weekday()) + timedelta(weeks=shift)
        return monday, monday + timedelta(days=6), "week"
    if unit == "weekend":
        saturday = pub + timedelta(days=5 - pub.weekday())
        if shift < 0 or (shift == 0 and pub.weekday() == 0):
            saturday -= timedelta(weeks=1)
        elif shift > 0 and pub.weekday() >= 5:
            saturday += timedelta(weeks=1)
        return saturday, saturday + timedelta(days=1), "day"
    if unit == "month":
        index = pub.year * 12 + pub.month - 1 + shift
        start, end = _month_span(index // 12, index % 12 + 1)
        return start, end, "month"
    year = pub.year + shift
    return date(year, 1, 1), date(year, 12, 31), "year"


@_rule(
    r"\b(?:(?P<rel>(?i:last|next|this|on|since|until|by|from|before))\s+)?"
    r"(?P<w>Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)(?:'s|’s)?\b"
)
def _weekday(m: re.Match[str], pub: date, published: datetime) -> _Res:
    target = _WEEKDAYS[m["w"].lower()]
    rel = (m["rel"] or "").lower()
    back = (pub.weekday() - target) % 7  # days since the latest such weekday, 0 = today
    ahead = (target - pub.weekday()) % 7
    if rel == "last":
        d = pub - timedelta(days=back or 7)
    elif rel == "next":
        d = pub + timedelta(days=ahead or 7)
    elif rel == "this":
        d = pub - timedelta(days=back) if back <= ahead else pub + timedelta(days=ahead)
    elif rel == "until" or _looks_ahead(m.string, m.start()):
        d = pub + timedelta(days=ahead)
    elif back == 6 and published.hour >= 12:
        # Published late in the UTC day: in Asia it is already the next day, and "on
        # Wednesday" from Beijing at 23:00 UTC Tuesday means the next morning, not last week.
        d = pub + timedelta(days=1)
    else:
        d = pub - timedelta(days=back)
    return d, d, "day"


@_rule(
    r"\b(?:the\s+)?(?:(?:early|mid|late)[\s-]+)?(?P<c>1\d|2\d)(?P<dec>\d)0s\b|"
    r"(?<!\w)[’'](?P<short>\d)0s\b"
)
def _decade(m: re.Match[str], pub: date, published: datetime) -> _Res:
    if m["short"] is not None:
        decade = 1900 + int(m["short"]) * 10
        if decade + 100 <= pub.year - 10:  # "'20s" written in the 2030s means the 2020s
            decade += 100
        if decade > pub.year:
            decade -= 100
    else:
        decade = int(m["c"]) * 100 + int(m["dec"]) * 10
    if not _MIN_YEAR <= decade <= _MAX_YEAR - 9:
        return None
    return date(decade, 1, 1), date(decade + 9, 12, 31), "decade"


@_rule(rf"{_B}(?P<y1>{_Y})\s*(?:[-–—]|\s+to\s+)\s*(?P<y2>{_Y}|\d\d){_E}")
def _year_range(m: re.Match[str], pub: date, published: datetime) -> _Res:
    y1 = int(m["y1"])
    raw2 = m["y2"]
    y2 = int(raw2) if len(raw2) == 4 else y1 // 100 * 100 + int(raw2)
    if not y1 < y2 <= y1 + 50:
        return None
    return date(y1, 1, 1), date(y2, 12, 31), "year"


@_rule(rf"{_B}(?P<y>{_Y}){_E}")
def _year(m: re.Match[str], pub: date, published: datetime) -> _Res:
    # "in 2019" or "(2019)" is a year; "2000 troops" or "at 1900 GMT" is not.
    text = m.string
    if _TIME_SUFFIX.match(text, m.end()):
        return None
    if not _YEAR_LEAD.search(text, max(0, m.start() - 20), m.start()):
        after = text[m.end() : m.end() + 2]
        if after[:1] not in ("", ".", ",", ";", ")", "!", "?") and after[:2] not in ("'s", "’s"):
            return None
    y = int(m["y"])
    if not 1900 <= y <= pub.year + 30:
        return None
    return date(y, 1, 1), date(y, 12, 31), "year"


def _candidates(text: str, published: datetime) -> Iterator[tuple[int, int, date, date, Precision]]:
    pub = published.date()
    taken: list[tuple[int, int]] = []
    for pattern, resolve in _RULES:
        for m in pattern.finditer(text):
            s, e = m.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            try:
                got = resolve(m, pub, published)
            except (ValueError, OverflowError, KeyError):
                log.debug("unresolvable date phrase %r", m.group())
                got = None
            if got is None:
                continue
            taken.append((s, e))
            yield s, e, got[0], got[1], got[2]


def extract_dates(text: str, published: datetime) -> list[DateMention]:
    """Return the dates `text` mentions, in text order, resolved against `published`."""
    if not text:
        return []
    text = text[:MAX_TEXT]
    found = sorted(_candidates(text, published))
    return [
        DateMention(start=start, end=end, precision=precision, phrase=text[s:e].strip())
        for s, e, start, end, precision in found
    ]
