"""A news item tokenised once, ready to be matched against any number of watches."""

from __future__ import annotations

import bisect
from collections.abc import Set
from urllib.parse import urlsplit

from timeline.domain.query.normalise import locate, starting, tokens, word_spans

# Fields a query term can be restricted to. ANY means title or summary.
ANY = "any"
TITLE = "title"
SUMMARY = "summary"
SOURCE = "source"
_RANK = {TITLE: 0, SUMMARY: 1}
# Source segments and their stems by source names: every item of a feed has the same ones.
# (A Segment only ever caches what it can compute from its text, so sharing one is safe.)
_SOURCES: dict[tuple[str, ...], tuple[tuple[Segment, ...], frozenset[str]]] = {}
_SOURCES_MAX = 4096


class Segment:
    """One run of tokens (a title, a summary, a source name): phrases never cross segments."""

    __slots__ = (
        "_low",
        "_positions",
        "_set",
        "_sorted",
        "_stems",
        "_words",
        "field",
        "rank",
        "text",
    )

    def __init__(self, field: str, text: str) -> None:
        self.field = field
        # Matched terms are listed title first, then summary, then anything else.
        self.rank = _RANK.get(field, 2)
        self.text = text
        self._words, self._stems = tokens(text)
        self._positions: dict[str, list[int]] | None = None
        self._sorted: list[str] | None = None
        self._set: set[str] | None = None
        self._low: str | None = None

    @property
    def stems(self) -> list[str]:
        """Return the stem of each word."""
        return self._stems

    def has(self, stem: str) -> bool:
        """Tell whether some word of this segment has stem `stem`."""
        return stem in self.stem_set

    def followed_by(self, position: int, rest: list[str]) -> bool:
        """Tell whether the stems right after `position` are `rest`."""
        return self._stems[position + 1 : position + 1 + len(rest)] == rest

    @property
    def words(self) -> list[str]:
        """Return the normalised, unstemmed words."""
        return self._words

    def word(self, i: int) -> str:
        """Return word `i`."""
        return self._words[i]

    @property
    def low(self) -> str:
        """Return the text lower-cased (computed once; for finding ASCII spellings)."""
        if self._low is None:
            self._low = self.text.lower()
        return self._low

    @property
    def stem_set(self) -> set[str]:
        """Return the set of stems in this segment."""
        if self._set is None:
            self._set = set(self._stems)
        return self._set

    def positions(self, stem: str) -> list[int]:
        """Return the token positions whose stem is `stem`."""
        if self._positions is None:
            self._positions = {}
        found = self._positions.get(stem)
        if found is None:
            # list.count and list.index scan in C: cheaper than building a set or a table of
            # every token when only a few stems are looked up (and no ValueError to raise).
            seq = self._stems
            found = []
            i = -1
            for _ in range(seq.count(stem)):
                i = seq.index(stem, i + 1)
                found.append(i)
            self._positions[stem] = found
        return found

    def locate(self, wanted: frozenset[str]) -> None:
        """Find the positions of every stem of `wanted` in one pass (see positions()).

        Worth it before looking up many stems: each positions() call scans every token.
        """
        known = self._positions
        if known is None:
            known = self._positions = {}
        found = locate(self._stems, wanted)
        for stem in wanted:
            if stem not in known:
                known[stem] = found.get(stem) or []

    def prefix_positions(self, prefix: str) -> list[int]:
        """Return the token positions whose (unstemmed) word starts with `prefix`."""
        return starting(self._words, prefix)

    def has_prefix(self, prefix: str) -> bool:
        """Tell whether some (unstemmed) word of this segment starts with `prefix`."""
        if self._sorted is None:
            self._sorted = sorted(set(self._words))
        i = bisect.bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix)


def _ascii_find(low: str, words: list[str]) -> tuple[int, int] | None:
    """Find `words` as consecutive tokens in lower-cased ASCII `low`; return the span."""
    n = len(low)
    first = words[0]
    pos = 0
    while (i := low.find(first, pos)) >= 0:
        pos = i + 1
        if i > 0 and low[i - 1].isalnum():
            continue
        j = i + len(first)
        for w in words[1:]:
            k = j
            # Tokens are separated by punctuation, possibly after a dropped possessive 's.
            if low.startswith("'s", k) and (k + 2 == n or not low[k + 2].isalnum()):
                k += 2
            while k < n and not low[k].isalnum():
                k += 1
            if k == j or not low.startswith(w, k):
                break
            j = k + len(w)
        else:
            if j == n or not low[j].isalnum():
                return i, j
    return None


