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

No database: ingest loads the recent events into an :class:`EventIndex` at the start of a
round (and prunes what has aged out of the window), calls :meth:`EventIndex.find` for each new
entry, then :meth:`EventIndex.add` with the matched or newly created event id. Python, with
numpy arrays where an index of tens of thousands of stories would otherwise cost too much
memory or time.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import unicodedata
import zlib
from array import array
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

from timeline.domain.text_dates import extract_dates

log = logging.getLogger(__name__)

Stage = Literal["identical", "near_copy", "same_story"]

# Text beyond this is ignored: summaries are a few sentences; a hostile feed may send megabytes.
MAX_TEXT = 4000
# Keys shorter than this, or all digits, are feed-local counters ("1234"), not global ids.
MIN_KEY_LENGTH = 12

# --- thresholds (see tests/domain/clustering/test_labelled.py for the precision/recall they give) ---
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
_MASK32 = 0xFFFFFFFF
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
    return bool(sum(w[0].isupper() for w in words) / len(words) > 0.6)


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
    """Return the word 3-gram hashes of `words`, 32 bits (they are stored per story).

    CRC-32 of the words joined by spaces (a word has none), not Python's `hash`: that one is
    salted per process, so which shingles `SHINGLE_SAMPLE` keeps, and so what a near copy
    shares, would change with a restart, and an index saved by one process (`state`) would
    not hold what another computes.
    """
    if len(words) < 3:
        return frozenset({_crc(" ".join(words))}) if words else frozenset()
    return frozenset(
        _crc(f"{a} {b} {c}") for a, b, c in zip(words, words[1:], words[2:], strict=False)
    )


