"""Text normalisation shared by watches, documents and the full-text index.

One function turns text into tokens, the same way for a query, an item and the index:
NFKC, case-folded, diacritics removed, every non-alphanumeric character a separator, a
possessive ``'s`` dropped, then the Snowball English stemmer. Keeping it in one place is what
makes alerts (the matcher) and search (the index) agree.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import unicodedata
from functools import cache

import snowballstemmer

# Invisible format characters (&shy;, joiners, BOM) are removed, so "com\u00adpany" stays one
# word; a zero-width space is a word break. The same table cleans stored feed text.
from feeds.text import strip_invisible

try:  # the compiled fast path (_scan.c); the Python code below is its reference
    from . import _scan
except ImportError:  # pragma: no cover - an install without a C compiler
    _scan = None  # type: ignore[assignment]
if os.environ.get("TIMELINE_BOT_NO_SPEEDUPS"):  # the reference path alone (comparisons, bugs)
    _scan = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# Where each word of a text is: start, end, start, end, ... (see scan()).
Spans = memoryview  # (of int, format "n")

# A token is a run of Unicode letters and digits (str.isalnum): `[^\W_]` is \w minus "_".
_TOKEN = re.compile(r"[^\W_]+")
# ASCII text is folded and split in one str.translate pass (which has a fast path for 1:1
# ASCII tables): A-Z lower-cased (all that fold() does to ASCII), every other character that
# is not a letter or digit a space; then str.split. Four times faster than a regex.
_ASCII_TOKENS = str.maketrans(
    {chr(i): chr(i).lower() if chr(i).isalnum() else " " for i in range(128)}
)
# A possessive 's in ASCII text not yet lower-cased: an apostrophe, preceded by a letter or
# digit, then s or S not followed by one. (The pattern starts with the apostrophe so that re
# scans for it quickly; the look-behind then checks the character before it. As in fold(),
# every condition is checked in the original text: "x's's" drops both.)
_ASCII_POSSESSIVE = re.compile(r"'(?<=[0-9A-Za-z]')[sS](?![0-9A-Za-z])")
# Non-ASCII: one regex pass that also drops possessives: a token followed by any number of 's
# that end a word (the group is what findall returns). Equal to tokenising fold(text), which
# removes every 's preceded by an alphanumeric and not followed by one, "x's's" included.
_WORD = re.compile(r"([^\W_]+)(?:['’]s(?![^\W_]))*")
# The same, remembering where each token is, for highlighting (slow path only).
_TOKEN_SPAN = re.compile(r"[^\W_]+")
# A possessive 's / ’s at the end of a word ("NATO's" -> "NATO").
# (Starting the pattern with the apostrophe, not a look-behind, keeps the scan fast; the
# character before it is checked in Python.)
_POSSESSIVE = re.compile(r"['’]s(?![^\W_])")

_STEMMER = snowballstemmer.stemmer("english")
# The stemmer keeps its word in its own fields while it works: one thread at a time.
_STEMMER_LOCK = threading.Lock()


def _stem_word(word: str) -> str:
    with _STEMMER_LOCK:
        return _STEMMER.stemWord(word)


_STEM_CACHE: dict[str, str] = {}
_STEM_CACHE_MAX = 200_000
# Known ASCII words and their stems, for scan(), tokens() and stem() (None: not built; the
# Python code then does it all).
_VOCABULARY = _scan.Vocabulary(_stem_word, _STEM_CACHE_MAX) if _scan is not None else None


@cache
def _marks_pattern() -> re.Pattern[str]:
    """Build (once) a pattern matching every combining mark (category Mn)."""
    ranges: list[str] = []
    start = -1
    prev = -2
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) == "Mn":
            if cp != prev + 1:
                if start >= 0:
                    ranges.append(_range(start, prev))
                start = cp
            prev = cp
    if start >= 0:
        ranges.append(_range(start, prev))
    return re.compile("[" + "".join(ranges) + "]+")


def _range(lo: int, hi: int) -> str:
    return re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"


def _fold_chars(text: str) -> str:
    """Return `text` NFKC-normalised, case-folded and without diacritics (possessives kept)."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKC", strip_invisible(text)).casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFD", folded)
        folded = _marks_pattern().sub("", folded)
        folded = unicodedata.normalize("NFC", folded)
    return folded


def fold(text: str) -> str:
    """Return `text` NFKC-normalised, case-folded and without diacritics or possessives."""
    folded = _fold_chars(text)
    if "'s" in folded or "’s" in folded:
        folded = _POSSESSIVE.sub(lambda m: _drop_possessive(m, folded), folded)
    return folded


