"""Decide whether a new story belongs to an event already on the timeline.

Three stages, cheapest and surest first:

1. ``identical``: the same canonical link or the same guid-like key.
2. ``near_copy``: syndicated wire text with small edits (word 3-gram shingles of title and
   summary overlap heavily).
3. ``same_story``: another outlet telling the same happening in its own words within the
   time window (IDF-weighted overlap of title and text, plus shared names and places).

A wrong merge is worse than a missed one, so every stage has vetoes that keep apart stories
which look alike but are not the same happening: different headline figures (the daily
"shot down 23 of 28 drones" template), and explicit days that do not agree ("on Tuesday"
against "on Wednesday", resolved against each story's published date).

Pure Python, no database: ingest loads the recent events into an :class:`EventIndex` at the
start of a round, calls :meth:`EventIndex.find` for each new entry, then
:meth:`EventIndex.add` with the matched or newly created event id.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from .dates import extract_dates

log = logging.getLogger(__name__)

Stage = Literal["identical", "near_copy", "same_story"]

# Text beyond this is ignored: summaries are a few sentences; a hostile feed may send megabytes.
MAX_TEXT = 4000
# Keys shorter than this, or all digits, are feed-local counters ("1234"), not global ids.
MIN_KEY_LENGTH = 12

# --- thresholds (see tests/clustering/test_labelled.py for the precision/recall they give) ---
NEAR_COPY_JACCARD = 0.45
NEAR_COPY_CONTAINMENT = 0.75
NEAR_COPY_MIN_SHINGLES = 6
SHINGLE_SAMPLE = 4
# A retelling published soon after the first report needs less likeness than one a day later:
# later stories about the same names are mostly follow-ups (reactions, charges, market moves).
SAME_STORY_SCORE = 0.3
SAME_STORY_LATE_EXTRA = 0.5
SAME_STORY_RAMP = timedelta(hours=24)
# Weights of title likeness, text likeness, shared names and cross coverage (sum to 1).
W_TITLE, W_TEXT, W_NAMES, W_COVER = 0.25, 0.25, 0.2, 0.3
# Headlines this alike that carry different figures are a template, not a retelling.
TEMPLATE_TITLE = 0.5
# Postings longer than this share of the index are too common to propose candidates.
COMMON_SHARE = 0.05
COMMON_FLOOR = 50
MAX_CANDIDATES = 12
# Smoothing for IDF so a small index weighs all words about equally.
IDF_PRIOR = 200

_STOPWORDS = frozenset(
    """
    a about above after again against ago all also am an and any are as at be been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    me more most my no nor not now of off on once only or other our out over own same she
    should so some such than that the their them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with
    would you your yours s t amid via per vs us
    say says said saying told tell report reports reported reporting according sources source
    new update updates live latest breaking exclusive analysis explainer factbox watch video
    photos year years day days week weeks month months today yesterday tomorrow tonight
    monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    le la les de du des et en un une au aux est sont selon dans pour par sur avec ce cette qui
    que il elle ils ont pas plus
    """.split()
)
_MONTHS_DAYS = frozenset(
    """
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december
    """.split()
)
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
# A capitalised word inside a sentence (after a word or comma and one space: a capital that
# only opens a sentence says nothing), or an acronym anywhere.
_NAME = re.compile(r"(?<=[\w,'’)]\s)([A-ZÀ-ÖØ-Þ][\w'’-]*)|\b([A-Z][A-Z0-9]+(?:['’]s)?)\b")
_TRACKING_PREFIXES = ("utm_", "at_", "mc_", "pk_", "mtm_", "hmb_")
_TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "ref", "ref_src", "rss", "cmpid", "ocid", "smid", "taid", "maca", "ito"}
)
_WIRE_PREFIX = re.compile(
    r"^\s*(?:update\s*\d*|exclusive|breaking|analysis|wrapup\s*\d*)\s*[-:]\s*"
)

# Outlets alternate between "China" and "Chinese", "quake" and "earthquake": fold the common
# pairs so a retelling is not judged on its choice of word form.
_SAME_WORD = {
    "american": "us",
    "america": "us",
    "belarusian": "belarus",
    "british": "britain",
    "uk": "britain",
    "canadian": "canada",
    "chinese": "china",
    "european": "europe",
    "french": "france",
    "german": "germany",
    "indian": "india",
    "iranian": "iran",
    "israeli": "israel",
    "italian": "italy",
    "japanese": "japan",
    "kenyan": "kenya",
    "korean": "korea",
    "lebanese": "lebanon",
    "palestinian": "palestine",
    "polish": "poland",
    "russian": "russia",
    "saudi": "saudi",
    "slovak": "slovakia",
    "slovakian": "slovakia",
    "spanish": "spain",
    "sudanese": "sudan",
    "syrian": "syria",
    "taiwanese": "taiwan",
    "turkish": "turkey",
    "ukrainian": "ukraine",
    "quake": "earthquake",
    "pm": "prime",
    "premier": "prime",
}


@dataclass(frozen=True, slots=True)
class Match:
    """The event a new story belongs to, how it was recognised and how sure that is."""

    event_id: int
    stage: Stage
    score: float


_SUFFIXES = ("ies", "ied", "ing", "es", "ed", "s")
_VOWELS = frozenset("aeiouy")


@lru_cache(maxsize=131072)
def _stem(word: str) -> str:
    """Reduce an English word to a crude stem: kills/killed/killing -> kill.

    Deliberately light (plural, -ed, -ing, final -e/-y, doubled consonant): it only has to
    map both stories' inflections onto the same key, and the Snowball stemmer in pure
    Python costs ~0.2 ms a word, which a 10,000-event index cannot afford.
    """
    word = _SAME_WORD.get(word, word)
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                stem += "i"
            elif suffix == "s" and stem.endswith(("s", "u")):
                continue  # "press", "bus": not a plural
            elif not (_VOWELS & set(stem)):
                continue
            word = stem
            break
    if word.endswith("y"):
        word = word[:-1] + "i"
    elif word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in _VOWELS:
        word = word[:-1]
    return word


def _fold(text: str) -> str:
    """Lower-case and strip diacritics ("Handlová" -> "handlova")."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _words(text: str) -> list[str]:
    words: list[str] = _WORD.findall(_fold(text))
    if "," in text:  # "2,000" and "2000" are the same figure
        words = [w.replace(",", "") if "," in w else w for w in words]
    return words