def feed_source_names(name: str | None, url: str | None) -> tuple[str, ...]:
    """Return the source names of a feed for `source:` terms: its name and its URL's domain."""
    names: list[str] = []
    if name:
        names.append(name)
    if url:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if host:
            names.append(host.lower().removeprefix("www."))
    return tuple(names)


def _source_segments(names: tuple[str, ...]) -> tuple[tuple[Segment, ...], frozenset[str]]:
    """Return the segments of source names `names` and their stems (cached)."""
    got = _SOURCES.get(names)
    if got is None:
        if len(_SOURCES) >= _SOURCES_MAX:
            _SOURCES.clear()
        segments = tuple(Segment(SOURCE, n) for n in names)
        got = _SOURCES[names] = (segments, frozenset(s for seg in segments for s in seg.stems))
    return got


class Document:
    """A news item (title, summary, source names) normalised once for all watches."""

    __slots__ = (
        "_any_stems",
        "_spans",
        "_surfaces",
        "source",
        "source_names",
        "source_stems",
        "summary",
        "title",
    )

    def __init__(self, title: str, summary: str = "", source_names: tuple[str, ...] = ()) -> None:
        self.title = Segment(TITLE, title or "")
        self.summary = Segment(SUMMARY, summary or "")
        self.source_names = tuple(source_names)
        self.source, self.source_stems = _source_segments(self.source_names)
        # Made on first use (a WatchIndex gets by with the few stems its watches look for);
        # so are these two, as most items match no watch.
        self._any_stems: Set[str] | None = None
        self._spans: dict[str, list[tuple[str, int, int]] | None] | None = None
        self._surfaces: dict[tuple[int, int, int], str] | None = None

    @property
    def any_stems(self) -> Set[str]:
        """Return the set of stems in the title and summary."""
        got = self._any_stems
        if got is None:
            got = self._any_stems = set(self.title.stems)
            got.update(self.summary.stems)
        return got

    def restricted(self, any_stems: Set[str]) -> Document:
        """Return this document with `any_stems` replaced by a subset of it.

        The copy shares the segments. It answers exactly like this document for every query
        that only looks up title-or-summary stems in `any_stems` (see Node.any_stems_used):
        a WatchIndex passes the stems of the item that its watches look for.
        """
        doc = _Restricted.__new__(_Restricted)
        doc.title = self.title
        doc.summary = self.summary
        doc.source_names = self.source_names
        doc.source = self.source
        doc.source_stems = self.source_stems
        doc.any_stems = any_stems
        doc._any_stems = any_stems
        doc._spans = None
        doc._surfaces = None
        return doc

    def segments(self, field: str) -> tuple[Segment, ...]:
        """Return the segments a term restricted to `field` looks at."""
        if field == ANY:
            return (self.title, self.summary)
        if field == TITLE:
            return (self.title,)
        if field == SUMMARY:
            return (self.summary,)
        return self.source

    def stem_set(self, field: str) -> Set[str]:
        """Return the set of stems present in `field`."""
        if field == ANY:
            return self.any_stems
        if field == SOURCE:
            return self.source_stems
        return self.segments(field)[0].stem_set

    def surface(self, segment: Segment, start: int, end: int) -> str:
        """Return the original text of tokens start..end-1 of `segment` (for bolding)."""
        surfaces = self._surfaces
        if surfaces is None:
            surfaces = self._surfaces = {}
        key = (id(segment), start, end)
        got = surfaces.get(key)
        if got is None:
            got = surfaces[key] = self._surface(segment, start, end)
        return got

    def _surface(self, segment: Segment, start: int, end: int) -> str:
        if segment.text.isascii():
            # Fast path: folded ASCII is the lower-cased text, so finding the words in it
            # gives their first spelling without locating every token.
            found = _ascii_find(segment.low, segment.words[start:end])
            if found is not None:
                return segment.text[found[0] : found[1]]
        if self._spans is None:
            self._spans = {}
        if segment.field not in self._spans:
            self._spans[segment.field] = word_spans(segment.text)
        located = self._spans[segment.field]
        if located is None or end > len(located):
            return " ".join(segment.words[start:end])
        return segment.text[located[start][1] : located[end - 1][2]]

    def __repr__(self) -> str:
        return f"Document(title={self.title.text[:60]!r}, sources={self.source_names!r})"


class _Restricted(Document):
    """A Document made by Document.restricted: `any_stems` is a plain slot (nodes read it
    often, and a slot is read several times faster than a property)."""

    __slots__ = ("any_stems",)
    any_stems: Set[str]