def _drop_possessive(m: re.Match[str], text: str) -> str:
    start = m.start()
    return "" if start > 0 and text[start - 1].isalnum() else m.group()


def _possessives(text: str) -> set[int]:
    """Return the offsets of the apostrophes of possessive 's in folded `text`."""
    return {
        m.start()
        for m in _POSSESSIVE.finditer(text)
        if m.start() > 0 and text[m.start() - 1].isalnum()
    }


def words(text: str) -> list[str]:
    """Split `text` into normalised, unstemmed tokens."""
    if not text.isascii():
        text = _fold_chars(text)
        if not text.isascii():
            return _WORD.findall(text)
    # ASCII (or folded to ASCII): lower-casing is all that is left of fold().
    if "'" in text:
        text = _ASCII_POSSESSIVE.sub("", text)
    return text.translate(_ASCII_TOKENS).split()


def stem(word: str) -> str:
    """Return the Snowball English stem of one normalised token."""
    if _VOCABULARY is not None and word.isascii():
        # (The same string objects as in scanned texts: comparing them is cheaper.)
        return _VOCABULARY.stem(word)
    got = _STEM_CACHE.get(word)
    if got is None:
        if len(_STEM_CACHE) >= _STEM_CACHE_MAX:
            _STEM_CACHE.clear()
        got = _stem_word(word)
        _STEM_CACHE[word] = got
    return got


def stems(tokens: list[str]) -> list[str]:
    """Stem a list of normalised tokens (cached: news vocabulary repeats)."""
    if _VOCABULARY is not None:
        try:
            return list(map(_VOCABULARY.stem, tokens))
        except TypeError:  # a non-ASCII token
            return [stem(t) for t in tokens]
    try:
        return list(map(_STEM_CACHE.__getitem__, tokens))
    except KeyError:
        return [stem(t) for t in tokens]


# What the watches look for (set_interest): its generation number in the compiled
# vocabulary, the stems and the 3-character prefixes.
_INTEREST: tuple[int, frozenset[str], frozenset[str]] = (0, frozenset(), frozenset())


def set_interest(wanted_stems: frozenset[str], wanted_prefixes: frozenset[str]) -> bool:
    """Have scan() report which of these stems and 3-character word prefixes a text holds.

    One interest at a time (the latest call wins): the watch index of a process sets its own.
    Return False when there is no compiled fast path (scan() then never reports).
    """
    global _INTEREST
    if _VOCABULARY is None:
        return False
    generation = _VOCABULARY.set_interest(frozenset(wanted_stems), frozenset(wanted_prefixes))
    _INTEREST = (generation, wanted_stems, wanted_prefixes)
    return True


Scanned = tuple[
    list[str] | None,  # words (None: not made yet; words_at() makes them from the spans)
    list[str] | None,  # stems (None: not made yet; stems_at() makes them from the spans)
    bytes | None,  # where each word is in the text, when known (as_spans() reads it)
    dict[str, list[int]] | None,  # wanted stems present -> their positions (None: none)
    set[str] | None,  # wanted 3-character prefixes present (None: none)
    frozenset[str] | None,  # the wanted stems the two above are about (None: not known)
    frozenset[str] | None,  # the wanted prefixes they are about (None: not known)
]


def scan(text: str) -> Scanned:
    """Split `text` into words and stems, and report what the current interest holds.

    With the compiled fast path, ASCII text is split in one pass, and its words are not made
    (most texts never need them): the spans say where each is, a word being
    text[start:end].lower() (see words_at). Under an interest, nor are its stems (the matcher
    gets by with the positions of the wanted ones; stems_at makes the rest when asked). Spans
    are None when unknown (non-ASCII text, or no fast path); the words and stems are then
    made. The last three fields are None without a fast path or an interest (see
    set_interest).
    """
    vocabulary = _VOCABULARY
    if vocabulary is not None:
        if text.isascii():
            got = vocabulary.scan(text, _INTEREST[0] == 0)
            folded = None
        else:
            folded = _fold_chars(text)
            got = vocabulary.scan(folded)
        if got is not None:
            found_stems, spans, wanted, prefixes, generation = got
            interest = _INTEREST
            known = generation != 0 and generation == interest[0]
            about = interest[1] if known else None
            about_prefixes = interest[2] if known else None
            if folded is not None:  # (spans into the folded text: make the words now)
                assert found_stems is not None
                return (
                    words_at(folded, spans),
                    found_stems,
                    None,
                    wanted,
                    prefixes,
                    about,
                    about_prefixes,
                )
            return None, found_stems, spans, wanted, prefixes, about, about_prefixes
        if folded is not None:
            # Still not ASCII once folded: what words() does, without folding it again.
            found = _WORD.findall(folded)
            return found, stems(found), None, None, None, None, None
    found = words(text)
    return found, stems(found), None, None, None, None, None