# Bump when `_shingles` or `_identities` hash differently: a saved index (`EventIndex.state`)
# of another version holds hashes a new process would not compute.
HASH_VERSION = 1


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def _hash64(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process (signed, as `hash` was)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


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


def _identities(link: str | None, keys: Iterable[str]) -> list[int]:
    """Return what makes two stories identical, hashed: each usable key, then the link.

    64-bit hashes instead of the strings (an index holds tens of thousands of stories); two
    different keys share a hash with odds of about one in 10^19. Stable across processes
    (`_hash64`), so a saved index (`EventIndex.state`) matches what a new process computes.
    """
    out = [_hash64("key\x00" + key.strip()) for key in keys if _usable_key(key)]
    lk = link_key(link)
    if lk is not None:
        out.append(_hash64("link\x00" + lk))
    return out


_NO_DAYS: frozenset[date] = frozenset()
# extract_dates() names a single day only from a figure ("9 July", "2024-07-09"), one of these
# words, "N days ago" or a weekday: a text with none of them names no day (see timeline/domain/text_dates.py).
_MAY_NAME_A_DAY = re.compile(
    r"\d|\b(?:yesterday|today|tomorrow|tonight|night|ago|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    re.IGNORECASE,
)


def _named_days(text: str, published: datetime) -> frozenset[date]:
    """Return the calendar days `text` names explicitly, resolved against `published`."""
    return frozenset(
        m.start for m in extract_dates(text, published) if m.precision == "day" and m.start == m.end
    )


@dataclass(slots=True)
class _Story:
    """A story being looked up, reduced to the features the stages compare (as sets)."""

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
            self._days = _named_days(self.text, self.published)
        return self._days


@dataclass(slots=True)
class _Source:
    """One story filed under an event, stored compactly: an index holds tens of thousands.

    Tuples and a 32-bit array instead of sets (a set's table is several times the size of
    its items); the lookup side (:class:`_Story`) keeps sets, so comparing is still C-level.
    """

    event_id: int
    published: datetime
    # The content words of title and text, the title's first (`title_tokens` is a prefix).
    tokens: tuple[str, ...]
    n_title: int
    entities: tuple[str, ...]
    shingles: array[int]
    title_numbers: tuple[str, ...]
    text: str
    # Hashes of its guid-like keys and canonical link (see `_identity`).
    identities: tuple[int, ...]
    # The later of its published time and when it was ingested: a story is kept for a window
    # after both (an item dated days ago that arrives now can still be retold by another feed).
    last: datetime
    _days: frozenset[date] | None = field(default=None)

    @property
    def title_tokens(self) -> tuple[str, ...]:
        """Return the content words of the title."""
        return self.tokens[: self.n_title]

    def days(self) -> frozenset[date]:
        """Return the calendar days the text names explicitly (computed once, on demand)."""
        if self._days is None:
            self._days = _named_days(self.text, self.published)
        return self._days


def _features(title: str, summary: str, published: datetime) -> _Story:
    if published.tzinfo is None or published.utcoffset() is None:
        raise ValueError("published must be an aware datetime")
    title = (title or "")[:MAX_TEXT]
    summary = (summary or "")[:MAX_TEXT]
    clean_title = _WIRE_PREFIX.sub("", title)
    title_words = _words(clean_title)
    all_words = title_words + _words(summary)
    return _Story(
        published=published.astimezone(UTC),
        title_tokens=frozenset(_content(title_words)),
        tokens=frozenset(_content(all_words)),
        entities=_entities(clean_title, summary),
        shingles=_shingles(all_words),
        title_numbers=_numbers(title_words),
        text=f"{clean_title}. {summary}",
    )


def _stored(story: _Story, event_id: int, identities: tuple[int, ...], seen: datetime) -> _Source:
    # The text is kept only for the days veto, and only until its days are known.
    days, text = story._days, story.text
    if days is not None:
        text = ""
    elif not _MAY_NAME_A_DAY.search(text):
        days, text = _NO_DAYS, ""  # no day can be named without one of those words
    title = tuple(story.title_tokens)
    return _Source(
        event_id=event_id,
        published=story.published,
        tokens=title + tuple(story.tokens - story.title_tokens),
        n_title=len(title),
        entities=tuple(story.entities),
        shingles=array("I", story.shingles),
        title_numbers=tuple(story.title_numbers) if story.title_numbers else (),
        text=text,
        identities=identities,
        last=max(story.published, seen),
        _days=days,
    )


class _ShinglePostings:
    """Which stories carry each (sampled) shingle: a multimap from 32-bit keys to story ids.

    Almost every shingle belongs to one story, so a dict of lists would spend ~80 bytes per
    posting; here the bulk is one sorted numpy array of ``key << 32 | sid`` (8 bytes each),
    and recent additions wait in a small dict until they are merged in, a batch at a time.
    """

    def __init__(self) -> None:
        self._packed = np.empty(0, dtype=np.uint64)
        self._recent: dict[int, list[int]] = {}
        self._pending = 0

    def add(self, key: int, sid: int) -> None:
        """Record that story `sid` carries shingle `key`."""
        got = self._recent.get(key)
        if got is None:
            self._recent[key] = [sid]
        else:
            got.append(sid)
        self._pending += 1
        if self._pending >= max(4096, len(self._packed) // 8):
            self._merge()

    def _merge(self) -> None:
        fresh = np.fromiter(
            ((key << 32) | sid for key, sids in self._recent.items() for sid in sids),
            dtype=np.uint64,
            count=self._pending,
        )
        packed = np.concatenate((self._packed, fresh))
        packed.sort(kind="stable")
        self._packed = packed
        self._recent = {}
        self._pending = 0

    def lookup(self, keys: Iterable[int], limit: int) -> dict[int, int]:
        """Count, per story, how many of `keys` it carries, ignoring any key carried by more
        than `limit` stories (too common to tell stories apart)."""
        counts: dict[int, int] = {}
        keys = keys if isinstance(keys, (set, frozenset)) else set(keys)
        # Sorted: each search then starts where the last one ended.
        wanted = np.sort(np.fromiter(keys, dtype=np.uint64, count=len(keys)))
        packed, recent = self._packed, self._recent
        shifted = wanted << np.uint64(32)
        low = np.searchsorted(packed, shifted, side="left")
        high = np.searchsorted(packed, shifted | np.uint64(_MASK32), side="right")
        # Only the keys some story carries (most of a new story's are in none): those of the
        # merged array, then those only the recent additions carry.
        found = np.flatnonzero(high > low)
        merged = wanted[found].tolist()
        for key, lo, hi in zip(merged, low[found].tolist(), high[found].tolist(), strict=True):
            extra = recent.get(key, ())
            if hi - lo + len(extra) > limit:
                continue
            for sid in (packed[lo:hi] & np.uint64(_MASK32)).tolist():
                counts[sid] = counts.get(sid, 0) + 1
            for sid in extra:
                counts[sid] = counts.get(sid, 0) + 1
        for key in recent.keys() & (keys - set(merged)) if recent else ():
            extra = recent[key]
            if len(extra) > limit:
                continue  # too common
            for sid in extra:
                counts[sid] = counts.get(sid, 0) + 1
        return counts


class EventIndex:
    """An in-memory index of recent events' sources that answers "which event is this?".

    It holds the sources published or ingested within `window` of now: :meth:`prune` forgets
    older ones (a poller calls it every round), so memory follows the news rate, not uptime.
    """

    def __init__(self, window: timedelta = timedelta(hours=72)) -> None:
        """Create an empty index; stories further apart than `window` are never the same."""
        if window <= timedelta(0):
            raise ValueError("window must be positive")
        self.window = window
        self._reset()
        self._last_query: tuple[tuple[str, str, datetime, str | None], _Story] | None = None

    def _reset(self) -> None:
        self._sources: list[_Source] = []
        # The first event of each key and link, by hash (an index holds tens of thousands).
        self._by_identity: dict[int, int] = {}
        self._token_postings: dict[str, array[int]] = {}
        self._shingle_postings = _ShinglePostings()
        self._df: dict[str, int] = {}
        # IDF values are cached; the index size they use is refreshed as the index grows.
        self._idf_cache: dict[str, float] = {}
        self._idf_n = 0
        self._earliest: dict[int, datetime] = {}
        self._oldest: datetime | None = None
        # Pre-scores of stage 3, one slot per source (kept zero between look-ups).
        self._scores = np.zeros(1024, dtype=np.float64)

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
        seen: datetime | None = None,
    ) -> None:
        """Add an event, or a new source of an event already in the index.

        `seen` is when the story was ingested (default: now); see :meth:`prune`.
        """
        last = self._last_query
        if last is not None and last[0] == (title, summary, published, link):
            story, self._last_query = last[1], None  # ingest adds what it just looked up
        else:
            story = _features(title, summary, published)
        if seen is None:
            seen = datetime.now(UTC)
        elif seen.tzinfo is None or seen.utcoffset() is None:
            raise ValueError("seen must be an aware datetime")
        identities = tuple(dict.fromkeys(_identities(link, keys)))
        self._index(_stored(story, event_id, identities, seen.astimezone(UTC)))

    def _index(self, src: _Source) -> None:
        sid = len(self._sources)
        self._sources.append(src)
        event_id = src.event_id
        seen = self._earliest.get(event_id)
        if seen is None or src.published < seen:
            self._earliest[event_id] = src.published
        if self._oldest is None or src.last < self._oldest:
            self._oldest = src.last
        for identity in src.identities:
            self._by_identity.setdefault(identity, event_id)
        self._count(src.tokens, sid + 1)
        postings = self._token_postings
        for tok in {*src.title_tokens, *src.entities}:
            if tok in postings:
                postings[tok].append(sid)
            else:
                postings[tok] = array("I", (sid,))
        # Index one shingle in SHINGLE_SAMPLE (all of a short text): a near copy shares most
        # shingles, so it still shares sampled ones, and the index is a quarter the size.
        add = self._shingle_postings.add
        if len(src.shingles) < 4 * SHINGLE_SAMPLE:
            for sh in src.shingles:
                add(sh, sid)
        else:
            for sh in src.shingles:
                if sh % SHINGLE_SAMPLE == 0:
                    add(sh, sid)

    def _count(self, tokens: Iterable[str], sources: int) -> None:
        """Count a new source's words in `_df`, and keep the IDF memo true to the counts."""
        df, cache = self._df, self._idf_cache
        if sources - self._idf_n > max(10, self._idf_n // 10):
            self._idf_n = sources
            cache.clear()
        # A memoised IDF is updated to the new count (as `_idf` would compute it), not
        # dropped: the next look-ups of these words (the next stories' candidates share
        # them) need not miss.
        top, log = self._idf_n + IDF_PRIOR, math.log
        for tok in tokens:
            count = df[tok] = df.get(tok, 0) + 1
            if tok in cache:
                cache[tok] = log(top / (count + 1))

    def prune(self, now: datetime) -> int:
        """Forget the sources published and ingested more than `window` before `now`; return
        how many.

        Such a source can no longer be the same story as anything published from now on, and
        is not what a fresh index would load. The index is rebuilt from the rest once enough
        have expired, a tenth of it or 1,000, so a prune costs little most rounds.
        """
        cutoff = now - self.window
        if self._oldest is None or self._oldest >= cutoff:
            return 0
        live = [src for src in self._sources if src.last >= cutoff]
        expired = len(self._sources) - len(live)
        if expired < max(1000, len(self._sources) // 10) and live:
            return 0
        self._reset()
        for src in live:
            self._index(src)
        log.debug(
            "event index: forgot %d sources older than %s, kept %d", expired, cutoff, len(live)
        )
        return expired

    # --- saved and loaded whole, so a restart does not recompute every source's features ---

    def state(self) -> dict[str, np.ndarray]:
        """The index as arrays, for a snapshot file: `from_state` rebuilds exactly this index
        (its sources in order, postings, counts and cached IDF values), so it answers every
        `find` as this one would."""
        strings: dict[str, int] = {}
        intern = strings.setdefault

        def ids(values: Iterable[str]) -> list[int]:
            return [intern(v, len(strings)) for v in values]

        sources = self._sources
        n = len(sources)
        tokens = _Runs()
        entities = _Runs()
        numbers = _Runs()
        identities = _Runs()
        days = _Runs()
        shingles = bytearray()
        shingle_start = [0]
        texts: list[int] = []
        no_days: list[bool] = []
        for src in sources:
            tokens.add(ids(src.tokens))
            entities.add(ids(src.entities))
            numbers.add(ids(src.title_numbers))
            identities.add(src.identities)
            shingles += src.shingles.tobytes()
            shingle_start.append(shingle_start[-1] + len(src.shingles))
            texts.append(intern(src.text, len(strings)))
            no_days.append(src._days is None)
            days.add([d.toordinal() for d in src._days or ()])
        postings = _Runs()
        for posting in self._token_postings.values():
            postings.add(posting)
        posting_terms = ids(self._token_postings)
        shingle_postings = self._shingle_postings
        recent = _Runs()
        for sids in shingle_postings._recent.values():
            recent.add(sids)
        df_terms, idf_terms = ids(self._df), ids(self._idf_cache)
        encoded = [v.encode("utf-8", "surrogatepass") for v in strings]
        oldest = self._oldest
        return {
            "scalars": np.array(
                [
                    self.window // _MICROSECOND,
                    self._idf_n,
                    shingle_postings._pending,
                    oldest is not None,
                    0 if oldest is None else _micros(oldest),
                ],
                dtype=np.int64,
            ),
            "strings": np.frombuffer(b"".join(encoded), dtype=np.uint8),
            "string_start": np.cumsum([0, *map(len, encoded)], dtype=np.int64),
            "event": np.array([src.event_id for src in sources], dtype=np.int64),
            "published": np.array([_micros(src.published) for src in sources], dtype=np.int64),
            "last": np.array([_micros(src.last) for src in sources], dtype=np.int64),
            "n_title": np.array([src.n_title for src in sources], dtype=np.int64),
            "text": np.array(texts, dtype=np.int64),
            "no_days": np.array(no_days, dtype=np.bool_),
            **tokens.arrays("tokens", np.uint32, n),
            **entities.arrays("entities", np.uint32, n),
            **numbers.arrays("numbers", np.uint32, n),
            **identities.arrays("identities", np.int64, n),
            **days.arrays("days", np.int64, n),
            "shingles": np.frombuffer(bytes(shingles), dtype=np.uint32),
            "shingles_start": np.array(shingle_start, dtype=np.int64),
            "by_identity": np.array(list(self._by_identity.items()), dtype=np.int64).reshape(-1, 2),
            "posting_terms": np.array(posting_terms, dtype=np.uint32),
            **postings.arrays("postings", np.uint32, len(posting_terms)),
            "packed": shingle_postings._packed,
            "recent_keys": np.array(list(shingle_postings._recent), dtype=np.uint64),
            **recent.arrays("recent", np.uint32, len(shingle_postings._recent)),
            "df_terms": np.array(df_terms, dtype=np.uint32),
            "df": np.array(list(self._df.values()), dtype=np.int64),
            "idf_terms": np.array(idf_terms, dtype=np.uint32),
            "idf": np.array(list(self._idf_cache.values()), dtype=np.float64),
            "earliest": np.array(
                [(e, _micros(at)) for e, at in self._earliest.items()], dtype=np.int64
            ).reshape(-1, 2),
        }

    @classmethod
    def from_state(cls, window: timedelta, state: dict[str, np.ndarray]) -> EventIndex:
        """The index `state` describes (ValueError if it is not of this window, or is not
        whole: a damaged snapshot must not become an index)."""
        scalars = state["scalars"].tolist()
        if len(scalars) != 5 or scalars[0] != window // _MICROSECOND:
            raise ValueError("an event index state of another window")
        index = cls(window)
        blob = state["strings"].tobytes()
        bounds = state["string_start"].tolist()
        words = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in pairwise(bounds)]
        word = words.__getitem__
        event = state["event"].tolist()
        n = len(event)
        columns = ("published", "last", "n_title", "text", "no_days")
        if any(len(state[c]) != n for c in columns):
            raise ValueError("an event index state whose columns differ in length")
        # Each run as a slice of one list (the words already looked up): a restart loads
        # tens of thousands of sources, so no list per source is built on the way.
        tokens, token_start = _Runs.read(state, "tokens", n, word)
        entities, entity_start = _Runs.read(state, "entities", n, word)
        numbers, number_start = _Runs.read(state, "numbers", n, word)
        identities, identity_start = _Runs.read(state, "identities", n)
        days, day_start = _Runs.read(state, "days", n, date.fromordinal)
        shingle_bytes = memoryview(state["shingles"].astype(np.uint32).tobytes())
        shingle_start = state["shingles_start"].tolist()
        if len(shingle_start) != n + 1 or shingle_start[-1] * 4 != len(shingle_bytes):
            raise ValueError("an event index state whose shingles do not add up")
        sources = index._sources
        at = _at
        for i, (published, last, n_title, text, no_days) in enumerate(
            zip(*(state[c].tolist() for c in columns), strict=True)
        ):
            shingles = array("I")
            shingles.frombytes(shingle_bytes[shingle_start[i] * 4 : shingle_start[i + 1] * 4])
            j = i + 1
            sources.append(
                _Source(
                    event_id=event[i],
                    published=at(published),
                    tokens=tuple(tokens[token_start[i] : token_start[j]]),
                    n_title=n_title,
                    entities=tuple(entities[entity_start[i] : entity_start[j]]),
                    shingles=shingles,
                    title_numbers=tuple(numbers[number_start[i] : number_start[j]]),
                    text=words[text],
                    identities=tuple(identities[identity_start[i] : identity_start[j]]),
                    last=at(last),
                    _days=None
                    if no_days
                    else frozenset(days[day_start[i] : day_start[j]]) or _NO_DAYS,
                )
            )
        index._by_identity = dict(state["by_identity"].reshape(-1, 2).tolist())
        terms = state["posting_terms"].tolist()
        sids, sid_start = _Runs.read(state, "postings", len(terms))
        index._token_postings = {
            words[t]: array("I", sids[sid_start[i] : sid_start[i + 1]]) for i, t in enumerate(terms)
        }
        shingle_postings = index._shingle_postings
        shingle_postings._packed = state["packed"].astype(np.uint64)
        keys = state["recent_keys"].tolist()
        recent, recent_start = _Runs.read(state, "recent", len(keys))
        shingle_postings._recent = {
            key: recent[recent_start[i] : recent_start[i + 1]] for i, key in enumerate(keys)
        }
        shingle_postings._pending = scalars[2]
        index._df = dict(
            zip(map(word, state["df_terms"].tolist()), state["df"].tolist(), strict=True)
        )
        index._idf_cache = dict(
            zip(map(word, state["idf_terms"].tolist()), state["idf"].tolist(), strict=True)
        )
        index._idf_n = scalars[1]
        index._earliest = {e: _at(at) for e, at in state["earliest"].reshape(-1, 2).tolist()}
        index._oldest = _at(scalars[4]) if scalars[3] else None
        index._scores = np.zeros(max(1024, n), dtype=np.float64)
        return index

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
        for identity in _identities(link, keys):
            if (hit := self._by_identity.get(identity)) is not None:
                return Match(hit, "identical", 1.0)
        if not self._sources:
            return None
        query = _features(title, summary, published)
        self._last_query = ((title, summary, published, link), query)
        near = self._near_copy(query)
        if near is not None:
            return near
        return self._same_story(query)

    # --- stage 2 -------------------------------------------------------------------------

    def _common_limit(self) -> int:
        return max(COMMON_FLOOR, int(len(self._sources) * COMMON_SHARE))

    def _in_window(self, a: _Story, b: _Source) -> bool:
        return abs(a.published - b.published) <= self.window

    def _near_copy(self, query: _Story) -> Match | None:
        if not query.shingles:
            return None
        counts = self._shingle_postings.lookup(query.shingles, self._common_limit())
        best: Match | None = None
        # Most shared shingles first; ties: the newest story first.
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        for sid, _ in ranked[:MAX_CANDIDATES]:
            src = self._sources[sid]
            shared = len(query.shingles.intersection(src.shingles))
            small = min(len(src.shingles), len(query.shingles))
            union = len(src.shingles) + len(query.shingles) - shared
            jaccard = shared / union
            containment = shared / small
            ok = jaccard >= NEAR_COPY_JACCARD or (
                small >= NEAR_COPY_MIN_SHINGLES and containment >= NEAR_COPY_CONTAINMENT
            )
            if not ok or not self._in_window(query, src):
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

    def _weight(self, tokens: Collection[str]) -> float:
        cache = self._idf_cache
        try:
            return sum(map(cache.__getitem__, tokens))
        except KeyError:
            # The IDFs not memoised yet, then the same sum (in the same order, by `sum`).
            for tok in tokens:
                if tok not in cache:
                    self._idf(tok)
            return sum(map(cache.__getitem__, tokens))

    def _candidates(self, query: _Story) -> list[int]:
        """Return up to MAX_CANDIDATES sources sharing the most (IDF-weighted) title words and
        names with `query`, best first (ties: the newest first)."""
        limit = self._common_limit()
        n = len(self._sources)
        if len(self._scores) < n:
            self._scores = np.zeros(max(n, 2 * len(self._scores)), dtype=np.float64)
        scores = self._scores
        touched: list[array[int]] = []
        for tok in query.title_tokens | query.entities:
            posting = self._token_postings.get(tok)
            if posting is None or len(posting) > limit:
                continue
            # A story carries a word once, so a posting has no repeated ids: += is exact.
            scores[np.frombuffer(posting, dtype=np.uint32)] += self._idf(tok)
            touched.append(posting)
        if not touched:
            return []
        # The sources touched, in id order: their ids sorted, each once (a few thousand; a
        # scan of every source's score, tens of thousands, took 8 times as long, and
        # `np.unique` longer still).
        hits = np.sort(np.frombuffer(b"".join(touched), dtype=np.uint32))
        first = np.empty(len(hits), dtype=np.bool_)
        first[0] = True
        np.not_equal(hits[1:], hits[:-1], out=first[1:])
        sids = hits[first].astype(np.int64)
        values = scores[sids]
        scores[sids] = 0.0
        # A source whose shared words sum to 0 stays out, as when the nonzero scores were
        # scanned for (a word nearly every text has can have an IDF of 0 or below).
        scored = values != 0.0
        sids, values = sids[scored], values[scored]
        if len(sids) > MAX_CANDIDATES:
            top = np.argpartition(-values, MAX_CANDIDATES - 1)[:MAX_CANDIDATES]
            sids, values = sids[top], values[top]
        order = np.lexsort((-sids.astype(np.int64), -values))
        return [int(s) for s in sids[order]]

    def _same_story(self, query: _Story) -> Match | None:
        ranked = self._candidates(query)
        if not ranked:
            return None
        weights = (
            self._weight(query.title_tokens),
            self._weight(query.tokens),
            self._weight(query.entities),
        )
        best: Match | None = None
        for sid in ranked:
            src = self._sources[sid]
            if not self._in_window(query, src):
                continue
            score, title_likeness = self._story_score(query, weights, src)
            if score < self._story_threshold(query, src) or _days_differ(query, src):
                continue
            if _figures_differ(query, src) and title_likeness >= TEMPLATE_TITLE:
                continue
            if best is None or score > best.score:
                best = Match(src.event_id, "same_story", round(score, 3))
        return best

    def _story_score(
        self, query: _Story, weights: tuple[float, float, float], src: _Source
    ) -> tuple[float, float]:
        """Return the likeness of two stories (0..1) and, within it, of their headlines."""
        q_title, q_tokens, q_names = weights
        weight = self._weight
        s_title = weight(src.title_tokens)
        # Cosine of IDF-weighted word sets: shared weight over the geometric mean.
        title = _ratio(weight(query.title_tokens.intersection(src.title_tokens)), q_title, s_title)
        text = _ratio(weight(query.tokens.intersection(src.tokens)), q_tokens, weight(src.tokens))
        names = _ratio(
            weight(query.entities.intersection(src.entities)), q_names, weight(src.entities)
        )
        # How much of each headline the other story's text covers: a retelling covers the
        # other's headline; a follow-up's headline carries news the first story lacks.
        cover_q = weight(query.title_tokens.intersection(src.tokens)) / q_title if q_title else 0.0
        cover_s = weight(query.tokens.intersection(src.title_tokens)) / s_title if s_title else 0.0
        score = (
            W_TITLE * title + W_TEXT * text + W_NAMES * names + W_COVER * (cover_q + cover_s) / 2
        )
        return score, title

    def _story_threshold(self, query: _Story, src: _Source) -> float:
        late = min(abs(query.published - src.published) / SAME_STORY_RAMP, 1.0)
        return SAME_STORY_SCORE + SAME_STORY_LATE_EXTRA * late


def _ratio(shared: float, a: float, b: float) -> float:
    """Return shared / sqrt(a * b): the cosine of two weighted sets (0 when one is empty)."""
    return shared / math.sqrt(a * b) if a and b else 0.0


# --- vetoes ------------------------------------------------------------------------------


def _figures_differ(a: _Story, b: _Source) -> bool:
    """Tell whether both headlines carry figures and none of them agree."""
    return bool(a.title_numbers and b.title_numbers and a.title_numbers.isdisjoint(b.title_numbers))


def _days_differ(a: _Story, b: _Source) -> bool:
    """Tell whether both texts name explicit days and none of them agree."""
    adays, bdays = a.days(), b.days()
    return bool(adays and bdays and not (adays & bdays))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """An aware date in microseconds since the epoch."""
    return (at - _EPOCH) // _MICROSECOND


def _at(micros: int) -> datetime:
    """The UTC date `_micros` gave."""
    return _EPOCH + timedelta(0, 0, micros)


class _Runs:
    """Runs of values, one per item, as one array and where each item's run starts."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.start = [0]

    def add(self, values: Iterable[int]) -> None:
        self.values.extend(values)
        self.start.append(len(self.values))

    def arrays(self, name: str, dtype: type, count: int) -> dict[str, np.ndarray]:
        assert len(self.start) == count + 1
        return {
            name: np.array(self.values, dtype=dtype),
            f"{name}_start": np.array(self.start, dtype=np.int64),
        }

    @staticmethod
    def read(
        state: dict[str, np.ndarray],
        name: str,
        count: int,
        convert: Callable[[int], Any] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """The values saved under `name` (each through `convert`, if given) and where each of
        the `count` runs starts in them, and ends: a run ends where the next starts
        (ValueError if they do not add up)."""
        values, start = state[name], state[f"{name}_start"]
        if len(start) != count + 1 or start[0] != 0 or start[-1] != len(values):
            raise ValueError(f"an event index state whose {name} do not add up")
        if np.any(np.diff(start) < 0):
            raise ValueError(f"an event index state whose {name} run backwards")
        listed = values.tolist()
        return (listed if convert is None else list(map(convert, listed))), start.tolist()
