"""Turn feed bytes into plain `FeedItem`s with feedparser (RSS 0.9x/1.0/2.0, Atom, any encoding)."""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from itertools import accumulate, repeat, tee
from operator import sub
from typing import Any, AnyStr

import feedparser

from feeds.text import strip_invisible
from feeds.types import FeedItem
from feeds.urls import ALLOWED_SCHEMES, canonical_url

log = logging.getLogger(__name__)

# Limits on what one hostile entry can put into the timeline.
MAX_TITLE_CHARS = 500
MAX_SUMMARY_CHARS = 4000
MAX_AUTHOR_CHARS = 200
MAX_KEY_CHARS = 480  # entries.key is String(512); a "#<16 hex>" suffix may follow
MAX_TAGS = 30
MAX_TAG_CHARS = 100

# Limits on the shape of the XML, checked before feedparser sees it: its cost grows with the
# square of the nesting depth (a 3 MB body of "<x>" a million deep took 68 s and 663 MB) and
# of the number of attributes of one element (200,000 took 9 minutes). Real feeds nest about
# ten deep (XHTML content a few more) and carry a handful of attributes per element.
MAX_DEPTH = 256
MAX_ATTRIBUTES = 100
# Within those limits feedparser's cost is linear in the number of elements (about 12 us and
# 150 bytes each): a 5 MB body of 1.4 million tags took 17.5 s and 259 MB, in the bot's own
# process when it parses in a thread (`polling.parse_workers = 0`), where no deadline can stop
# it. A real feed of 50 stories with XHTML content has a few thousand elements; a 5 MB one,
# about 120,000. (`python -m bench.parse_guard` measures both.)
MAX_ELEMENTS = 150_000

# Dates outside this window are treated as missing: feeds send 1970-01-01, year 1, year 9999...
EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)

# Headers that matter to feedparser; everything else (e.g. Content-Encoding, already undone by
# the fetcher) must not reach it.
_PASSED_HEADERS = ("content-type", "content-location", "content-language")

# The encodings feedparser can detect from the bytes alone, and how wide a character is in
# each (a match at an offset that is not a multiple of it is not a character reference).
_CODECS = (
    ("utf-8", 1), ("utf-16-le", 2), ("utf-16-be", 2), ("utf-32-le", 4), ("utf-32-be", 4),
    ("cp037", 1),
)  # fmt: skip
# "<!ENTITY" in each of them. Internal entities are what the billion-laughs and
# quadratic-blowup attacks are made of; real feeds do not declare them.
_ENTITY_MARKERS = tuple((codec, "<!ENTITY".encode(codec)) for codec, _ in _CODECS)


def _charref_pattern(codec: str) -> re.Pattern[bytes]:
    """`&#123;` / `&#x7B;` as encoded in `codec` (the form feedparser's parsers decode)."""

    def one_of(chars: str) -> bytes:
        return b"(?:" + b"|".join(re.escape(c.encode(codec)) for c in chars) + b")"

    amp, hash_, semi = (re.escape(c.encode(codec)) for c in "&#;")
    digits, hex_digits = one_of("0123456789"), one_of("0123456789abcdefABCDEF")
    return re.compile(
        amp + hash_ + b"(?:" + one_of("xX") + hex_digits + b"+|" + digits + b"+)" + semi
    )


# Per encoding: how "&#" starts, the pattern, and the replacement reference.
_CHARREFS = tuple(
    (codec, width, "&#".encode(codec), _charref_pattern(codec), "&#xFFFD;".encode(codec))
    for codec, width in _CODECS
)

