"""The compiled tokeniser (timeline/query/_scan.c) equals its pure-Python reference.

normalise.words() and normalise.stems() are the reference; every function of the compiled
module is checked against them (or against the obvious Python) on random and hostile text, and
whole matches are checked against the pure-Python path (pure_python() below).
"""

from __future__ import annotations

import gc
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import snowballstemmer
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.query.test_tokens import ASCII_PIECES
from timeline.query import Document, document, normalise, parse_query
from timeline.query.index import WatchIndex
from timeline.query.normalise import stems, words

try:  # (not through normalise: TIMELINE_BOT_NO_SPEEDUPS does not hide it from these tests)
    from timeline.query import _scan
except ImportError:  # not built: every test here fails; test_the_compiled_module_is_built says why
    _scan = None  # type: ignore[assignment]
STEMMER = snowballstemmer.stemmer("english")

PIECES = [
    *ASCII_PIECES,
    "Drones",
    "sanctioned",
    "\x7f",
    "a" * 15,
    "b" * 16,
    "c" * 17,
    "Supercalifragilisticexpialidocious",
    "z" * 200,
]
ascii_texts = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=24).map("".join),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=80),
)


@contextmanager
def pure_python() -> Iterator[None]:
    """Run the block without the compiled module: the reference path."""
    saved = normalise._scan, normalise._VOCABULARY, normalise._INTEREST, dict(document._SOURCES)
    normalise._scan = None  # type: ignore[assignment]
    normalise._VOCABULARY = None
    document._SOURCES.clear()
    try:
        yield
    finally:
        normalise._scan, normalise._VOCABULARY, normalise._INTEREST = saved[:3]
        document._SOURCES.clear()
        document._SOURCES.update(saved[3])


def _spans(raw: bytes) -> list[tuple[int, int]]:
    flat = [v for (v,) in struct.iter_unpack("n", raw)]
    return list(zip(flat[::2], flat[1::2], strict=True))


def test_the_compiled_module_is_built() -> None:
    """CI builds it (gcc is on every machine we run on): a silent fallback would be slower."""
    assert _scan is not None and normalise._VOCABULARY is not None, (
        "timeline/query/_scan.c is not built (`pip install -e .` builds it; is a C compiler "
        "there?) or TIMELINE_BOT_NO_SPEEDUPS is set"
    )


@settings(max_examples=1500, deadline=None)
@given(ascii_texts)
def test_scan_equals_words_and_stems(text: str) -> None:
    vocabulary = _scan.Vocabulary(STEMMER.stemWord, 1000)
    got = vocabulary.scan(text)
    assert got is not None
    found_stems, spans, found, prefixes, generation = got
    expected = words(text)
    assert found_stems == [STEMMER.stemWord(w) for w in expected]
    assert [text[a:b].lower() for a, b in _spans(spans)] == expected
    assert _scan.words_of(text, spans) == expected
    assert (found, prefixes, generation) == (None, None, 0)
    # Stems made later, from the spans, are the same.
    lazy = vocabulary.scan(text, False)
    assert lazy is not None and lazy[0] is None and lazy[1] == spans
    assert vocabulary.stems_of(text, spans) == found_stems
    # The module's own vocabulary, through the public functions.
    assert normalise.tokens(text) == (expected, stems(expected))


