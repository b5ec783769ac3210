"""The stemmer is PyStemmer (the C Snowball library) and its stems are those of the pure-Python
Snowball English stemmer that the query language was built and tested with."""

from __future__ import annotations

import re
from pathlib import Path

import snowballstemmer
from hypothesis import given, settings
from hypothesis import strategies as st
from snowballstemmer.english_stemmer import EnglishStemmer

from timeline.domain.query import normalise

ROOT = Path(__file__).resolve().parents[3]


def _vocabulary() -> set[str]:
    words: set[str] = set()
    texts = [ROOT / "README.md", *sorted((ROOT / "cli" / "demo_data").glob("*.xml"))]
    for path in texts:
        words.update(re.findall(r"[a-z]+", path.read_text(encoding="utf-8").lower()))
    # Snowball's hard cases: -ies/-ied, double consonants, -ational, -ness, exceptions.
    words.update(
        "skies dying lying tying news innings outing canning howe proceed exceed succeed "
        "generously communique communiques sanctions sanctioned sanctioning dual-use "
        "relational conditional rational valency hesitancy digitizer conformably radically "
        "differently vilely analogousli vietnamization predication operator feudalism "
        "decisiveness hopefulness callousness formality sensitivity sensibility".split()
    )
    return words


def test_the_product_stems_with_pystemmer() -> None:
    # snowballstemmer hands out PyStemmer's C stemmer when it is installed (a dependency).
    assert type(snowballstemmer.stemmer("english")).__module__ == "Stemmer"
    assert type(normalise._STEMMER).__module__ == "Stemmer"


def test_stems_are_those_of_the_pure_python_stemmer() -> None:
    reference = EnglishStemmer()
    words = sorted(_vocabulary())
    assert len(words) > 1000
    different = {w: (normalise._stem_word(w), reference.stemWord(w)) for w in words}
    different = {w: pair for w, pair in different.items() if pair[0] != pair[1]}
    assert different == {}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(categories=("Ll", "Lu", "Nd")), min_size=1, max_size=30))
def test_stems_agree_on_any_word(word: str) -> None:
    word = word.lower()
    assert normalise._stem_word(word) == EnglishStemmer().stemWord(word)