_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>", re.I)
# The prolog of an XML document (XML 1.0 section 2.8): an optional declaration, comments,
# processing instructions, white space and one DOCTYPE, then the root element. A DOCTYPE is
# only accepted without an internal subset (or an empty one): declarations live there.
_PROLOG_MISC = re.compile(r"\ufeff|\s+|<\?.*?\?>|<!--.*?-->", re.S)
_DOCTYPE = re.compile(
    r"""<!DOCTYPE\s+[^\s\[>]+(?:\s+(?:SYSTEM|PUBLIC)(?:\s+(?:"[^"]*"|'[^']*'))+)?\s*"""
    r"(?:\[\s*\]\s*)?>"
)
# Markup that holds no elements, for the shape check: comments, CDATA sections, processing
# instructions and declarations, each to its end or to the end of the document. (Unrolled
# loops: "[^-]*(?:-(?!->)[^-]*)*" runs at memchr speed where ".*?-->" tries every offset.)
_NOT_ELEMENTS = (
    r"<!--[^-]*(?:-(?!->)[^-]*)*(?:-->)?"
    r"|<!\[CDATA\[[^\]]*(?:\](?!\]>)[^\]]*)*(?:\]\]>)?"
    r"|<[?!][^>]*>?"
)
# The first character of an element name (XML 1.0 NameStartChar): ":", "_", an ASCII letter,
# or any non-ASCII character (any byte of one, in a bytes pattern): `<é>` nests as `<x>` does.
_NAME_START = r"[^\x00-\x39\x3b-\x40\x5b-\x5e\x60\x7b-\x7f]"
# A start tag (group "") or an end tag (group "/"); not an empty-element tag (`<x/>`), which
# leaves the depth as it was. A tag cut short by the next "<" counts too (broken markup).
_TAG = r"<(/?)" + _NAME_START + r"[^<>]*(?<!/)(?=[<>]|\Z)"
# A start tag with more than MAX_ATTRIBUTES "=" (linear: "[^<>=]*=" cannot backtrack).
_MANY_ATTRIBUTES = "<" + _NAME_START + r"(?:[^<>=]*=){" + str(MAX_ATTRIBUTES + 1) + "}"
# The start of a start tag or an empty-element tag: one per element.
_ELEMENT = "<" + _NAME_START
_SHAPE_SOURCES = (_NOT_ELEMENTS, _TAG, _MANY_ATTRIBUTES, _ELEMENT)
_SHAPE_BYTES = tuple(re.compile(source.encode(), re.S) for source in _SHAPE_SOURCES)
_SHAPE_STR = tuple(re.compile(source, re.S) for source in _SHAPE_SOURCES)
# Byte order marks and the first characters of "<?" in the encodings whose markup is not
# ASCII bytes (XML 1.0 appendix F), for the shape check.
_WIDE_STARTS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"),
    (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"), (b"\x4c\x6f\xa7\x94", "cp037"),
)  # fmt: skip
_ROOT_START = re.compile(r"<[^\W\d][\w.:-]*[\s/>]")
_WHITESPACE = re.compile(r"\s+")
# HTML elements (the WHATWG list, with the obsolete ones feeds still send): a plain-text field
# with one of these tags in it is HTML whatever its declared type. feedparser guesses
# "text/plain" for RSS titles with no closing tag or with an element it does not allow
# (`<img src=x>`, `<script>`), and a CDATA title is plain text to it.
_HTML_ELEMENTS = (
    "a abbr acronym address applet area article aside audio b base basefont bdi bdo big "
    "blink blockquote body br button canvas caption center cite code col colgroup data "
    "datalist dd del details dfn dialog dir div dl dt em embed fieldset figcaption figure "
    "font footer form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html i iframe "
    "img input ins kbd label legend li link main map mark marquee math menu meta meter nav "
    "nobr noembed noframes noscript object ol optgroup option output p param picture plaintext "
    "pre progress q rp rt ruby s samp script search section select slot small source span "
    "strike strong style sub summary sup svg table tbody td template textarea tfoot th thead "
    "time title tr track tt u ul var video wbr xmp"
).split()
_HTML_TAG = re.compile(r"<(?:!--|/?(?:" + "|".join(_HTML_ELEMENTS) + r")(?![\w:-]))", re.I)
_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I | re.S
)


class FeedParseError(ValueError):
    """The body is not a usable feed; `kind` is "not_feed" or "malformed"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(slots=True)
class ParsedFeed:
    """The feed's title and its items, ready for the timeline."""

    title: str | None
    items: list[FeedItem] = field(default_factory=list)
    version: str = ""
    bozo: bool = False
    # What was repaired in the document, one line each, for the operator's log.
    warnings: list[str] = field(default_factory=list)


class _TextExtractor(HTMLParser):
    """Collect the text of an HTML fragment; block elements become spaces."""

    _SKIP = frozenset({"script", "style", "template", "noscript"})
    # Elements that separate words; inline ones (b, a, em, span...) must not add spaces.
    _BLOCK = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
            "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
            "hr", "img", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
            "td", "tfoot", "th", "thead", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        if tag in self._BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip_depth:
            self._skip_depth -= 1
        if tag in self._BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def normalize_space(text: str) -> str:
    """Collapse all whitespace (no-break spaces included) to single spaces and trim.

    Invisible characters go first, as the tokeniser drops them (feeds.text).
    """
    return _WHITESPACE.sub(" ", strip_invisible(text)).strip()