@settings(max_examples=400, deadline=None)
@given(ascii_texts, st.lists(st.sampled_from([*PIECES, "nato", "drone", "sanction"]), max_size=6))
def test_scan_reports_the_wanted_stems_and_prefixes(text: str, wanted_words: list[str]) -> None:
    vocabulary = _scan.Vocabulary(STEMMER.stemWord, 1000)
    wanted = frozenset(STEMMER.stemWord(w.lower()) for w in wanted_words)
    wanted_prefixes = frozenset(w.lower()[:3] for w in wanted_words if len(w) >= 3)
    generation = vocabulary.set_interest(wanted, wanted_prefixes)
    assert generation > 0
    got = vocabulary.scan(text)
    assert got is not None
    found_stems, _, found, prefixes, got_generation = got
    assert got_generation == generation
    expected: dict[str, list[int]] = {}
    for i, stem in enumerate(found_stems):
        if stem in wanted:
            expected.setdefault(stem, []).append(i)
    assert (found or {}) == expected
    expected_prefixes = {w[:3] for w in words(text) if w[:3] in wanted_prefixes and len(w) >= 3}
    assert (prefixes or set()) == expected_prefixes
    # The same without keeping every stem.
    lazy = vocabulary.scan(text, False)
    assert lazy is not None and lazy[0] is None
    assert (lazy[2] or {}) == expected and (lazy[3] or set()) == expected_prefixes
    # A later interest wins; the words' cached flags follow it.
    assert vocabulary.set_interest(frozenset(), frozenset()) == generation + 1
    assert vocabulary.scan(text)[2:4] == (None, None)  # type: ignore[index]


def test_non_ascii_text_is_not_scanned_and_folds_first() -> None:
    vocabulary = _scan.Vocabulary(STEMMER.stemWord, 10)
    assert vocabulary.scan("communiqué") is None
    # normalise.scan folds it first; the words are then made at once (spans would be into the
    # folded text, so there are none).
    found, found_stems, spans, *_ = normalise.scan("Communiqué of NATO’s allies")
    assert found == ["communique", "of", "nato", "allies"]
    assert found_stems == ["communiqu", "of", "nato", "alli"]
    assert spans is None


def test_the_table_is_emptied_when_full_and_answers_the_same() -> None:
    vocabulary = _scan.Vocabulary(STEMMER.stemWord, 5)
    text = " ".join(f"word{i} drones" for i in range(40))
    first = vocabulary.scan(text)
    again = vocabulary.scan(text)
    assert first is not None and again is not None
    assert first[0] == again[0] == stems(words(text))
    stats = vocabulary.stats()
    assert stats["words"] <= 5
    assert stats["hits"] + stats["misses"] == 2 * len(words(text))
    vocabulary.clear()
    assert len(vocabulary) == 0
    assert vocabulary.stem("drones") == "drone"
    assert len(vocabulary) == 1


@settings(max_examples=200, deadline=None)
@given(ascii_texts)
def test_words_that_bypass_the_table_give_the_same_answers(text: str) -> None:
    # One probe per lookup: every collision makes a word bypass the table (what crafted text
    # colliding for MAX_PROBES slots would do).
    vocabulary = _scan.Vocabulary(STEMMER.stemWord, 1000, max_probes=1)
    wanted = frozenset(STEMMER.stemWord(w) for w in words(text)[::2])
    wanted_prefixes = frozenset(w[:3] for w in words(text)[1::2] if len(w) >= 3)
    vocabulary.set_interest(wanted, wanted_prefixes)
    for keep in (True, False, True):
        got = vocabulary.scan(text + " " + " ".join(f"x{i}" for i in range(300)), keep)
        assert got is not None
        found_stems, spans, found, prefixes, _ = got
        if not keep:
            assert found_stems is None
            found_stems = vocabulary.stems_of(
                text + " " + " ".join(f"x{i}" for i in range(300)), spans
            )
        assert found_stems[: len(words(text))] == [STEMMER.stemWord(w) for w in words(text)]
        expected: dict[str, list[int]] = {}
        for i, stem in enumerate(found_stems):
            if stem in wanted:
                expected.setdefault(stem, []).append(i)
        assert (found or {}) == expected
        assert (prefixes or set()) == {
            w[:3] for w in words(text) if len(w) >= 3 and w[:3] in wanted_prefixes
        }
    assert vocabulary.stats()["bypassed"] > 0