def _content(words: Iterable[str]) -> set[str]:
    return {_stem(w) for w in words if w not in _STOPWORDS and (len(w) > 1 or w.isdigit())}


def _numbers(words: Iterable[str]) -> frozenset[str]:
    return frozenset(w for w in words if w[0].isdigit())


def _is_title_case(title: str) -> bool:
    words = [w for w in re.findall(r"[^\W\d_][\w'’-]*", title) if len(w) > 3]
    if len(words) < 3:
        return False
    return sum(w[0].isupper() for w in words) / len(words) > 0.6


def _entities(title: str, summary: str) -> frozenset[str]:
    """Return stems of names and places: capitalised words not opening a sentence, acronyms."""
    found: set[str] = set()
    texts = (summary,) if _is_title_case(title) else (title, summary)
    for text in texts:
        for mid, acronym in _NAME.findall(text):
            for w in _WORD.findall(_fold(mid or acronym)):
                if w in _STOPWORDS or w in _MONTHS_DAYS or len(w) < 2 or w[0].isdigit():
                    continue
                found.add(_stem(w))
    return frozenset(found)


def _shingles(words: list[str]) -> frozenset[int]:
    if len(words) < 3:
        return frozenset({hash(tuple(words))}) if words else frozenset()
    return frozenset(map(hash, zip(words, words[1:], words[2:], strict=False)))


def link_key(link: str | None) -> str | None:
    """Return the identity of a link: host without www, path without trailing slash, no
    fragment or tracking parameters, scheme ignored; None for an empty or unparsable link."""
    if not link:
        return None
    text = link.strip()
    if not text or len(text) > 4096:
        return None
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").removeprefix("www.")
    except ValueError:
        return None
    if not host:
        return None
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _TRACKING_PARAMS and not k.lower().startswith(_TRACKING_PREFIXES)
    ]
    path = parts.path.rstrip("/")
    return f"{host}{path}?{urlencode(query)}" if query else f"{host}{path}"


def _usable_key(key: str) -> bool:
    key = key.strip()
    return len(key) >= MIN_KEY_LENGTH and not key.isdigit()


@dataclass(slots=True)
class _Source:
    """One story already filed under an event, reduced to the features the stages compare."""

    event_id: int
    published: datetime
    title_tokens: frozenset[str]
    tokens: frozenset[str]
    entities: frozenset[str]
    shingles: frozenset[int]
    title_numbers: frozenset[str]
    text: str
    _days: frozenset[date] | None = field(default=None)

    def days(self) -> frozenset[date]:
        """Return the calendar days the text names explicitly (computed once, on demand)."""
        if self._days is None:
            self._days = frozenset(
                d
                for m in extract_dates(self.text, self.published)
                if m.precision == "day" and m.start == m.end
                for d in (m.start,)
            )
        return self._days


