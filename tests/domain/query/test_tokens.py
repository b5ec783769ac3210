"""The fast tokeniser equals the reference: tokens of fold(text), possessives included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timeline.domain.query import Document, document, feed_source_names, fold, parse_query, words
from timeline.domain.query.normalise import _TOKEN

PIECES = ["nato", "NATO", "x", "s", "S", "'", "’", "'s", "’s", " ", "-", "é", "Ｓ", "ſ", "1", "_"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
def test_words_equal_tokens_of_fold(text: str) -> None:
    assert words(text) == _TOKEN.findall(fold(text))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_words_equal_tokens_of_fold_any_text(text: str) -> None:
    assert words(text) == _TOKEN.findall(fold(text))


def test_possessive_chains_are_dropped() -> None:
    assert words("NATO's's plan, x 's's") == ["nato", "plan", "x", "s"]
    assert words("Iran’s's drones") == ["iran", "drones"]
    assert Document("NATO's summit").title.words == ["nato", "summit"]


def _reference_ascii_words(text: str) -> list[str]:
    """Tokenise ASCII text the slow, obvious way: lower-case, drop possessives, split."""
    low = text.lower()
    n = len(low)
    kept = []
    i = 0
    while i < n:
        # An 's is a possessive when the character before it (in the original text: "x's's"
        # drops both) is alphanumeric and the one after it is not.
        if (
            low.startswith("'s", i)
            and i > 0
            and low[i - 1].isalnum()
            and (i + 2 == n or not low[i + 2].isalnum())
        ):
            i += 2
            continue
        kept.append(low[i] if low[i].isalnum() else " ")
        i += 1
    return "".join(kept).split()


ASCII_PIECES = [
    "nato",
    "NATO",
    "x",
    "s",
    "S",
    "'",
    "'s",
    "'S",
    "s'",
    " ",
    "-",
    "1",
    "_",
    ".",
    "\x1f",
]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(ASCII_PIECES), max_size=14).map("".join))
def test_ascii_words_equal_reference(text: str) -> None:
    assert words(text) == _reference_ascii_words(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_ascii_words_equal_reference_any_ascii(text: str) -> None:
    assert words(text) == _reference_ascii_words(text)
    assert words(text) == _TOKEN.findall(fold(text))


def test_possessive_edge_cases() -> None:
    cases = {
        "'s": ["s"],  # nothing before the apostrophe
        "x's": ["x"],
        "X'S": ["x"],
        "x'sa": ["x", "sa"],  # followed by a letter: not a possessive
        "x's1": ["x", "s1"],
        "x's_": ["x"],  # "_" is a separator
        "x''s": ["x", "s"],
        "x 's": ["x", "s"],
        "x's's's": ["x"],
        "_'s": ["s"],
        "9's": ["9"],
        "it's. NATO'S, x's-y's": ["it", "nato", "x", "y"],
    }
    for text, expected in cases.items():
        assert words(text) == expected, text
        assert words(text) == _TOKEN.findall(fold(text)), text
        # Folding that ends in ASCII takes the same path: "é" folds to "e".
        assert words("é" + text) == _TOKEN.findall(fold("é" + text)), text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*PIECES, "drone", "drones", "Drone"]), max_size=30).map("".join))
def test_segment_positions_equal_a_scan(text: str) -> None:
    segment = Document(text).title
    for stem in {*segment.stems, "drone", "absent"}:
        expected = [i for i, s in enumerate(segment.stems) if s == stem]
        assert segment.positions(stem) == expected
        assert segment.positions(stem) == expected  # cached


def test_source_segments_are_shared_per_source_names() -> None:
    names = feed_source_names("Reuters World", "https://www.reuters.com/rss")
    a = Document("one", "", names)
    b = Document("two", "", tuple(list(names)))
    assert a.source is b.source and a.source_stems is b.source_stems
    assert [s.words for s in a.source] == [["reuters", "world"], ["reuters", "com"]]
    assert a.source_stems == {"reuter", "world", "com"}
    assert parse_query("source:reuters two").matches(b)
    assert not parse_query("source:bloomberg two").matches(b)
    assert parse_query('source:"reuters world" two').matches(b)
    assert parse_query("source:world NEAR/1 source:reuters").matches(b)
    assert not parse_query("source:world NEAR/1 source:com").matches(b)
    assert Document("x").source == () and Document("x").source_stems == frozenset()


def test_source_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "_SOURCES", {})
    monkeypatch.setattr(document, "_SOURCES_MAX", 3)
    for i in range(10):
        doc = Document("t", "", (f"feed{i}",))
        assert doc.source_stems == {f"feed{i}"}
        assert len(document._SOURCES) <= 3
