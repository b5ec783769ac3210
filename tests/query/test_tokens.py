"""The fast tokeniser equals the reference: tokens of fold(text), possessives included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from timeline.query import Document, fold, words
from timeline.query.normalise import _TOKEN

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
