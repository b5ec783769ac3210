"""Match many watches against an item without trying every watch: index them by anchor words."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Set
from itertools import chain

from timeline.domain.query.document import ANY, Document
from timeline.domain.query.nodes import And, MatchResult, Term, matched_terms
from timeline.domain.query.normalise import add_first3
from timeline.domain.query.parser import Query

log = logging.getLogger(__name__)
# Whether the missing compiled tokeniser was logged (once a process).

# Up to this many stems in the watches' vocabulary, an item's stems are looked up in it (a
# small set stays in the CPU cache); beyond it, making the item's own stem set and probing
# the anchors is cheaper (measured: 1,000 watches use ~2,300 stems, 10,000 ~16,000).
_SMALL_VOCABULARY = 8192


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
        # By slot: the stems whose positions spelling a match looks up (Node.spelled_stems),
        # and title-or-summary stems that must all be present (a first check without a call).
        self._spelled: list[frozenset[str]] = []
        self._required: list[frozenset[str]] = []
        vocabulary: set[str] = set()
        for watch_id, query in watches:
            slot = len(self._watches)
            self._watches.append((watch_id, query))
            self._spelled.append(query.root.spelled_stems())
            self._required.append(_required(query.root))
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
        self._by_stem_t = {key: tuple(slots) for key, slots in self._by_stem.items()}
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
        return self._lookup(doc)[1]

    def _lookup(self, doc: Document) -> tuple[Set[str], list[int]]:
        """Return the watched stems of `doc` and its candidate slots."""
        present = self._present(doc)
        return present, self._candidates(doc, present)

    def _candidates(self, doc: Document, present: Set[str]) -> list[int]:
        # (In C: one set of ints, no call per anchor.)
        slots = set(
            chain.from_iterable(map(self._by_stem_t.__getitem__, self._stems.intersection(present)))
        )
        if self._always:
            slots.update(self._always)
        if self._sources:
            for key in self._sources.intersection(doc.source_stems):
                slots.update(self._by_source[key])
        if self._prefixes:
            prefixes: set[str] = set()
            add_first3(doc.title.words, prefixes)
            add_first3(doc.summary.words, prefixes)
            for key in self._prefixes.intersection(prefixes):
                slots.update(self._by_prefix[key])
        return sorted(slots)

    def verdicts(self, doc: Document) -> tuple[Document, list[int]]:
        """Return `doc` as the watches see it and the slots of those it satisfies (match()
        without spelling the matches)."""
        present, slots = self._lookup(doc)
        if not slots:
            return doc, []
        # (Also when `present` is every stem: the copy's any_stems is faster to read.)
        doc = doc.restricted(present)
        watches = self._watches
        required = self._required
        matched = [
            slot
            for slot in slots
            if required[slot] <= present and watches[slot][1].root.matches(doc)
        ]
        return doc, matched

    def match(self, doc: Document) -> list[tuple[int, MatchResult]]:
        """Return (watch id, match) for every watch that `doc` satisfies."""
        doc, matched = self.verdicts(doc)
        if not matched:
            return []
        watches = self._watches
        spelled = self._spelled
        if len(matched) > 1:
            # Spelling the matches looks up where their words are: find them all in one pass.
            wanted = frozenset().union(*[spelled[slot] for slot in matched])
            doc.title.locate(wanted)
            doc.summary.locate(wanted)
        out: list[tuple[int, MatchResult]] = []
        for slot in matched:
            watch_id, query = watches[slot]
            out.append((watch_id, MatchResult(matched_terms(query.root, doc))))
        return out


def _required(root: object) -> frozenset[str]:
    """Return title-or-summary stems that every document matching `root` contains."""
    if isinstance(root, Term) and root.field == ANY:
        return frozenset((root.stem,))
    if isinstance(root, And):
        return root.words
    return frozenset()
