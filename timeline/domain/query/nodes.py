"""The compiled query tree: evaluation on a Document, watch-index anchors, FTS translation."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from timeline.domain.query.document import ANY, SOURCE, TITLE, Document, Segment

# Longest token the full-text index stores; longer tokens are cut and searched by prefix.
FTS_TOKEN_CHARS = 64
# Most occurrences of one term reported for highlighting.
_MAX_HITS_PER_TERM = 50

# Title tokens are also indexed with this mark, so `title:` terms get precise candidates
# (titles are short: this costs a dozen tokens per entry). Alphanumeric, like every token.
TITLE_MARK = "0t"
# Two consecutive stems are also indexed as one token joined by this (non-ASCII, so FTS5's
# ascii tokenizer keeps it inside the token): a phrase whose words are common but which is
# rare itself ("dual use") then has few candidates. detail=none stores no positions.
PAIR_MARK = "\u00b7"
# An FTS candidate expression: None means "no restriction" (every row is a candidate).
# Kinds: term, prefix, pair (an adjacent-stems token; SQLite only), and, or.
FtsExpr = tuple[str, object] | None
# A place in a document where a term matched: (segment, first token, end token).
Hit = tuple[Segment, int, int]


def _fts_word(stem: str, field: str = ANY) -> FtsExpr:
    if field == TITLE:
        stem = TITLE_MARK + stem
    if len(stem) > FTS_TOKEN_CHARS:
        return ("prefix", stem[:FTS_TOKEN_CHARS])
    return ("term", stem)


def pair_token(first: str, second: str) -> str:
    """Return the index token for stem `first` directly followed by stem `second`."""
    return (first + PAIR_MARK + second)[:FTS_TOKEN_CHARS]


def _cost(keys: frozenset[str]) -> float:
    """Guess how often an anchor set fires: long words are rarer than short ones."""
    total = 0.0
    for key in keys:
        total += 12.0 / (len(key) + 1)
        if key.startswith("\x02"):
            total += 3.0
    return total


class Node:
    """A node of a compiled query."""

    __slots__ = ()

    def matches(self, doc: Document) -> bool:
        """Tell whether `doc` satisfies this node."""
        raise NotImplementedError

    def positive(self) -> bool:
        """Tell whether every way of satisfying this node needs some word to be present."""
        raise NotImplementedError

    def anchors(self) -> frozenset[str] | None:
        """Return keys of which any matching document contains one (None: cannot tell)."""
        raise NotImplementedError

    def fts(self) -> FtsExpr:
        """Return a full-text condition every matching document satisfies (a superset)."""
        raise NotImplementedError

    def hits(self, doc: Document, out: list[Hit]) -> None:
        """Append where this node's positive terms occur in `doc` (for highlighting)."""
        raise NotImplementedError

    def any_stems_used(self) -> frozenset[str]:
        """Return every stem this node may look up in `Document.any_stems` (or stem_set(ANY)).

        Matching against a document whose any_stems holds only the ones of these it contains
        (Document.restricted) gives the same answers.
        """
        return frozenset().union(*(child.any_stems_used() for child in self.children()))

    def spelled_stems(self) -> frozenset[str]:
        """Return every stem whose title and summary positions hits() may look up.

        A caller spelling several matches of one document finds them all in one pass first
        (Segment.locate).
        """
        return frozenset().union(*(child.spelled_stems() for child in self.children()))

    def prefixes_used(self) -> frozenset[str]:
        """Return the 3-letter starts of the title-or-summary word prefixes this node tests."""
        return frozenset().union(*(child.prefixes_used() for child in self.children()))

    def children(self) -> Iterator[Node]:
        """Yield the direct sub-nodes."""
        return iter(())


class Leaf(Node):
    """A term, a prefix or a phrase, possibly restricted to one field."""

    __slots__ = ("field",)
    field: str

    def allows(self, segment: Segment) -> bool:
        """Tell whether this leaf looks at `segment`."""
        if self.field == ANY:
            return segment.field != SOURCE
        return segment.field == self.field

    def starts(self, segment: Segment) -> list[int]:
        """Return the sorted token positions in `segment` where this leaf occurs."""
        raise NotImplementedError

    @property
    def length(self) -> int:
        return 1

    def positive(self) -> bool:
        return True

    def any_stems_used(self) -> frozenset[str]:
        # Each kind of leaf says what it looks up: no default that could forget one.
        raise NotImplementedError

    def hits(self, doc: Document, out: list[Hit]) -> None:
        if self.field == SOURCE:
            return
        for segment in doc.segments(self.field):
            for start in self.starts(segment)[:_MAX_HITS_PER_TERM]:
                out.append((segment, start, start + self.length))

    def _prefix_field(self) -> str:
        return "" if self.field == ANY else f"{self.field}:"