def test_shared_strings_make_stems_the_same_objects() -> None:
    # Query stems and scanned stems come from one table: equal stems are one object.
    scanned = normalise.tokens("Sanctioned drones")[1]
    assert scanned[0] is normalise.stem("sanction")
    assert scanned[1] is normalise.stem("drone")
    assert normalise.stem("drones") is normalise.stem("drone")


def test_a_stemmer_that_fails_leaves_the_table_as_it_was() -> None:
    calls: list[str] = []

    def stemmer(word: str) -> str:
        calls.append(word)
        if word == "boom":
            raise RuntimeError("stemmer broke")
        return STEMMER.stemWord(word)

    vocabulary = _scan.Vocabulary(stemmer, 100)
    with pytest.raises(RuntimeError, match="stemmer broke"):
        vocabulary.scan("alpha beta boom gamma")
    assert len(vocabulary) == 2  # alpha, beta
    got = vocabulary.scan("alpha beta gamma")
    assert got is not None and got[0] == ["alpha", "beta", "gamma"]


def test_a_stemmer_that_returns_junk_is_refused() -> None:
    for bad in (None, 3, "é", b"x"):
        vocabulary = _scan.Vocabulary(lambda _w, bad=bad: bad, 100)
        with pytest.raises(TypeError, match="stemmer returned"):
            vocabulary.scan("word")
        assert len(vocabulary) == 0


def test_bad_arguments_are_refused() -> None:
    vocabulary = _scan.Vocabulary(STEMMER.stemWord, 100)
    with pytest.raises(TypeError):
        vocabulary.scan(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        vocabulary.set_interest({"a"}, frozenset())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        vocabulary.set_interest(frozenset({1}), frozenset())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        vocabulary.stem("é")
    with pytest.raises(ValueError):
        _scan.Vocabulary(STEMMER.stemWord, 0)
    with pytest.raises(ValueError):
        _scan.Vocabulary(STEMMER.stemWord, 10, max_probes=0)
    with pytest.raises(TypeError):
        _scan.Vocabulary("not callable", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside the text"):
        _scan.words_of("ab", struct.pack("nn", 0, 5))
    with pytest.raises(TypeError):
        _scan.words_of("ab", b"\x00")
    with pytest.raises(ValueError, match="outside the text"):
        vocabulary.stems_of("ab", struct.pack("nn", 1, 1))
    with pytest.raises(TypeError):
        vocabulary.stems_of("é", b"")
    with pytest.raises(TypeError):
        _scan.first3(["abc", 1], set())  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _scan.starting(["abc", 1], "a")  # type: ignore[list-item]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["iran", "Iranian", "ir", "é", "über", "abc", "x", "abcd"]), max_size=12
    ),
    st.sampled_from(["ir", "ira", "iran", "ab", "é", "üb", ""]),
)
def test_helpers_equal_python(found: list[str], prefix: str) -> None:
    into: set[str] = set()
    _scan.first3(found, into)
    assert into == {w[:3] for w in found if len(w) >= 3}
    assert _scan.starting(found, prefix) == [i for i, w in enumerate(found) if w.startswith(prefix)]
    wanted = frozenset(found[:2])
    expected: dict[str, list[int]] = {}
    for i, w in enumerate(found):
        if w in wanted:
            expected.setdefault(w, []).append(i)
    assert _scan.locate(found, wanted) == expected


def test_hostile_text_is_split_like_the_reference_and_bounded() -> None:
    # Long runs, a word longer than any buffer, separators of every ASCII kind, many words.
    hostile = "".join(
        [
            "A" * 100_000,
            " ",
            "".join(chr(c) for c in range(128)),
            " ",
            " ".join(f"w{i}" for i in range(20_000)),
            "'s" * 1000,
        ]
    )
    vocabulary = _scan.Vocabulary(STEMMER.stemWord, 5_000)
    got = vocabulary.scan(hostile)
    assert got is not None
    expected = words(hostile)
    assert _scan.words_of(hostile, got[1]) == expected
    assert got[0] == [STEMMER.stemWord(w) for w in expected]
    assert len(vocabulary) <= 5_000