def html_to_text(fragment: str) -> str:
    """Return the plain text of an HTML fragment: tags stripped, entities decoded, spaces fixed."""
    if "<" not in fragment and "&" not in fragment:
        return normalize_space(fragment)
    parser = _TextExtractor()
    parser.feed(fragment)
    parser.close()
    return normalize_space("".join(parser.parts))


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _field_text(value: str, kind: str) -> str:
    """Return the plain text of a feed field that feedparser typed `kind`.

    Tags are stripped (script and style content dropped) and entities decoded once; the
    result is never parsed again, so `&amp;lt;b&amp;gt;` ends as the text "<b>".
    """
    if "html" in kind or _HTML_TAG.search(value):
        return html_to_text(value)
    # Plain text: feedparser decoded it once; feeds that escape twice leave entities behind.
    return normalize_space(html.unescape(value))


def _detail_text(entry: Mapping[str, Any], name: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        return ""
    detail = entry.get(f"{name}_detail") or {}
    return _field_text(value, str(detail.get("type") or "text/html"))


def _summary(entry: Mapping[str, Any]) -> str:
    text = _detail_text(entry, "summary")
    if not text:
        for content in entry.get("content") or ():
            value = content.get("value")
            if isinstance(value, str) and value:
                text = _field_text(value, str(content.get("type") or "text/html"))
                if text:
                    break
    return _truncate(text, MAX_SUMMARY_CHARS)


def _link(entry: Mapping[str, Any]) -> str | None:
    candidates: list[str] = []
    link = entry.get("link")
    if isinstance(link, str):
        candidates.append(link)
    for item in entry.get("links") or ():
        href = item.get("href")
        if isinstance(href, str) and item.get("rel", "alternate") == "alternate":
            candidates.append(href)
    for raw in candidates:
        url = canonical_url(raw)
        if url.partition(":")[0] in ALLOWED_SCHEMES and len(url) <= 2048:
            return url
    return None


def _image(entry: Mapping[str, Any]) -> str | None:  # noqa: C901 (each of feedparser's image shapes in turn)
    """The story's image, if the feed names one: media:thumbnail, then media:content or an
    enclosure of an image type, then an <image>; http(s) URLs only."""
    candidates: list[object] = []
    for thumb in entry.get("media_thumbnail") or ():
        if isinstance(thumb, Mapping):
            candidates.append(thumb.get("url"))
    for media in entry.get("media_content") or ():
        if isinstance(media, Mapping):
            kind = str(media.get("type") or "")
            if media.get("medium") == "image" or kind.startswith("image/"):
                candidates.append(media.get("url"))
    for link in entry.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "enclosure":
            if str(link.get("type") or "").startswith("image/"):
                candidates.append(link.get("href"))
    image = entry.get("image")
    if isinstance(image, Mapping):
        candidates.append(image.get("href") or image.get("url"))
    for raw in candidates:
        if not isinstance(raw, str) or not raw.strip():
            continue
        url = canonical_url(raw.strip())
        if url.partition(":")[0] in ALLOWED_SCHEMES and len(url) <= 2048 and " " not in url:
            return url
    return None


def _published(entry: Mapping[str, Any], now: datetime) -> tuple[datetime, bool]:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict.get would map updated_parsed to published_parsed with a
        # DeprecationWarning (feedparser issue 310); we want exactly the field that was sent.
        parsed = dict.get(entry, name) if isinstance(entry, dict) else entry.get(name)
        if not isinstance(parsed, time.struct_time):
            continue
        try:
            # feedparser's *_parsed values are UTC struct_times.
            when = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
        except (OverflowError, ValueError, OSError):
            continue
        if EARLIEST_PLAUSIBLE <= when <= now + FUTURE_TOLERANCE:
            return when, False
    return now, True


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tag in entry.get("tags") or ():
        term = tag.get("term")
        if not isinstance(term, str):
            continue
        text = _truncate(html_to_text(term), MAX_TAG_CHARS)
        if text:
            seen.setdefault(text, None)
        if len(seen) >= MAX_TAGS:
            break
    return tuple(seen)


def _sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _base_key(entry: Mapping[str, Any], link: str | None, title: str, summary: str) -> str:
    raw_id = entry.get("id")
    key = normalize_space(raw_id) if isinstance(raw_id, str) else ""
    if not key and link:
        key = link
    if not key:
        key = "sha256:" + _sha256(title, summary)
    if len(key) > MAX_KEY_CHARS:
        key = "sha256:" + _sha256(key)
    return key


def _check_prolog(body: bytes) -> None:
    """Refuse a document that may declare entities: "<!ENTITY" anywhere before its root."""
    for codec, marker in _ENTITY_MARKERS:
        pos = body.find(marker)
        if pos < 0:
            continue
        # "<!ENTITY" after the start of the root element is text (in CDATA or a comment):
        # fine. Anything else is refused, including a prolog this grammar does not follow.
        root = _root_start(body[:pos].decode(codec, "replace"))
        if root is None:
            raise FeedParseError(
                "malformed",
                "document declares XML entities (<!ENTITY); refused to avoid entity expansion",
            )


def _root_start(text: str) -> int | None:
    """Return where the root element starts in `text`, or None if it does not start there.

    Walks the prolog token by token, so that a "<x" inside a comment or a processing
    instruction is not taken for the root (feedparser's own replace_doctype makes that
    mistake, and then hands expat the entity declarations that follow).
    """
    pos = 0
    seen_doctype = False
    while pos < len(text):
        misc = _PROLOG_MISC.match(text, pos)
        if misc:
            pos = misc.end()
            continue
        doctype = None if seen_doctype else _DOCTYPE.match(text, pos)
        if doctype:
            seen_doctype = True
            pos = doctype.end()
            continue
        return pos if _ROOT_START.match(text, pos) else None
    return None


def _xml_char(ref: str) -> bool:
    """Whether character reference `ref` ("&#...;") names a character XML allows (XML 1.0
    production [2] Char: no NUL or other C0 control, no lone surrogate, nothing past
    U+10FFFF, not U+FFFE/U+FFFF)."""
    hex_ref = ref[2] in "xX"
    digits = ref[3:-1] if hex_ref else ref[2:-1]
    digits = digits.lstrip("0") or "0"
    if len(digits) > 7:  # (and int() refuses strings past 4300 digits)
        return False
    cp = int(digits, 16 if hex_ref else 10)
    return (
        cp in (0x9, 0xA, 0xD)
        or 0x20 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


def _repair_charrefs(body: bytes) -> tuple[bytes, list[str]]:
    """Rewrite references to characters XML forbids (`&#xD800;`, `&#0;`, `&#x110000;`) as
    `&#xFFFD;` (U+FFFD REPLACEMENT CHARACTER); return the body and the references replaced.

    expat refuses such a reference, and then feedparser's loose parser turns it into a lone
    surrogate that raises UnicodeEncodeError (or a chr() ValueError) and loses the whole
    feed, or into a NUL that PostgreSQL refuses to store.
    """
    bad: list[str] = []
    for codec, width, start, pattern, replacement in _CHARREFS:
        if start not in body:
            continue
        # The distinct references first (a C loop): most feeds use a few valid ones a lot.
        forbidden = {r for r in set(pattern.findall(body)) if not _xml_char(r.decode(codec))}
        if not forbidden:
            continue
        spans = []
        for m in pattern.finditer(body):
            if m.group() not in forbidden or m.start() % width:
                continue  # (at an odd offset: bytes straddling two characters)
            spans.append((m.start(), m.end()))
            bad.append(m.group().decode(codec))
        if spans:
            parts = []
            last = 0
            for a, b in spans:
                parts += [body[last:a], replacement]
                last = b
            parts.append(body[last:])
            body = b"".join(parts)
    return body, bad


def _check_shape(body: bytes) -> None:
    """Refuse a document nested deeper than MAX_DEPTH, with an element carrying more than
    MAX_ATTRIBUTES attributes (feedparser would take minutes and gigabytes over it), or with
    more than MAX_ELEMENTS elements (seconds and hundreds of MB).

    A scan with regular expressions, tolerant of broken markup as feedparser's loose parser
    is; comments and CDATA sections hold no elements. An end tag without a start tag does not
    take the depth below zero (as a parser ignores it).
    """
    for start, codec in _WIDE_STARTS:
        if body.startswith(start):
            problem = _shape_problem(body.decode(codec, "replace"), _SHAPE_STR, " ", ("<", "</"))
            break
    else:
        problem = _shape_problem(body, _SHAPE_BYTES, b" ", (b"<", b"</"))
    if problem:
        raise FeedParseError("malformed", f"{problem}; refused")


def _shape_problem(
    text: AnyStr,
    patterns: tuple[re.Pattern[AnyStr], ...],
    space: AnyStr,
    marks: tuple[AnyStr, AnyStr],
) -> str | None:
    not_elements, tag, many_attributes, element = patterns
    text = not_elements.sub(space, text)
    if many_attributes.search(text):
        return f"an element has more than {MAX_ATTRIBUTES} attributes"
    if _depth_exceeds(tag.findall(text), MAX_DEPTH):
        return f"elements are nested more than {MAX_DEPTH} deep"
    # Every "<" but those of end tags bounds the elements from above (C loops); only a
    # document over the limit by that bound gets the exact (slower) count.
    if text.count(marks[0]) - text.count(marks[1]) > MAX_ELEMENTS:
        elements = sum(1 for _ in element.finditer(text))
        if elements > MAX_ELEMENTS:
            return f"the document has {elements:,} elements, more than {MAX_ELEMENTS:,}"
    return None


_STEP = {b"": 1, b"/": -1, "": 1, "/": -1}


def _depth_exceeds(tags: list[bytes] | list[str], limit: int) -> bool:
    """Whether the depth reached by `tags` ("" a start tag, "/" an end tag), never below
    zero, passes `limit`.

    The depth after tag i is p_i - min(0, p_1..p_i), with p the running sum of the steps,
    and max(p) - min(0, min(p)) bounds it from above: two passes of C loops (map,
    accumulate, max) clear a normal feed; only a document that fails them gets the exact
    (slower) count, so that end tags without start tags cannot hide a deep nest.
    """
    if not tags:
        return False
    highest = max(accumulate(map(_STEP.__getitem__, tags)))
    lowest = min(0, min(accumulate(map(_STEP.__getitem__, tags))))
    if highest - lowest <= limit:
        return False
    if lowest == 0:
        return True  # (never below zero: the depth is the running sum itself)
    sums, sums_again = tee(accumulate(map(_STEP.__getitem__, tags)))
    floors = accumulate(sums_again, min, initial=0)
    next(floors)  # (the initial 0: floor i is then min(0, p_1..p_i))
    return any(map(int.__gt__, map(sub, sums, floors), repeat(limit)))


def _feed_headers(headers: Mapping[str, str], url: str) -> dict[str, str]:
    passed = {k.lower(): v for k, v in headers.items() if k.lower() in _PASSED_HEADERS}
    # Relative links resolve against the URL the bytes came from.
    passed.setdefault("content-location", url)
    return passed


def _looks_like_html(body: bytes, headers: Mapping[str, str]) -> bool:
    ctype = headers.get("content-type", "").lower()
    return "html" in ctype.split(";")[0] or bool(_HTML_START.match(body[:4096]))


def _complete_entries(entries: list[Any], body: bytes) -> list[Any]:
    """Drop the entries of a broken document that were never closed (a cut-off download)."""
    if b"\x00" in body[:512]:
        return entries  # UTF-16/32: tags are not countable as bytes; keep what feedparser found
    closed = len(_ENTRY_END.findall(body))
    return entries[:closed]


def parse_feed(body: bytes, headers: Mapping[str, str], url: str, now: datetime) -> ParsedFeed:
    """Parse feed `body` (bytes as served, with the response `headers`) fetched from `url`.

    Raises FeedParseError ("not_feed" or "malformed") when the body is not a usable feed.
    `now` (aware) stands in for missing or absurd publication dates.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    if not body.strip():
        raise FeedParseError("not_feed", "empty response body, expected an RSS or Atom feed")
    _check_prolog(body)
    _check_shape(body)
    body, bad_refs = _repair_charrefs(body)
    passed = _feed_headers(headers, url)
    result = feedparser.parse(io.BytesIO(body), response_headers=passed)
    version = str(result.get("version") or "")
    entries = result.get("entries") or []
    bozo = bool(result.get("bozo"))
    if not version and not entries:
        if _looks_like_html(body, passed):
            raise FeedParseError("not_feed", "got an HTML page, not an RSS or Atom feed")
        if body.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")[:1] != b"<":
            raise FeedParseError("not_feed", "document is not XML, expected an RSS or Atom feed")
        if bozo:
            raise FeedParseError(
                "malformed", f"not well-formed XML: {result.get('bozo_exception')}"
            )
        raise FeedParseError("not_feed", "document is not an RSS or Atom feed")
    if bozo and entries:
        entries = _complete_entries(entries, body)
    if bozo and not entries:
        raise FeedParseError(
            "malformed",
            f"feed is not well-formed and has no entries: {result.get('bozo_exception')}",
        )

    feed_info = result.get("feed") or {}
    feed_title = _truncate(_detail_text(feed_info, "title"), MAX_TITLE_CHARS) or None
    items = _items(entries, now)
    warnings = [_charref_warning(bad_refs, items)] if bad_refs else []
    return ParsedFeed(title=feed_title, items=items, version=version, bozo=bozo, warnings=warnings)


def _charref_warning(refs: list[str], items: list[FeedItem]) -> str:
    """One line naming the invalid character references replaced and the items they hit."""
    unique = list(dict.fromkeys(refs))
    shown = ", ".join(unique[:5])
    more = f" and {len(unique) - 5} more" if len(unique) > 5 else ""
    hit = [
        repr(item.key)
        for item in items
        if "\ufffd" in item.title or "\ufffd" in item.summary or "\ufffd" in (item.author or "")
    ]
    where = f" in item {', '.join(hit[:3])}" if hit else ""
    if len(hit) > 3:
        where += f" and {len(hit) - 3} more"
    return (
        f"replaced {len(refs)} reference(s) to characters XML forbids ({shown}{more}) "
        f"with U+FFFD{where}"
    )


def parse_job(
    body: bytes, headers: Mapping[str, str], url: str, now: datetime
) -> ParsedFeed | tuple[str, str]:
    """`parse_feed`, with a parse error returned as `(kind, message)` instead of raised.

    What a parse worker process (feeds/parse_pool.py) or a thread runs: both results pickle.
    """
    try:
        return parse_feed(body, headers, url, now)
    except FeedParseError as exc:
        return (exc.kind, str(exc))


def _items(entries: list[Any], now: datetime) -> list[FeedItem]:
    items: list[FeedItem] = []
    drafts: list[tuple[str, str, Any, str, str, str | None]] = []
    contents_by_key: dict[str, set[str]] = {}
    for entry in entries:
        title = _truncate(_detail_text(entry, "title"), MAX_TITLE_CHARS)
        summary = _summary(entry)
        link = _link(entry)
        if not title and not summary and not link:
            continue  # nothing a person could read (e.g. the stub of a truncated document)
        key = _base_key(entry, link, title, summary)
        content = _sha256(title, link or "")[:16]
        seen = contents_by_key.setdefault(key, set())
        if content in seen:
            continue  # the same story repeated in one document (same id, title and link)
        seen.add(content)
        drafts.append((key, content, entry, title, summary, link))
    for key, content, entry, title, summary, link in drafts:
        # One guid for several stories: publishers reuse ids (e.g. "daily-briefing"). Tell
        # them apart by content, for every occurrence, so the keys do not depend on order.
        # Whether a guid is shared depends on the document, so the same story may come as
        # "guid" in one document and as "guid#content" in a later one (or the reverse):
        # `same_as` names the other form, and the store recognises an entry stored under it
        # whose title and link are this item's (timeline.usecases.ingest), so it is not stored twice.
        shared = f"{key}#{content}"
        if len(contents_by_key[key]) > 1:
            key, same_as = shared, (key,)
        else:
            same_as = (shared,)
        published, estimated = _published(entry, now)
        author_raw = entry.get("author")
        author = (
            _truncate(html_to_text(author_raw), MAX_AUTHOR_CHARS)
            if isinstance(author_raw, str)
            else ""
        )
        items.append(
            FeedItem(
                key=key,
                title=title,
                summary=summary,
                link=link,
                published=published,
                published_is_estimated=estimated,
                author=author or None,
                tags=_tags(entry),
                same_as=same_as,
                image=_image(entry),
            )
        )
    return items