class Term(Leaf):
    """One word, matched by stem: `drone` matches "drones"."""

    __slots__ = ("stem", "word")

    def __init__(self, field: str, word: str, stem: str) -> None:
        self.field = field
        self.word = word
        self.stem = stem

    def matches(self, doc: Document) -> bool:
        field = self.field
        if field == ANY:
            return self.stem in doc.any_stems
        if field == SOURCE:
            return self.stem in doc.source_stems
        return doc.segments(field)[0].has(self.stem)

    def any_stems_used(self) -> frozenset[str]:
        return frozenset((self.stem,)) if self.field == ANY else frozenset()

    def spelled_stems(self) -> frozenset[str]:
        return frozenset() if self.field == SOURCE else frozenset((self.stem,))

    def starts(self, segment: Segment) -> list[int]:
        return segment.positions(self.stem) if self.allows(segment) else []

    def hits(self, doc: Document, out: list[Hit]) -> None:
        field = self.field
        if field == SOURCE:
            return
        stem = self.stem
        for segment in (doc.title, doc.summary) if field == ANY else doc.segments(field):
            found = segment.positions(stem)
            if found:
                out.extend([(segment, start, start + 1) for start in found[:_MAX_HITS_PER_TERM]])

    def anchors(self) -> frozenset[str] | None:
        return frozenset({("\x01" + self.stem) if self.field == SOURCE else self.stem})

    def fts(self) -> FtsExpr:
        return None if self.field == SOURCE else _fts_word(self.stem, self.field)

    def __str__(self) -> str:
        return f"{self._prefix_field()}{self.word}"


class Prefix(Leaf):
    """A word prefix, matched on unstemmed words: `Iran*` matches "Iranian"."""

    __slots__ = ("prefix",)

    def __init__(self, field: str, prefix: str) -> None:
        self.field = field
        self.prefix = prefix

    def matches(self, doc: Document) -> bool:
        return any(seg.has_prefix(self.prefix) for seg in doc.segments(self.field))

    def any_stems_used(self) -> frozenset[str]:
        return frozenset()  # prefixes are matched on words

    def spelled_stems(self) -> frozenset[str]:
        return frozenset()

    def prefixes_used(self) -> frozenset[str]:
        if self.field == SOURCE or len(self.prefix) < 3:
            return frozenset()
        return frozenset((self.prefix[:3],))

    def starts(self, segment: Segment) -> list[int]:
        return segment.prefix_positions(self.prefix) if self.allows(segment) else []

    def anchors(self) -> frozenset[str] | None:
        if self.field == SOURCE or len(self.prefix) < 3:
            return None
        return frozenset({"\x02" + self.prefix[:3]})

    def fts(self) -> FtsExpr:
        if self.field == SOURCE:
            return None
        mark = TITLE_MARK if self.field == TITLE else ""
        return ("prefix", (mark + self.prefix)[:FTS_TOKEN_CHARS])

    def __str__(self) -> str:
        return f"{self._prefix_field()}{self.prefix}*"


