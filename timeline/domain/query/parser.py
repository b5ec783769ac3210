"""Parse the watch/search query language into a compiled tree (see the package docstring)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from timeline.domain.errors import BadQuery
from timeline.domain.query.document import ANY, SOURCE, SUMMARY, TITLE, Document
from timeline.domain.query.nodes import (
    And,
    Leaf,
    MatchResult,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    matched_terms,
)
from timeline.domain.query.normalise import stem, words

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 1000
MAX_DEPTH = 32
MAX_TERMS = 200
MAX_NEAR = 100
DEFAULT_NEAR = 10
MIN_PREFIX_CHARS = 2
FIELDS = {"title": TITLE, "summary": SUMMARY, "source": SOURCE}
_OPEN_QUOTES = {'"': '"', "“": "”", "„": "“"}
_WORD_END = set('()"“”„')
_FIELD_RE = re.compile(r"([A-Za-z]+):")
_NEAR_RE = re.compile(r"NEAR(?:/(\d{1,4}))?\Z")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ( ) phrase word neg field alias OR AND NOT NEAR
    value: str
    col: int  # 1-based


def _lex(text: str) -> list[_Tok]:  # noqa: C901 (a lexer: one branch per token kind)
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c, c, col))
            i += 1
        elif c in _OPEN_QUOTES:
            j = text.find(_OPEN_QUOTES[c], i + 1)
            if j < 0 and c != '"':
                j = text.find('"', i + 1)
            if j < 0:
                raise BadQuery("unbalanced quote", col)
            toks.append(_Tok("phrase", text[i + 1 : j], col))
            i = j + 1
        elif c in "”":
            raise BadQuery("unbalanced quote", col)
        elif c == "-" and (i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")"):
            raise BadQuery("dangling '-': put the word to exclude right after it", col)
        elif c == "-":
            toks.append(_Tok("neg", c, col))
            i += 1
        elif c == "@":
            j = i + 1
            while j < n and not text[j].isspace() and text[j] not in _WORD_END:
                j += 1
            if j == i + 1:
                raise BadQuery("'@' needs an alias name", col)
            toks.append(_Tok("alias", text[i + 1 : j], col))
            i = j
        else:
            m = _FIELD_RE.match(text, i)
            if m and m.group(1).lower() in FIELDS and (m.end() >= n or text[m.end()].isspace()):
                raise BadQuery(f"'{m.group(0)}' needs a word, phrase or group after it", col)
            if m and m.end() < n and not text[m.end()].isspace():
                name = m.group(1)
                if name.lower() not in FIELDS:
                    known = ", ".join(f"{f}:" for f in FIELDS)
                    raise BadQuery(f"unknown field '{name}:' (known: {known})", col)
                toks.append(_Tok("field", name.lower(), col))
                i = m.end()
                continue
            j = i
            while j < n and not text[j].isspace() and text[j] not in _WORD_END:
                j += 1
            word = text[i:j]
            if word in ("OR", "AND", "NOT"):
                toks.append(_Tok(word, word, col))
            elif word.startswith("NEAR") and (len(word) == 4 or word[4] == "/"):
                nm = _NEAR_RE.match(word)
                if not nm:
                    raise BadQuery("NEAR takes a distance like NEAR/2", col)
                distance = int(nm.group(1)) if nm.group(1) else DEFAULT_NEAR
                if distance > MAX_NEAR:
                    raise BadQuery(f"NEAR distance is at most {MAX_NEAR}", col)
                toks.append(_Tok("NEAR", str(distance), col))
            else:
                toks.append(_Tok("word", word, col))
            i = j
    return toks


@dataclass
class _Context:
    aliases: dict[str, str]
    cache: dict[str, tuple[Node | None, int]] = field(default_factory=dict)
    leaves: int = 0


class _Parser:
    def __init__(self, text: str, ctx: _Context, stack: tuple[str, ...], depth: int) -> None:
        self.toks = _lex(text)
        self.pos = 0
        self.ctx = ctx
        self.stack = stack
        self.depth0 = depth
        self.end_col = len(text) + 1

    # -- helpers ------------------------------------------------------------------------
    def peek(self) -> _Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def count_leaf(self, col: int, n: int = 1) -> None:
        self.ctx.leaves += n
        if self.ctx.leaves > MAX_TERMS:
            raise BadQuery(f"too many terms (at most {MAX_TERMS})", col)

    # -- grammar ------------------------------------------------------------------------
    def parse(self) -> Node | None:
        node = self.parse_and(self.depth0, ANY)
        tok = self.peek()
        if tok is not None:
            raise BadQuery("unbalanced parenthesis", tok.col)
        return node

    def parse_and(self, depth: int, fld: str) -> Node | None:
        items: list[Node] = []
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind == "AND":
                self.take()
                if not items or self._at_operand_end():
                    raise BadQuery("dangling AND", tok.col)
                continue
            if tok.kind in ("OR", "NEAR"):
                raise BadQuery(f"dangling {tok.kind}", tok.col)
            node = self.parse_or(depth, fld)
            if node is not None:
                items.append(node)
        flat: list[Node] = []
        for item in items:
            flat.extend(item.items if isinstance(item, And) else (item,))
        if not flat:
            return None
        return flat[0] if len(flat) == 1 else And(tuple(flat))

    def _at_operand_end(self) -> bool:
        tok = self.peek()
        return tok is None or tok.kind in (")", "OR", "AND", "NEAR")

    def parse_or(self, depth: int, fld: str) -> Node | None:
        head = self.peek()
        first_col = head.col if head else self.end_col
        items = [self.parse_near(depth, fld)]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.take()
            if self._at_operand_end():
                raise BadQuery("dangling OR", tok.col)
            items.append(self.parse_near(depth, fld))
        kept = [i for i in items if i is not None]
        if len(items) > 1 and len(kept) < len(items):
            raise BadQuery("OR needs a word on each side", first_col)
        flat: list[Node] = []
        for item in kept:
            flat.extend(item.items if isinstance(item, Or) else (item,))
        if not flat:
            return None
        return flat[0] if len(flat) == 1 else Or(tuple(flat))

    def parse_near(self, depth: int, fld: str) -> Node | None:
        first = self.parse_unary(depth, fld)
        tok = self.peek()
        if tok is None or tok.kind != "NEAR":
            return first
        operands: list[Leaf] = []
        distance = int(tok.value)
        left_col = tok.col
        if not isinstance(first, Leaf):
            raise BadQuery("NEAR needs a word or phrase on each side", left_col)
        operands.append(first)
        while (tok := self.peek()) is not None and tok.kind == "NEAR":
            self.take()
            if int(tok.value) != distance:
                raise BadQuery("use one NEAR distance in a chain", tok.col)
            if self._at_operand_end():
                raise BadQuery("dangling NEAR", tok.col)
            nxt = self.peek()
            right = self.parse_unary(depth, fld)
            if not isinstance(right, Leaf):
                col = nxt.col if nxt else tok.col
                raise BadQuery("NEAR needs a word or phrase on each side", col)
            operands.append(right)
        return Near(tuple(operands), distance)

    def parse_unary(self, depth: int, fld: str) -> Node | None:
        negations = 0
        first: _Tok | None = None
        while (tok := self.peek()) is not None and tok.kind in ("neg", "NOT"):
            first = first or tok
            self.take()
            negations += 1
        if first is not None and self._at_operand_end():
            raise BadQuery(f"dangling {'NOT' if first.kind == 'NOT' else '-'}", first.col)
        node = self.parse_primary(depth, fld)
        if first is None:
            return node
        if node is None:
            raise BadQuery("nothing to exclude after it", first.col)
        return Not(node) if negations % 2 else node

    def parse_primary(self, depth: int, fld: str) -> Node | None:  # noqa: C901 (a recursive-descent parser: one branch per primary)
        tok = self.peek()
        if tok is None:
            raise BadQuery("unexpected end of query", self.end_col)
        kind = tok.kind
        if kind == "(":
            if depth + 1 > MAX_DEPTH:
                raise BadQuery(f"too deeply nested (at most {MAX_DEPTH} levels)", tok.col)
            self.take()
            node = self.parse_and(depth + 1, fld)
            close = self.peek()
            if close is None or close.kind != ")":
                raise BadQuery("unbalanced parenthesis", tok.col)
            self.take()
            if node is None:
                raise BadQuery("empty parentheses", tok.col)
            return node
        if kind == ")":
            raise BadQuery("unbalanced parenthesis", tok.col)
        if kind == "field":
            self.take()
            if fld != ANY:
                raise BadQuery("a field cannot be used inside another field", tok.col)
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("word", "phrase", "("):
                raise BadQuery(f"'{tok.value}:' needs a word, phrase or group", tok.col)
            node = self.parse_primary(depth, FIELDS[tok.value])
            if node is None:
                raise BadQuery(f"'{tok.value}:' has no letters or digits to look for", tok.col)
            return node
        if kind == "phrase":
            self.take()
            tokens = words(tok.value.replace("*", " "))
            if not tokens:
                raise BadQuery("empty phrase", tok.col)
            return self.leaf(fld, tokens, tok.col)
        if kind == "word":
            self.take()
            return self.word(tok, fld)
        if kind == "alias":
            self.take()
            if fld != ANY:
                raise BadQuery("an alias cannot be used inside a field", tok.col)
            return self.alias(tok, depth)
        raise BadQuery(f"dangling {kind}", tok.col)

    def word(self, tok: _Tok, fld: str) -> Node | None:
        text = tok.value
        star = text.find("*")
        if star >= 0:
            if star != len(text) - 1:
                raise BadQuery("'*' is only allowed at the end of a word", tok.col + star)
            tokens = words(text[:-1])
            if not tokens:
                raise BadQuery("'*' needs letters before it", tok.col)
            if len(tokens) > 1:
                raise BadQuery("a prefix with '*' must be a single word", tok.col)
            if len(tokens[0]) < MIN_PREFIX_CHARS:
                raise BadQuery(f"a prefix needs at least {MIN_PREFIX_CHARS} letters", tok.col)
            self.count_leaf(tok.col)
            return Prefix(fld, tokens[0])
        tokens = words(text)
        if not tokens:
            return None  # punctuation such as "&" between words: nothing to look for
        return self.leaf(fld, tokens, tok.col)

    def leaf(self, fld: str, tokens: list[str], col: int) -> Leaf:
        self.count_leaf(col)
        if len(tokens) > MAX_TERMS:
            raise BadQuery(f"phrase too long (at most {MAX_TERMS} words)", col)
        if len(tokens) == 1:
            return Term(fld, tokens[0], stem(tokens[0]))
        return Phrase(fld, tuple(tokens), tuple(stem(t) for t in tokens))

    def alias(self, tok: _Tok, depth: int) -> Node:
        name = tok.value.lower()
        if name in self.stack:
            chain = " -> ".join(f"@{a}" for a in (*self.stack, name))
            raise BadQuery(f"alias cycle: {chain}", tok.col)
        if name not in self.ctx.aliases:
            raise BadQuery(f"unknown alias '@{tok.value}'", tok.col)
        cached = self.ctx.cache.get(name)
        if cached is not None:
            node, leaves = cached
            self.count_leaf(tok.col, leaves)
        else:
            if depth + 1 > MAX_DEPTH or len(self.stack) >= MAX_DEPTH:
                raise BadQuery(f"too deeply nested (at most {MAX_DEPTH} levels)", tok.col)
            body = self.ctx.aliases[name]
            before = self.ctx.leaves
            try:
                _check_length(body)
                sub = _Parser(body, self.ctx, (*self.stack, name), depth + 1)
                node = sub.parse()
            except BadQuery as exc:
                if exc.message.startswith("in alias @"):
                    message = f"in alias @{name} -> {exc.message.removeprefix('in alias ')}"
                else:
                    where = f" (column {exc.column} of the alias)" if exc.column else ""
                    message = f"in alias @{name}: {exc.message}{where}"
                raise BadQuery(message, tok.col) from None
            self.ctx.cache[name] = (node, self.ctx.leaves - before)
        if node is None:
            raise BadQuery(f"alias @{name} is empty", tok.col)
        return node


def _check_length(text: str) -> None:
    if len(text) > MAX_QUERY_CHARS:
        raise BadQuery(
            f"query too long ({len(text)} characters, at most {MAX_QUERY_CHARS})",
            MAX_QUERY_CHARS + 1,
        )


class Query:
    """A parsed, compiled query: match it against Documents or search the store with it."""

    __slots__ = ("root", "text")

    def __init__(self, text: str, root: Node) -> None:
        self.text = text
        self.root = root

    def match(self, doc: Document) -> MatchResult | None:
        """Return the match (with the matched terms) if `doc` satisfies the query, else None."""
        if not self.root.matches(doc):
            return None
        return MatchResult(matched_terms(self.root, doc))

    def matches(self, doc: Document) -> bool:
        """Tell whether `doc` satisfies the query (no highlighting work)."""
        return self.root.matches(doc)

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def parse_query(text: str, aliases: Mapping[str, str] | None = None) -> Query:
    """Parse `text` into a Query, expanding `@aliases`; raise BadQuery on any error."""
    if not isinstance(text, str):
        raise BadQuery("the query must be text")
    _check_length(text)
    table = {str(k).lower().lstrip("@"): str(v) for k, v in (aliases or {}).items()}
    root = _Parser(text, _Context(table), (), 0).parse()
    if root is None:
        raise BadQuery("empty query: give at least one word", 1)
    if not root.positive():
        raise BadQuery(
            "the query can match without any of its words: add a word that must appear "
            "(a query of only negations matches everything)",
            1,
        )
    return Query(text, root)
