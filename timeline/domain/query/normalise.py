"""Text normalisation shared by watches, documents and the full-text index.

One function turns text into tokens, the same way for a query, an item and the index:
NFKC, case-folded, diacritics removed, every non-alphanumeric character a separator, a
possessive ``'s`` dropped, then the Snowball English stemmer. Keeping it in one place is what
makes alerts (the matcher) and search (the index) agree.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import unicodedata
from functools import cache

import snowballstemmer

# Invisible format characters (&shy;, joiners, BOM) are removed, so "com\u00adpany" stays one
# word; a zero-width space is a word break. The same table cleans stored feed text.
from feeds.text import strip_invisible

log = logging.getLogger(__name__)

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
        stemmed: str = _STEMMER.stemWord(word)
        return stemmed


_STEM_CACHE: dict[str, str] = {}
_STEM_CACHE_MAX = 200_000


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
    """Return the Snowball English stem of one normalised token (PyStemmer, cached)."""
    got = _STEM_CACHE.get(word)
    if got is None:
        if len(_STEM_CACHE) >= _STEM_CACHE_MAX:
            _STEM_CACHE.clear()
        got = _stem_word(word)
        _STEM_CACHE[word] = got
    return got


def stems(tokens: list[str]) -> list[str]:
    """Stem a list of normalised tokens (cached: news vocabulary repeats)."""
    try:
        return list(map(_STEM_CACHE.__getitem__, tokens))
    except KeyError:
        return [stem(t) for t in tokens]


def tokens(text: str) -> tuple[list[str], list[str]]:
    """Return words(text) and stems(words(text))."""
    found = words(text)
    return found, stems(found)


def add_first3(found: list[str], into: set[str]) -> None:
    """Add to `into` the first three characters of every word of `found` that has three."""
    into.update(w[:3] for w in found if len(w) >= 3)


def locate(seq: list[str], wanted: set[str] | frozenset[str]) -> dict[str, list[int]]:
    """Return {item: its positions in `seq`} for the items of `seq` that are in `wanted`."""
    found: dict[str, list[int]] = {}
    for i, item in enumerate(seq):
        if item in wanted:
            found.setdefault(item, []).append(i)
    return found


def starting(found: list[str], prefix: str) -> list[int]:
    """Return the positions of the words of `found` that start with `prefix`."""
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