class Phrase(Leaf):
    """Consecutive words: `"war machine"`, or a hyphenated word such as `dual-use`."""

    __slots__ = ("_first", "_rest", "_set", "stems", "words")

    def __init__(self, field: str, words: tuple[str, ...], stems: tuple[str, ...]) -> None:
        self.field = field
        self.words = words
        self.stems = stems
        self._set = frozenset(stems)
        self._first = stems[0]
        self._rest = list(stems[1:])

    @property
    def length(self) -> int:
        return len(self.stems)

    def matches(self, doc: Document) -> bool:
        field = self.field
        if field == ANY or field == SOURCE:
            if not self._set <= doc.stem_set(field):
                return False
        else:
            segment = doc.segments(field)[0]
            if not all(segment.has(s) for s in self._set):
                return False
        return any(self._occurs(seg) for seg in doc.segments(field))

    def any_stems_used(self) -> frozenset[str]:
        return self._set if self.field == ANY else frozenset()

    def spelled_stems(self) -> frozenset[str]:
        # (Every stem: a wanted phrase is checked on the scan's positions, not on all stems.)
        return frozenset() if self.field == SOURCE else self._set

    def _occurs(self, segment: Segment) -> bool:
        rest = self._rest
        return any(segment.followed_by(p, rest) for p in segment.positions(self._first))

    def starts(self, segment: Segment) -> list[int]:
        if not self.allows(segment):
            return []
        rest = self._rest
        # (A slice past the end is shorter than `rest`, so it never compares equal.)
        return [p for p in segment.positions(self._first) if segment.followed_by(p, rest)]

    def anchors(self) -> frozenset[str] | None:
        best = max(self.stems, key=len)
        return frozenset({("\x01" + best) if self.field == SOURCE else best})

    def fts(self) -> FtsExpr:
        if self.field == SOURCE:
            return None
        parts = [_fts_word(s, self.field) for s in dict.fromkeys(self.stems)]
        pairs = dict.fromkeys(pair_token(a, b) for a, b in pairwise(self.stems))
        parts.extend(("pair", p) for p in pairs)
        return ("and", tuple(parts))

    def __str__(self) -> str:
        return f'{self._prefix_field()}"{" ".join(self.words)}"'


class Near(Node):
    """Words or phrases at most `distance` tokens apart, in either order (FTS5's NEAR)."""

    __slots__ = ("distance", "operands")

    def __init__(self, operands: tuple[Leaf, ...], distance: int) -> None:
        self.operands = operands
        self.distance = distance

    def children(self) -> Iterator[Node]:
        return iter(self.operands)

    def matches(self, doc: Document) -> bool:
        if not all(op.matches(doc) for op in self.operands):
            return False
        segments = [doc.title, doc.summary, *doc.source]
        return any(self._near_in(seg) for seg in segments)

    def _near_in(self, segment: Segment) -> bool:
        starts = [op.starts(segment) for op in self.operands]
        if not all(starts):
            return False
        lengths = [op.length for op in self.operands]
        # Try each occurrence as the one that starts last; every other operand then takes
        # its latest occurrence that starts no later, which ends as late as possible.
        for k, own in enumerate(starts):
            for x in own:
                min_end = x + lengths[k]
                ok = True
                for j, other in enumerate(starts):
                    if j == k:
                        continue
                    i = bisect.bisect_right(other, x) - 1
                    if i < 0:
                        ok = False
                        break
                    min_end = min(min_end, other[i] + lengths[j])
                if ok and x - min_end <= self.distance:
                    return True
        return False

    def positive(self) -> bool:
        return True

    def anchors(self) -> frozenset[str] | None:
        return _best([op.anchors() for op in self.operands])

    def fts(self) -> FtsExpr:
        return _fts_and([op.fts() for op in self.operands])

    def hits(self, doc: Document, out: list[Hit]) -> None:
        for op in self.operands:
            op.hits(doc, out)

    def __str__(self) -> str:
        return f" NEAR/{self.distance} ".join(str(op) for op in self.operands)


def _any_terms(items: tuple[Node, ...]) -> tuple[frozenset[str], tuple[Node, ...]]:
    """Split `items` into the stems of plain title-or-summary words and the other nodes."""
    words = frozenset(i.stem for i in items if isinstance(i, Term) and i.field == ANY)
    rest = tuple(i for i in items if not (isinstance(i, Term) and i.field == ANY))
    return words, rest


class And(Node):
    """Every child must hold."""

    __slots__ = ("_rest", "_words", "items")

    def __init__(self, items: tuple[Node, ...]) -> None:
        self.items = items
        # Plain words are checked in one set operation, before the slower children.
        self._words, self._rest = _any_terms(items)

    def children(self) -> Iterator[Node]:
        return iter(self.items)

    @property
    def words(self) -> frozenset[str]:
        """Return the stems of this node's plain title-or-summary words (all must be present)."""
        return self._words

    def matches(self, doc: Document) -> bool:
        if not self._words <= doc.any_stems:
            return False
        for item in self._rest:
            if not item.matches(doc):
                return False
        return True

    def positive(self) -> bool:
        return any(item.positive() for item in self.items)

    def anchors(self) -> frozenset[str] | None:
        return _best([item.anchors() for item in self.items])

    def fts(self) -> FtsExpr:
        return _fts_and([item.fts() for item in self.items])

    def hits(self, doc: Document, out: list[Hit]) -> None:
        for item in self.items:
            item.hits(doc, out)

    def __str__(self) -> str:
        return " ".join(_wrap(item) for item in self.items)