def _features(
    event_id: int, title: str, summary: str, published: datetime, link: str | None
) -> _Source:
    if published.tzinfo is None or published.utcoffset() is None:
        raise ValueError("published must be an aware datetime")
    title = (title or "")[:MAX_TEXT]
    summary = (summary or "")[:MAX_TEXT]
    clean_title = _WIRE_PREFIX.sub("", title)
    title_words = _words(clean_title)
    all_words = title_words + _words(summary)
    return _Source(
        event_id=event_id,
        published=published.astimezone(UTC),
        title_tokens=frozenset(_content(title_words)),
        tokens=frozenset(_content(all_words)),
        entities=_entities(clean_title, summary),
        shingles=_shingles(all_words),
        title_numbers=_numbers(title_words),
        text=f"{clean_title}. {summary}",
    )


class EventIndex:
    """An in-memory index of recent events' sources that answers "which event is this?"."""

    def __init__(self, window: timedelta = timedelta(hours=72)) -> None:
        """Create an empty index; stories further apart than `window` are never the same."""
        if window <= timedelta(0):
            raise ValueError("window must be positive")
        self.window = window
        self._sources: list[_Source] = []
        self._by_link: dict[str, int] = {}
        self._by_key: dict[str, int] = {}
        self._token_postings: dict[str, list[int]] = {}
        self._shingle_postings: dict[int, list[int]] = {}
        self._df: dict[str, int] = {}
        # IDF values are cached; the index size they use is refreshed as the index grows.
        self._idf_cache: dict[str, float] = {}
        self._idf_n = 0
        self._earliest: dict[int, datetime] = {}
        self._last_query: tuple[tuple[str, str, datetime, str | None], _Source] | None = None

    def __len__(self) -> int:
        return len(self._sources)

    def add(
        self,
        event_id: int,
        *,
        title: str,
        summary: str,
        published: datetime,
        link: str | None,
        keys: Iterable[str] = (),
    ) -> None:
        """Add an event, or a new source of an event already in the index."""
        last = self._last_query
        if last is not None and last[0] == (title, summary, published, link):
            src, self._last_query = last[1], None  # ingest adds what it just looked up
            src.event_id = event_id
        else:
            src = _features(event_id, title, summary, published, link)
        sid = len(self._sources)
        self._sources.append(src)
        seen = self._earliest.get(event_id)
        if seen is None or src.published < seen:
            self._earliest[event_id] = src.published
        lk = link_key(link)
        if lk is not None:
            self._by_link.setdefault(lk, event_id)
        for key in keys:
            if _usable_key(key):
                self._by_key.setdefault(key.strip(), event_id)
        df, cache = self._df, self._idf_cache
        for tok in src.tokens:
            df[tok] = df.get(tok, 0) + 1
            cache.pop(tok, None)
        if sid + 1 - self._idf_n > max(10, self._idf_n // 10):
            self._idf_n = sid + 1
            cache.clear()
        postings = self._token_postings
        for tok in src.title_tokens | src.entities:
            if tok in postings:
                postings[tok].append(sid)
            else:
                postings[tok] = [sid]
        shingle_postings = self._shingle_postings
        # Index one shingle in SHINGLE_SAMPLE (all of a short text): a near copy shares most
        # shingles, so it still shares sampled ones, and the index is a quarter the size.
        sampled = (
            src.shingles
            if len(src.shingles) < 4 * SHINGLE_SAMPLE
            else [sh for sh in src.shingles if sh % SHINGLE_SAMPLE == 0]
        )
        for sh in sampled:
            if sh in shingle_postings:
                shingle_postings[sh].append(sid)
            else:
                shingle_postings[sh] = [sid]

    def earliest(self, event_id: int) -> datetime | None:
        """Return the event's time: the earliest published time among its indexed sources."""
        return self._earliest.get(event_id)

    def find(
        self,
        *,
        title: str,
        summary: str,
        published: datetime,
        link: str | None,
        keys: Iterable[str] = (),
    ) -> Match | None:
        """Return the event this story belongs to, or None if it is a new event."""
        for key in keys:
            if _usable_key(key) and (hit := self._by_key.get(key.strip())) is not None:
                return Match(hit, "identical", 1.0)
        lk = link_key(link)
        if lk is not None and (hit := self._by_link.get(lk)) is not None:
            return Match(hit, "identical", 1.0)
        if not self._sources:
            return None
        query = _features(-1, title, summary, published, link)
        self._last_query = ((title, summary, published, link), query)
        near = self._near_copy(query)
        if near is not None:
            return near
        return self._same_story(query)

    # --- stage 2 -------------------------------------------------------------------------

    def _common_limit(self) -> int:
        return max(COMMON_FLOOR, int(len(self._sources) * COMMON_SHARE))

    def _in_window(self, a: _Source, b: _Source) -> bool:
        return abs(a.published - b.published) <= self.window

    def _near_copy(self, query: _Source) -> Match | None:
        if not query.shingles:
            return None
        limit = self._common_limit()
        counts: dict[int, int] = {}
        for sh in query.shingles:
            posting = self._shingle_postings.get(sh)
            if posting is None or len(posting) > limit:
                continue
            for sid in posting:
                counts[sid] = counts.get(sid, 0) + 1
        best: Match | None = None
        for sid in sorted(counts, key=counts.__getitem__, reverse=True)[:MAX_CANDIDATES]:
            src = self._sources[sid]
            shared = len(query.shingles & src.shingles)
            small = min(len(src.shingles), len(query.shingles))
            union = len(src.shingles) + len(query.shingles) - shared
            jaccard = shared / union
            containment = shared / small
            ok = jaccard >= NEAR_COPY_JACCARD or (
                small >= NEAR_COPY_MIN_SHINGLES and containment >= NEAR_COPY_CONTAINMENT
            )
            if not ok or not self._in_window(src, query):
                continue
            if _figures_differ(query, src) or _days_differ(query, src):
                continue
            score = max(jaccard, containment)
            if best is None or score > best.score:
                best = Match(src.event_id, "near_copy", round(score, 3))
        return best

    # --- stage 3 -------------------------------------------------------------------------

    def _idf(self, token: str) -> float:
        value = self._idf_cache.get(token)
        if value is None:
            value = math.log((self._idf_n + IDF_PRIOR) / (self._df.get(token, 0) + 1))
            self._idf_cache[token] = value
        return value

    def _weight(self, tokens: Iterable[str]) -> float:
        cache, idf = self._idf_cache, self._idf
        return sum(cache[t] if t in cache else idf(t) for t in tokens)

    def _same_story(self, query: _Source) -> Match | None:
        limit = self._common_limit()
        pre: dict[int, float] = {}
        for tok in query.title_tokens | query.entities:
            posting = self._token_postings.get(tok)
            if posting is None or len(posting) > limit:
                continue
            w = self._idf(tok)
            for sid in posting:
                pre[sid] = pre.get(sid, 0.0) + w
        if not pre:
            return None
        ranked = sorted(pre, key=pre.__getitem__, reverse=True)[:MAX_CANDIDATES]
        best: Match | None = None
        for sid in ranked:
            src = self._sources[sid]
            if not self._in_window(src, query):
                continue
            score = self._story_score(query, src)
            if score < self._story_threshold(query, src) or _days_differ(query, src):
                continue
            if _figures_differ(query, src) and (
                self._cosine(query.title_tokens, src.title_tokens) >= TEMPLATE_TITLE
            ):
                continue
            if best is None or score > best.score:
                best = Match(src.event_id, "same_story", round(score, 3))
        return best

    def _cosine(self, a: frozenset[str], b: frozenset[str]) -> float:
        if not a or not b:
            return 0.0
        shared = self._weight(a & b)
        return shared / math.sqrt(self._weight(a) * self._weight(b))

    def _coverage(self, title: frozenset[str], text: frozenset[str]) -> float:
        return self._weight(title & text) / self._weight(title) if title else 0.0

    def _story_score(self, query: _Source, src: _Source) -> float:
        title = self._cosine(query.title_tokens, src.title_tokens)
        text = self._cosine(query.tokens, src.tokens)
        names = self._cosine(query.entities, src.entities)
        # How much of each headline the other story's text covers: a retelling covers the
        # other's headline; a follow-up's headline carries news the first story lacks.
        cover = (
            self._coverage(query.title_tokens, src.tokens)
            + self._coverage(src.title_tokens, query.tokens)
        ) / 2
        return W_TITLE * title + W_TEXT * text + W_NAMES * names + W_COVER * cover

    def _story_threshold(self, query: _Source, src: _Source) -> float:
        late = min(abs(query.published - src.published) / SAME_STORY_RAMP, 1.0)
        return SAME_STORY_SCORE + SAME_STORY_LATE_EXTRA * late


# --- vetoes ------------------------------------------------------------------------------


def _figures_differ(a: _Source, b: _Source) -> bool:
    """Tell whether both headlines carry figures and none of them agree."""
    return bool(a.title_numbers and b.title_numbers and not (a.title_numbers & b.title_numbers))


def _days_differ(a: _Source, b: _Source) -> bool:
    """Tell whether both texts name explicit days and none of them agree."""
    adays, bdays = a.days(), b.days()
    return bool(adays and bdays and not (adays & bdays))