def test_scanning_from_threads_gives_the_same_answers() -> None:
    # The stemmer is Python code: another thread may run (and change the table) during it.
    vocabulary = _scan.Vocabulary(normalise._stem_word, 50)
    texts = [" ".join(f"t{k}w{i}s" for i in range(60)) for k in range(8)]
    expected = [stems(words(t)) for t in texts]
    errors: list[str] = []

    def work(k: int) -> None:
        for _ in range(20):
            got = vocabulary.scan(texts[k])
            if got is None or got[0] != expected[k]:
                errors.append(f"thread {k}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_the_vocabulary_is_collected() -> None:
    # (It is a GC type: a cycle through its stemmer is freed.)
    class Stemmer:
        def __call__(self, word: str) -> str:
            return word

    stemmer = Stemmer()
    vocabulary = _scan.Vocabulary(stemmer, 10)
    stemmer.vocabulary = vocabulary  # type: ignore[attr-defined]
    vocabulary.scan("a b c")
    del stemmer, vocabulary
    assert gc.collect() >= 2


def test_segments_made_with_an_interest_answer_like_pure_python() -> None:
    queries = [
        "drone OR uav",
        '"war machine"',
        "title:nato communique",
        'summary:"dual use"',
        "sanction* NEAR/2 iran",
        "nato -fireworks",
    ]
    watches = [(i, parse_query(q)) for i, q in enumerate(queries)]
    index = WatchIndex(watches)
    items = [
        ("NATO summit communique", "Drones and a war machine: dual-use goods, sanctioned Iran"),
        ("Fireworks over NATO", "The war, a machine; UAV's, dual use"),
        ("Communiqué de l’OTAN", "Sanctions on Iran’s drone makers"),
        ("", ""),
    ]
    for title, summary in items:
        fast = index.match(Document(title, summary, ("Reuters", "reuters.com")))
        with pure_python():
            slow_doc = Document(title, summary, ("Reuters", "reuters.com"))
            slow = [(i, m) for i, m in ((i, q.match(slow_doc)) for i, q in watches) if m]
            assert slow_doc.title.spans is None
        assert fast == slow, title


def test_segments_under_an_interest_make_words_and_stems_only_when_asked() -> None:
    index = WatchIndex([(1, parse_query('"war machine" OR title:drones'))])
    assert index._interest is not None
    segment = Document("", "The war machine's drones, and a war of machines").summary
    assert segment._stems is None and segment._words is None
    assert segment.has("war") and segment.has("drone") and segment.has("machin")
    assert segment.followed_by(1, ["machin"]) and not segment.followed_by(5, ["machin"])
    assert segment._stems is None  # (wanted stems only so far)
    assert segment.has("and") and not segment.has("machine")  # (these make every stem)
    assert segment.stems == stems(words("The war machine's drones, and a war of machines"))
    assert segment.words == words("The war machine's drones, and a war of machines")
    assert segment.followed_by(1, ["machin"]) and not segment.followed_by(6, ["machin"])


def test_prefixes_are_answered_from_the_scan_without_making_words() -> None:
    WatchIndex([(1, parse_query("iran* drone")), (2, parse_query("sanctio* OR ab* OR zeb*"))])
    segment = Document("", "Iranian drones; sanctions on ship owners").summary
    assert segment._words is None
    assert not segment.has_prefix("zebra") and not segment.has_prefix("zeb")
    assert segment._words is None  # (no word starts with the wanted "zeb": known from the scan)
    assert segment.has_prefix("iran") and segment.has_prefix("sanctio")
    assert not segment.has_prefix("sanctum") and not segment.has_prefix("ab")
    assert segment.has_prefix("ship") and not segment.has_prefix("zzz")  # (not wanted)
    assert segment.words == ["iranian", "drones", "sanctions", "on", "ship", "owners"]
