"""Match many watches against an item without trying every watch: index them by anchor words."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .document import Document
from .nodes import MatchResult, matched_terms
from .parser import Query

log = logging.getLogger(__name__)


class WatchIndex:
    """Compiled watches, indexed by the words one of which any matching item must contain.

    Each query yields an anchor set (its most selective required word, or every alternative
    of an OR); an item only evaluates the watches whose anchors it contains. Queries with no
    usable anchor (a short prefix, only `source:`) are evaluated on every item.
    """

    def __init__(self, watches: Iterable[tuple[int, Query]]) -> None:
        self._watches: list[tuple[int, Query]] = []
        self._by_key: dict[str, list[int]] = {}
        self._always: list[int] = []
        self._source_keys = False
        self._prefix_keys = False
        for watch_id, query in watches:
            slot = len(self._watches)
            self._watches.append((watch_id, query))
            keys = query.root.anchors()
            if not keys:
                self._always.append(slot)
                continue
            for key in keys:
                self._by_key.setdefault(key, []).append(slot)
                if key.startswith("\x01"):
                    self._source_keys = True
                elif key.startswith("\x02"):
                    self._prefix_keys = True
        self._keys = frozenset(self._by_key)

    def __len__(self) -> int:
        return len(self._watches)

    def candidates(self, doc: Document) -> list[int]:
        """Return the slots of the watches worth evaluating on `doc`, in insertion order."""
        by_key = self._by_key
        slots: set[int] = set(self._always)
        for key in self._keys.intersection(doc.any_stems):
            slots.update(by_key[key])
        if self._source_keys:
            for s in doc.source_stems:
                slots.update(by_key.get("\x01" + s, ()))
        if self._prefix_keys:
            seen: set[str] = set()
            for seg in (doc.title, doc.summary):
                for w in seg.words:
                    if len(w) >= 3:
                        seen.add("\x02" + w[:3])
            for key in self._keys.intersection(seen):
                slots.update(by_key[key])
        return sorted(slots)

    def match(self, doc: Document) -> list[tuple[int, MatchResult]]:
        """Return (watch id, match) for every watch that `doc` satisfies."""
        out: list[tuple[int, MatchResult]] = []
        watches = self._watches
        for slot in self.candidates(doc):
            watch_id, query = watches[slot]
            root = query.root
            if root.matches(doc):
                out.append((watch_id, MatchResult(matched_terms(root, doc))))
        return out