def as_spans(raw: bytes) -> Spans:
    """Return the spans of a scan as (start, end, start, end, ...) integers."""
    return memoryview(raw).cast("n")  # type: ignore[call-overload,no-any-return]


def words_at(text: str, spans: Spans | bytes) -> list[str]:
    """Return the words of ASCII `text` at `spans` (from scan), lower-cased."""
    raw = spans.obj if isinstance(spans, memoryview) else spans
    assert _scan is not None and isinstance(raw, bytes)  # (spans only come from _scan)
    return _scan.words_of(text, raw)


def stems_at(text: str, spans: Spans | bytes) -> list[str]:
    """Return the stems of the words of ASCII `text` at `spans` (from scan)."""
    raw = spans.obj if isinstance(spans, memoryview) else spans
    assert _VOCABULARY is not None and isinstance(raw, bytes)  # (spans only come from _scan)
    return _VOCABULARY.stems_of(text, raw)


def tokens(text: str) -> tuple[list[str], list[str]]:
    """Return words(text) and stems(words(text)), in one pass when compiled."""
    vocabulary = _VOCABULARY
    if vocabulary is not None and text.isascii():
        got = vocabulary.scan(text, True)
        if got is not None and got[0] is not None:
            return words_at(text, got[1]), got[0]
    found, found_stems, spans, *_ = scan(text)
    if found is None:
        assert spans is not None
        found = words_at(text, spans)
    if found_stems is None:
        assert spans is not None
        found_stems = stems_at(text, spans)
    return found, found_stems


def add_first3(found: list[str], into: set[str]) -> None:
    """Add to `into` the first three characters of every word of `found` that has three."""
    if _scan is not None:
        _scan.first3(found, into)
    else:
        into.update(w[:3] for w in found if len(w) >= 3)


def locate(seq: list[str], wanted: set[str] | frozenset[str]) -> dict[str, list[int]]:
    """Return {item: its positions in `seq`} for the items of `seq` that are in `wanted`."""
    if _scan is not None:
        return _scan.locate(seq, wanted)
    found: dict[str, list[int]] = {}
    for i, item in enumerate(seq):
        if item in wanted:
            found.setdefault(item, []).append(i)
    return found


def starting(found: list[str], prefix: str) -> list[int]:
    """Return the positions of the words of `found` that start with `prefix`."""
    if _scan is not None:
        return _scan.starting(found, prefix)
    return [i for i, w in enumerate(found) if w.startswith(prefix)]


def word_spans(text: str) -> list[tuple[str, int, int]] | None:
    """Return (token, start, end) for each token of `text`, offsets into the original text.

    Normalising character by character keeps the offsets; when that disagrees with
    normalising the whole text (rare Unicode compositions), return None: the caller then
    shows normalised tokens instead of the original spelling.
    """
    if text.isascii():
        # lower() keeps ASCII offsets, and is exactly what fold() does to ASCII text.
        folded = text.lower()
        if "'s" not in folded:  # (’ is not ASCII)
            return [(m.group(), m.start(), m.end()) for m in _TOKEN_SPAN.finditer(folded)]
        index: list[int] | None = None
    else:
        pieces: list[str] = []
        index = []
        for i, ch in enumerate(text):
            piece = _fold_char(ch)
            pieces.append(piece)
            index.extend([i] * len(piece))
        folded = "".join(pieces)
    spans = [(m.group(), m.start(), m.end()) for m in _TOKEN_SPAN.finditer(folded)]
    possessive = _possessives(folded)
    if possessive:
        spans = [s for s in spans if not (s[0] == "s" and s[1] - 1 in possessive)]
    if index is not None:
        spans = [(t, index[a], index[b - 1] + 1) for t, a, b in spans]
    if index is not None and [s[0] for s in spans] != words(text):
        return None
    return spans


@cache
def _fold_char(ch: str) -> str:
    if ch.isascii():
        return ch.lower()
    folded = unicodedata.normalize("NFKC", strip_invisible(ch)).casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFD", folded)
        folded = _marks_pattern().sub("", folded)
        folded = unicodedata.normalize("NFC", folded)
    return folded
