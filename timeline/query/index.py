"""Match many watches against an item without trying every watch: index them by anchor words."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Set
from operator import itemgetter

from .document import Document
from .nodes import MatchResult, matched_terms
from .parser import Query

log = logging.getLogger(__name__)

# Up to this many stems in the watches' vocabulary, an item's stems are looked up in it (a
# small set stays in the CPU cache); beyond it, making the item's own stem set and probing
# the anchors is cheaper (measured: 1,000 watches use ~2,300 stems, 10,000 ~16,000).
_SMALL_VOCABULARY = 8192
# word -> its first three characters (prefix anchors), in C: faster than a comprehension.
_FIRST_3 = itemgetter(slice(3))


class WatchIndex:
    """Compiled watches, indexed by the words one of which any matching item must contain.

    Each query yields an anchor set (its most selective required word, or every alternative
    of an OR); an item only evaluates the watches whose anchors it contains. Queries with no
    usable anchor (a short prefix, only `source:`) are evaluated on every item.

    With a small vocabulary, an item's title and summary are not turned into a set of all
    their stems: the index only looks for the stems its watches use (anchors, and every
    title-or-summary word of every query), and evaluates its watches on the item restricted
    to those (Document.restricted), which answers the same for them.
    """

    def __init__(self, watches: Iterable[tuple[int, Query]]) -> None:
        self._watches: list[tuple[int, Query]] = []
        # Anchors by kind: a stem in title/summary, a stem of the source, a 3-letter prefix.
        self._by_stem: dict[str, list[int]] = {}
        self._by_source: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        self._always: list[int] = []
        vocabulary: set[str] = set()
        for watch_id, query in watches:
            slot = len(self._watches)
            self._watches.append((watch_id, query))
            vocabulary |= query.root.any_stems_used()
            keys = query.root.anchors()
            if not keys:
                self._always.append(slot)
                continue
            for key in keys:
                if key.startswith("\x01"):
                    self._by_source.setdefault(key[1:], []).append(slot)
                elif key.startswith("\x02"):
                    self._by_prefix.setdefault(key[1:], []).append(slot)
                else:
                    self._by_stem.setdefault(key, []).append(slot)
        self._stems = frozenset(self._by_stem)
        self._sources = frozenset(self._by_source)
        self._prefixes = frozenset(self._by_prefix)
        # Every title-or-summary stem a watch may look for: anchors (title: and summary:
        # words included) and the words of each query.
        vocabulary |= self._stems
        self._vocabulary = frozenset(vocabulary) if len(vocabulary) <= _SMALL_VOCABULARY else None

    def __len__(self) -> int:
        return len(self._watches)

    def _present(self, doc: Document) -> Set[str]:
        """Return the stems of `doc`'s title and summary, or those that some watch looks for."""
        if self._vocabulary is None:
            return doc.any_stems
        return self._vocabulary.intersection(doc.title.stems + doc.summary.stems)

    def candidates(self, doc: Document) -> list[int]:
        """Return the slots of the watches worth evaluating on `doc`, in insertion order."""
        return self._candidates(doc, self._present(doc))

    def _candidates(self, doc: Document, present: Set[str]) -> list[int]:
        slots: set[int] = set(self._always)
        by_stem = self._by_stem
        for key in self._stems.intersection(present):
            slots.update(by_stem[key])
        if self._sources:
            for key in self._sources.intersection(doc.source_stems):
                slots.update(self._by_source[key])
        if self._prefixes:
            seen = set(map(_FIRST_3, doc.title.words))
            seen.update(map(_FIRST_3, doc.summary.words))
            for key in self._prefixes.intersection(seen):
                slots.update(self._by_prefix[key])
        return sorted(slots)

    def match(self, doc: Document) -> list[tuple[int, MatchResult]]:
        """Return (watch id, match) for every watch that `doc` satisfies."""
        out: list[tuple[int, MatchResult]] = []
        present = self._present(doc)
        slots = self._candidates(doc, present)
        if not slots:
            return out
        # (Also when `present` is every stem: the copy's any_stems is faster to read.)
        doc = doc.restricted(present)
        watches = self._watches
        for slot in slots:
            watch_id, query = watches[slot]
            root = query.root
            if root.matches(doc):
                out.append((watch_id, MatchResult(matched_terms(root, doc))))
        return out