class Or(Node):
    """At least one child must hold."""

    __slots__ = ("_plain", "_rest", "_words", "items")

    def __init__(self, items: tuple[Node, ...]) -> None:
        self.items = items
        self._words, self._rest = _any_terms(items)
        # For hits(): each child, with its stem when it is a plain title-or-summary word.
        self._plain = tuple(
            (i, i.stem if isinstance(i, Term) and i.field == ANY else None) for i in items
        )

    def children(self) -> Iterator[Node]:
        return iter(self.items)

    def matches(self, doc: Document) -> bool:
        if not self._words.isdisjoint(doc.any_stems):
            return True
        for item in self._rest:
            if item.matches(doc):
                return True
        return False

    def positive(self) -> bool:
        return all(item.positive() for item in self.items)

    def anchors(self) -> frozenset[str] | None:
        keys: set[str] = set()
        for item in self.items:
            got = item.anchors()
            if got is None:
                return None
            keys |= got
        return frozenset(keys)

    def fts(self) -> FtsExpr:
        parts = []
        for item in self.items:
            got = item.fts()
            if got is None:
                return None
            parts.append(got)
        return ("or", tuple(parts))

    def hits(self, doc: Document, out: list[Hit]) -> None:
        present = doc.any_stems
        for item, stem in self._plain:
            if (stem in present) if stem is not None else item.matches(doc):
                item.hits(doc, out)

    def __str__(self) -> str:
        return "(" + " OR ".join(_wrap(item) for item in self.items) + ")"


class Not(Node):
    """The child must not hold."""

    __slots__ = ("item",)

    def __init__(self, item: Node) -> None:
        self.item = item

    def children(self) -> Iterator[Node]:
        return iter((self.item,))

    def matches(self, doc: Document) -> bool:
        return not self.item.matches(doc)

    def positive(self) -> bool:
        return False

    def anchors(self) -> frozenset[str] | None:
        return None

    def fts(self) -> FtsExpr:
        return None

    def hits(self, doc: Document, out: list[Hit]) -> None:
        return None

    def spelled_stems(self) -> frozenset[str]:
        return frozenset()

    def __str__(self) -> str:
        # "--x" would read back as x (two negations cancel): keep the group.
        return "-" + (f"({self.item})" if isinstance(self.item, Not) else _wrap(self.item))


def _wrap(node: Node) -> str:
    return f"({node})" if isinstance(node, And) else str(node)


def _best(options: list[frozenset[str] | None]) -> frozenset[str] | None:
    usable = [o for o in options if o]
    if not usable:
        return None
    return min(usable, key=_cost)


def _fts_and(parts: list[FtsExpr]) -> FtsExpr:
    kept = tuple(p for p in parts if p is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else ("and", kept)


@dataclass(frozen=True, slots=True)
class MatchResult:
    """A successful match: the matched words and phrases as they appear in the item."""

    terms: tuple[str, ...]


def matched_terms(root: Node, doc: Document) -> tuple[str, ...]:
    """Return the surface forms of the positive terms of `root` found in `doc`, in order."""
    found: list[Hit] = []
    root.hits(doc, found)
    if len(found) > 1:
        found.sort(key=_hit_order)
    # One spelling per normalised form (the first): highlight() bolds every spelling anyway.
    seen: dict[str, str] = {}
    for segment, start, end in found:
        if end == start + 1:
            key = segment.word(start)
        else:
            key = " ".join([segment.word(i) for i in range(start, end)])
        if key not in seen:
            seen[key] = doc.surface(segment, start, end)
    return tuple(seen.values())


def _hit_order(hit: Hit) -> tuple[int, int, int]:
    return (hit[0].rank, hit[1], -hit[2])
