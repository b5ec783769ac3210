"""Storylines: events about one developing subject, followed over weeks.

An event is one happening told by several outlets (see :mod:`timeline.domain.clustering`); a
storyline strings events together: the April warning, the July report, the draft communique,
the final communique and Beijing's reply are five events and one storyline. The decision is
made per new event against the events of the last `window` (30 days by default, far longer
than the event window) and the storylines still developing: a storyline whose latest event
is within the window is compared with its events within the window of that latest one, so a
story that keeps developing chains over months while a gap of more than the window ends it.
It is made in the ingest transaction, and depends only on what the index holds,
so a process that reloads the index from the database decides as one that never stopped.

How two events are judged to be about the same subject: each is reduced to its content terms
(stems of title and text, without stop words and figures) and its names (capitalised words
inside a sentence, acronyms). Terms are weighted by their rarity among the indexed events
(IDF with a prior, so a small index does not make every word look distinctive) and names
count extra. A word an event writes only at a sentence's start ("Panama Canal cuts ...",
"Bangladesh top court ...") cannot be told from an ordinary capitalised word by the event
alone; it counts as a name when the indexed events write it as one more often than in lower
case. Two events are about the same subject when the weighted cosine of their terms
reaches `JOIN_SCORE`, they share at least `MIN_SHARED` distinctive terms and at least one
name. "NATO" alone, or "drone" and "China" in stories about other things, do not glue: they
are frequent, so they weigh little, and one shared word is never enough.

An event joins the storyline of its best-scoring earlier event; when that event has no
storyline yet, the two start one. A storyline of two or more events is also matched as a
whole: its profile (its events' terms summed) against the new event, which joins when the
cosine reaches `PROFILE_SCORE` and it has `CORE_SHARE` of the storyline's core (the terms
most of its events share). A late event of a long story shares a little with each earlier
one and enough with all of them; a story about other things that shares a word or two with
one member has little of the core. An event belongs to at most one storyline. Ties are
broken by the older event, then the lower id, so the result does not depend on dictionary
order. Everything the decision reads (postings, counts, profiles) is a function of the
indexed events, so an index rebuilt from the database decides the same.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import compress, repeat
from sys import intern

import numpy as np

from timeline.domain.clustering import _STOPWORDS, _entities, _fold, _stem

# --- thresholds, tuned on tests/domain/storylines/labelled_dev.toml only (see bench/storylines.py) ---
WINDOW = timedelta(days=30)
JOIN_SCORE = 0.2
MIN_SHARED = 3
SUPPORT = 2
STRONG_SCORE = 0.25
NAME_WEIGHT = 1.5
TITLE_WEIGHT = 1.5
# IDF smoothing: as if the index held this many more events containing none of the terms.
IDF_PRIOR = 80
# Terms in more than this share of the indexed events (past the prior) weigh nothing.
COMMON_SHARE = 0.25
MAX_TEXT = 4000
# The best-overlapping earlier events scored in full (by summed IDF of shared terms).
MAX_CANDIDATES = 50
TITLE_TERMS = 4
# A storyline's profile: its events nearest in time (bounds the cost of a long storyline),
# the likeness to it that joins (as to one event), and the share of its core (by IDF²) the
# new event must have. Chosen on the dev split: 0.15 lets distractors in, 0.25 misses;
# CORE_SHARE 0.4 to 0.6 give the same result, 0.3 lets one in.
PROFILE_MEMBERS = 8
PROFILE_SCORE = 0.2
CORE_SHARE = 0.5
# Candidates are found through the postings of the terms that at most WALK_MIN events, or
# WALK_SHARE of the indexed events, have, and of the new event's next rarest terms within
# WALK_BUDGET postings (see `StorylineIndex._overlaps`). A window of at most WALK_MIN events
# walks every posting (the labelled sets' windows hold at most 25); in the bench farm's
# 27,000-event window a placement walked ~25,000 postings, now ~1,000.
WALK_MIN = 50
WALK_SHARE = 0.002
WALK_BUDGET = 1000
# ...but a term held by more than WALK_CAP events is walked only within the budget: in a big
# window (about 500,000 events at 10,000 feeds) WALK_SHARE alone would walk terms of 1,000
# postings each. 100 is WALK_SHARE of the 1,000-feed farm's 50,000-event window (unchanged
# there). Placement among 150,000 farm events: 3,334 -> 2,183 us (scratch run, load ~1).
WALK_CAP = 100
# The terms not walked count for the events found while their postings fit in COMMON_BUDGET,
# rarest first; the commonest (the 1,000-feed bench's 45,000-event window has terms in 10,000
# events) would cost most and rank least. Placement there 830 -> 290 us an event (find, per
# round 0.42 -> 0.145 s); an exact record of 1,500 planted continuations among 27,000 farm
# events kept 868 of its 869 decisions (10,000: all), and on the dev split among 1,000
# unrelated events a day precision 0.918 -> 0.930, recall 0.839 either way.
COMMON_BUDGET = 5000

_WORD = re.compile(r"[^\W\d_][\w'’-]*")
# Words that carry no subject in news copy, beyond the clustering stop words.
_GENERIC = frozenset(
    """
    official officials government minister ministry president leader leaders country
    countries people percent million billion thousands hundreds dozens first second third
    last next week weeks months month year years day days time times end start new old
    told spokesman spokeswoman statement statements press conference news agency agencies
    group groups part parts plan plans move moves call calls called calling make makes made
    take takes took give gives gave show shows showed set sets put puts high low big large
    major key more most other others several many much such after before since during
    against over under between among about around near across also still again already
    """.split()
)


# Outlets write "Venezuelan court" and "Venezuela's court": one subject. Added to the
# clustering module's pairs, which _stem applies first.
_DEMONYMS = {
    "afghan": "afghanistan",
    "armenian": "armenia",
    "australian": "australia",
    "austrian": "austria",
    "azerbaijani": "azerbaijan",
    "bangladeshi": "bangladesh",
    "brazilian": "brazil",
    "bulgarian": "bulgaria",
    "burmese": "myanmar",
    "chilean": "chile",
    "colombian": "colombia",
    "congolese": "congo",
    "croatian": "croatia",
    "cuban": "cuba",
    "czech": "czechia",
    "danish": "denmark",
    "dutch": "netherlands",
    "egyptian": "egypt",
    "emirati": "emirates",
    "estonian": "estonia",
    "ethiopian": "ethiopia",
    "filipino": "philippines",
    "finnish": "finland",
    "georgian": "georgia",
    "greek": "greece",
    "haitian": "haiti",
    "hungarian": "hungary",
    "indonesian": "indonesia",
    "iraqi": "iraq",
    "irish": "ireland",
    "jordanian": "jordan",
    "kazakh": "kazakhstan",
    "latvian": "latvia",
    "libyan": "libya",
    "lithuanian": "lithuania",
    "malaysian": "malaysia",
    "malian": "mali",
    "mexican": "mexico",
    "moldovan": "moldova",
    "mongolian": "mongolia",
    "nepali": "nepal",
    "nigerian": "nigeria",
    "nigerien": "niger",
    "norwegian": "norway",
    "pakistani": "pakistan",
    "panamanian": "panama",
    "peruvian": "peru",
    "portuguese": "portugal",
    "romanian": "romania",
    "serbian": "serbia",
    "somali": "somalia",
    "swedish": "sweden",
    "swiss": "switzerland",
    "thai": "thailand",
    "tunisian": "tunisia",
    "uzbek": "uzbekistan",
    "venezuelan": "venezuela",
    "vietnamese": "vietnam",
    "yemeni": "yemen",
}


_POSSESSIVE = re.compile(r"['’]s$")


def _bare(word: str) -> str:
    """A word without its possessive and edge punctuation: "Russia's" -> "Russia"."""
    return _POSSESSIVE.sub("", word.strip("'’-")).strip("'’-")


def _norm(word: str) -> str:
    return _stem(_DEMONYMS.get(word, word))


# Per-word reductions are pure and news words repeat (Zipf): cached, bounded.
_WORD_CACHE = 1 << 15


@lru_cache(maxsize=_WORD_CACHE)
def _word_terms(w: str) -> tuple[str, ...]:
    """The terms of one folded word ("russia's" -> ("russia",), "dual-use" -> two)."""
    w = _bare(w)
    if len(w) < 3 or w in _STOPWORDS or w in _GENERIC:
        return ()
    return tuple(
        _norm(part)
        for part in w.split("-")
        if len(part) >= 3 and part not in _STOPWORDS and part not in _GENERIC
    )


@lru_cache(maxsize=_WORD_CACHE)
def _written(word: str) -> tuple[str, str]:
    """A word as written without its possessive, and its stem."""
    word = _bare(word)
    return word, _norm(_fold(word))


def _terms(text: str) -> list[str]:
    out: list[str] = []
    for w in _WORD.findall(_fold(text[:MAX_TEXT])):
        out.extend(_word_terms(w))
    return out


@dataclass(frozen=True, slots=True)
class Subject:
    """What an event is about: weighted content terms and its names (both as stems)."""

    terms: dict[str, float]
    names: frozenset[str]
    # Per term (in `terms`' order), a word of the event that gives it, as written ("": none,
    # e.g. the parts of "dual-use"); aligned with `terms`, a tuple (a dict was 3x the memory).
    forms: tuple[str, ...] = ()
    # Terms written in lower case somewhere in the event (so not names here; only counted,
    # so a tuple: a third of a frozenset's memory), and the terms written only at a
    # sentence's start (a name or not: the index's other events tell).
    lower: tuple[str, ...] = ()
    initial: frozenset[str] = frozenset()


_SHARED_WEIGHTS: dict[float, float] = {}


def subject(title: str, text: str = "") -> Subject:
    """Reduce an event's title and text (its sources' summaries) to a Subject."""
    title, text = title[:MAX_TEXT], text[:MAX_TEXT]
    weights: dict[str, float] = {}
    for stem in _terms(title):
        weights[stem] = max(weights.get(stem, 0.0), TITLE_WEIGHT)
    for stem in _terms(text):
        weights[stem] = max(weights.get(stem, 0.0), 1.0)
    names = (
        frozenset(_norm(n) if n in _DEMONYMS else n for n in _entities(title, text))
        & weights.keys()
    )
    for name in names:
        weights[name] *= NAME_WEIGHT
    written_as: dict[str, str] = {}
    lower: set[str] = set()
    for written in _WORD.findall(f"{title} {text}"):
        word, stem = _written(written)
        if stem in weights:
            written_as.setdefault(stem, word)
            if word[:1].islower():
                lower.add(stem)
    lower -= names
    # The few distinct weights shared (a float object each is 24 bytes, per term and event).
    weights = {t: _SHARED_WEIGHTS.setdefault(w, w) for t, w in weights.items()}
    forms = tuple(written_as.get(t, "") for t in weights)
    return Subject(
        weights, names, forms, tuple(sorted(lower)), frozenset(weights.keys() - names - lower)
    )


# --- a Subject stored with its event (so a restart reads it instead of recomputing it) --------

# Bump when `subject` (or what it uses: stop words, stems, demonyms, weights) changes what it
# returns: a stored subject of another version is ignored and recomputed from the text.
SUBJECT_VERSION = "1"
# The term weights `subject` gives, one character each (any other weight: not stored).
_WEIGHTS = sorted({1.0, TITLE_WEIGHT, NAME_WEIGHT, TITLE_WEIGHT * NAME_WEIGHT})
_WEIGHT_CODE = {w: "abcdefgh"[i] for i, w in enumerate(_WEIGHTS)}
_CODE_WEIGHT = {c: w for w, c in _WEIGHT_CODE.items()}
# Per term, what it is: a name ("n"), written in lower case somewhere ("l"), else written only
# at a sentence's start ("i", `Subject.initial`).
_IS_NAME = {"n": True, "l": False, "i": False}
_IS_LOWER = {"n": False, "l": True, "i": False}
# Stems and forms are words of `_WORD` (letters, digits, ' ’ -): none holds these.
_SEP, _FIELD = " ", "|"
_UNSAFE = re.compile(r"[\s|]")


def encode_subject(subj: Subject) -> str | None:
    """A compact text form of `subj` that :func:`decode_subject` turns back into an equal
    Subject (its terms in the same order); None if it cannot be stored (then it is recomputed).

    ``VERSION|stems|weight codes|kinds|forms``: stems and forms separated by spaces, forms
    aligned with the stems ("" where a stem has none), one character per term for its weight
    and its kind. Measured against JSON, marshal and pickle in bench/subjects.py.
    """
    stems = list(subj.terms)
    try:
        weights = "".join(_WEIGHT_CODE[w] for w in subj.terms.values())
    except KeyError:
        return None
    names, lower, initial = subj.names, subj.lower, subj.initial
    kinds = []
    for t in stems:
        if t in names:
            kinds.append("n")
        elif t in lower:
            kinds.append("l")
        elif t in initial:
            kinds.append("i")
        else:
            return None
    forms = subj.forms or ("",) * len(stems)
    if len(names) + len(lower) + len(initial) != len(stems) or len(forms) != len(stems):
        return None
    if any(not t or _UNSAFE.search(t) for t in stems) or any(_UNSAFE.search(f) for f in forms):
        return None
    return _FIELD.join(
        (SUBJECT_VERSION, _SEP.join(stems), weights, "".join(kinds), _SEP.join(forms))
    )


def decode_subject(text: str | None) -> Subject | None:
    """The Subject `text` (from :func:`encode_subject`) holds; None if there is none, or it
    was stored by another `SUBJECT_VERSION` (then the caller recomputes it)."""
    if not text:
        return None
    parts = text.split(_FIELD)
    if len(parts) != 5 or parts[0] != SUBJECT_VERSION:
        return None
    _, joined, weights, kinds, written = parts
    if not joined:
        return Subject({}, frozenset())
    # Interned, as the computed subjects' stems are shared (cached per word): hundreds of
    # thousands of subjects share a vocabulary of tens of thousands of words.
    stems = list(map(intern, joined.split(_SEP)))
    forms = tuple(map(intern, written.split(_SEP)))
    if not (len(stems) == len(weights) == len(kinds) == len(forms)):
        return None
    # C-level throughout (zip, map, compress): a cold start decodes hundreds of thousands.
    terms = dict(zip(stems, map(_CODE_WEIGHT.__getitem__, weights), strict=True))
    names = frozenset(compress(stems, map(_IS_NAME.__getitem__, kinds)))
    lower = frozenset(compress(stems, map(_IS_LOWER.__getitem__, kinds)))
    lower_terms = tuple(sorted(lower))  # as `subject` keeps them
    return Subject(terms, names, forms, lower_terms, frozenset(terms.keys() - names - lower))


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """The earlier event a new event continues, and its storyline (None: start one)."""

    event_id: int
    storyline_id: int | None
    score: float


@dataclass(frozen=True, slots=True)
class Profile:
    """A storyline as a whole: its events' terms summed (`subject`) and its `core` (the
    terms most of them share)."""

    subject: Subject
    core: frozenset[str]


@dataclass(slots=True)
class _Member:
    event_id: int
    at: datetime
    # Its subject is in the index's entries (`StorylineIndex.subject_of` rebuilds it).
    storyline_id: int | None
    slot: int  # its place in the postings and entries (`StorylineIndex._postings`)


@dataclass(slots=True)
class _Weighed:
    """A new event's terms weighed against the index, in one pass (`StorylineIndex._weigh`):
    what `find` and its steps read, each term looked up once."""

    cache: dict[str, float]  # the IDF of each term (`idf`)
    vector: dict[str, float]  # the terms weighted (`weighted`)
    rarity: list[tuple[int, str]]  # (df, term) of the distinctive terms, in the subject's order
    names: set[str]  # the distinctive names (`is_name`)
    ids: np.ndarray  # the term ids of the terms the index knows ...
    weights: np.ndarray  # ... and their weights in `vector`
    name_ids: np.ndarray  # the term ids of `names` the index knows


# The kind of a term in an event (`StorylineIndex._entry_kind`): written in lower case
# somewhere in it, a name, written only at a sentence's start (`Subject`), or none of these
# (a Subject built without them).
_LOWER, _NAME, _INITIAL, _OTHER = 0, 1, 2, 3
# The form id of every entry of a subject without written forms (`Subject.forms` empty).
_NO_FORMS = 0xFFFFFFFF


# Removed events' slots stay in the postings until this many (and as many as are indexed)
# have gathered; then the postings are rebuilt without them (`StorylineIndex._compact`).
COMPACT_MIN = 1000


class StorylineIndex:
    """The events of the last `window`, with their storylines, to place new events."""

    def __init__(self, window: timedelta = WINDOW) -> None:
        self.window = window
        self._members: dict[int, _Member] = {}
        # Per term, the slots of the events that have it, in the order they were added: an
        # event gets a new slot each time it is added, and a removed event's slot is marked
        # dead (-1 in `_slot_event`) and left in the postings until `_compact`. 4 bytes a
        # term and event, read by numpy without a copy (a set of ids was ~30 bytes).
        self._postings: dict[str, array[int]] = {}
        self._slot_event = array("q")  # the event id of each slot, -1 once removed
        # The date of each slot's event, in microseconds since the epoch (0 once removed):
        # `find` keeps the candidates within the window of the new event with numpy.
        self._slot_at = array("q")
        self._dead = 0
        # Scratch for `_overlap_slots`, one entry per slot, kept at -1 between calls.
        self._position = np.full(1024, -1, dtype=np.int64)
        # Per slot, its event's terms as entries (`_scores` reads them with numpy): slot s has
        # the entries `_slot_start[s]` to `_slot_start[s + 1]`, in its subject's term order,
        # each a term id, the term's weight (as a code: `_weights`), its kind (`_LOWER`,
        # `_NAME`, `_INITIAL`, `_OTHER`) and the id of its written form (`Subject.forms`).
        # 10 bytes a term and event: with them, 50,000 farm-like events take ~1.3 KB each in
        # the index, ~3.4 KB when it kept their Subjects.
        self._slot_start = array("q", (0,))
        self._entry_term = array("I")
        self._entry_form = array("I")
        self._entry_weight = bytearray()
        self._entry_kind = bytearray()
        # The distinct term weights (`subject` gives four), by code.
        self._weights: list[float] = []
        self._weight_code: dict[float, int] = {}
        # Term ids (renumbered by `_compact`: only the indexed events' terms have one), the
        # terms by id, and by id the counts `_df`, `_name_df` and `_lower_df` keep by term.
        self._term_id: dict[str, int] = {}
        self._term_of: list[str] = []
        # The written forms by id, and their ids (renumbered by `_compact` too).
        self._form_id: dict[str, int] = {}
        self._form_of: list[str] = []
        self._df_by_id = np.zeros(1024, dtype=np.int64)
        self._name_df_by_id = np.zeros(1024, dtype=np.int64)
        self._lower_df_by_id = np.zeros(1024, dtype=np.int64)
        # Scratch for `_scores`, by term id, kept at 0 between calls.
        self._new_weight = np.zeros(1024, dtype=np.float64)
        self._new_name = np.zeros(1024, dtype=np.bool_)
        self._df: Counter[str] = Counter()
        # In how many indexed events a term is written as a name, and in lower case.
        self._name_df: Counter[str] = Counter()
        self._lower_df: Counter[str] = Counter()
        self._by_storyline: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._members

    def storyline_of(self, event_id: int) -> int | None:
        """The storyline an indexed event belongs to (None: none, or not indexed)."""
        member = self._members.get(event_id)
        return member.storyline_id if member else None

    def add(
        self, event_id: int, at: datetime, subject: Subject, storyline_id: int | None = None
    ) -> None:
        """Index an event (again: its subject and storyline are replaced)."""
        if subject.forms and len(subject.forms) != len(subject.terms):
            raise ValueError("a subject's forms are aligned with its terms")
        self.remove(event_id)
        slot = len(self._slot_event)
        self._slot_event.append(event_id)
        self._slot_at.append(_micros(at))
        self._members[event_id] = _Member(event_id, at, storyline_id, slot)
        if storyline_id is not None:
            self._by_storyline.setdefault(storyline_id, set()).add(event_id)
        postings = self._postings
        term_id = self._term_id
        ids = []
        for term in subject.terms:
            posting = postings.get(term)
            if posting is None:
                postings[term] = array("I", (slot,))
            else:
                posting.append(slot)
            tid = term_id.get(term)
            if tid is None:
                tid = term_id[term] = len(term_id)
                self._term_of.append(term)
            ids.append(tid)
        self._df.update(subject.terms.keys())  # (counted in C: a cold start adds 500 k)
        self._name_df.update(subject.names)
        self._lower_df.update(subject.lower)
        names, lower, initial = subject.names, set(subject.lower), subject.initial
        kinds = bytes(
            _NAME if t in names else _LOWER if t in lower else _INITIAL if t in initial else _OTHER
            for t in subject.terms
        )
        codes = self._weight_code
        for w in subject.terms.values():
            if w not in codes:
                if len(codes) == 256:
                    raise ValueError("more than 256 distinct term weights")
                codes[w] = len(self._weights)
                self._weights.append(w)
        self._add_forms(subject.forms, len(ids))
        self._entry_term.extend(ids)
        self._entry_weight += bytes(map(codes.__getitem__, subject.terms.values()))
        self._entry_kind += kinds
        self._slot_start.append(len(self._entry_term))
        if len(term_id) > len(self._df_by_id):
            self._grow_terms(2 * len(term_id))
        self._count(slot, 1)

    def _add_forms(self, forms: tuple[str, ...], count: int) -> None:
        """The form ids of a new slot's `count` entries (`_NO_FORMS`: a subject without)."""
        if not forms:
            self._entry_form.extend([_NO_FORMS] * count)
            return
        form_id = self._form_id
        for form in forms:
            if form not in form_id:
                form_id[form] = len(self._form_of)
                self._form_of.append(form)
        self._entry_form.extend(map(form_id.__getitem__, forms))

    def remove(self, event_id: int) -> None:
        """Drop an event from the index (no-op when absent)."""
        member = self._members.pop(event_id, None)
        if member is None:
            return
        self._leave(member)
        self._slot_event[member.slot] = -1
        self._slot_at[member.slot] = 0
        self._dead += 1
        self._count(member.slot, -1)
        kinds = self._entry_kind[self._slot_start[member.slot] : self._slot_start[member.slot + 1]]
        by_kind = {_NAME: self._name_df, _LOWER: self._lower_df}
        for term, kind in zip(self._terms(member.slot), kinds, strict=True):
            self._df[term] -= 1
            if self._df[term] <= 0:
                del self._df[term]
            counts = by_kind.get(kind)
            if counts is not None:
                counts[term] -= 1
                if counts[term] <= 0:
                    del counts[term]
        if self._dead >= max(COMPACT_MIN, len(self._members)):
            self._compact()

    def subject_of(self, event_id: int) -> Subject | None:
        """The subject an indexed event was added with (None: not indexed)."""
        member = self._members.get(event_id)
        return self._subject(member) if member is not None else None

    def _terms(self, slot: int) -> list[str]:
        begin, end = self._slot_start[slot], self._slot_start[slot + 1]
        return list(map(self._term_of.__getitem__, self._entry_term[begin:end]))

    def _forms(self, slot: int) -> tuple[str, ...]:
        begin, end = self._slot_start[slot], self._slot_start[slot + 1]
        ids = self._entry_form[begin:end]
        if not ids or ids[0] == _NO_FORMS:
            return ()
        return tuple(map(self._form_of.__getitem__, ids))

    def _subject(self, member: _Member, *, forms: bool = True) -> Subject:
        """`member`'s Subject, rebuilt from its entries (equal to the one it was added with;
        without its written forms if not `forms`)."""
        begin, end = self._slot_start[member.slot], self._slot_start[member.slot + 1]
        stems = self._terms(member.slot)
        kinds = self._entry_kind[begin:end]
        weights = map(self._weights.__getitem__, self._entry_weight[begin:end])
        terms = dict(zip(stems, weights, strict=True))
        of_kind: dict[int, list[str]] = {_LOWER: [], _NAME: [], _INITIAL: [], _OTHER: []}
        for t, k in zip(stems, kinds, strict=True):
            of_kind[k].append(t)
        return Subject(
            terms,
            frozenset(of_kind[_NAME]),
            self._forms(member.slot) if forms else (),
            tuple(sorted(of_kind[_LOWER])),
            frozenset(of_kind[_INITIAL]),
        )

    def _compact(self) -> None:
        """Rebuild the postings without the dead slots, the live ones renumbered in order
        (a posting's order is the order its events were added, as before)."""
        events = np.frombuffer(self._slot_event, dtype=np.int64)
        live = np.flatnonzero(events >= 0)
        renumber = np.full(len(events), -1, dtype=np.int64)
        renumber[live] = np.arange(len(live))
        postings: dict[str, array[int]] = {}
        for term, posting in self._postings.items():
            if term in self._df:  # else no indexed event has it
                slots = renumber[np.frombuffer(posting, dtype=np.uint32)]
                postings[term] = array("I", slots[slots >= 0].astype(np.uint32).tobytes())
        for member in self._members.values():
            member.slot = int(renumber[member.slot])
        self._postings = postings
        self._slot_event = array("q", events[live].tobytes())
        self._slot_at = array("q", np.frombuffer(self._slot_at, dtype=np.int64)[live].tobytes())
        self._dead = 0
        # The live slots' entries, and the terms renumbered: only those indexed events have.
        entries, lengths = self._entries(live)
        old_ids = np.frombuffer(self._entry_term, dtype=np.uint32)[entries]
        term_id = {t: i for t, i in self._term_id.items() if t in self._df}
        kept = np.fromiter(term_id.values(), dtype=np.int64, count=len(term_id))
        new_id = np.full(len(self._df_by_id), -1, dtype=np.int64)
        new_id[kept] = np.arange(len(kept))
        self._term_id = {t: n for n, t in enumerate(term_id)}
        self._slot_start = array("q", np.concatenate(([0], np.cumsum(lengths))).tobytes())
        self._entry_term = array("I", new_id[old_ids].astype(np.uint32).tobytes())
        self._entry_weight = bytearray(np.frombuffer(self._entry_weight, dtype=np.uint8)[entries])
        self._term_of = list(term_id)
        self._entry_kind = bytearray(np.frombuffer(self._entry_kind, dtype=np.uint8)[entries])
        # The forms the live entries use, renumbered in the order they were first seen.
        old_forms = np.frombuffer(self._entry_form, dtype=np.uint32)[entries]
        used = np.unique(old_forms[old_forms != _NO_FORMS])
        new_form = np.full(len(self._form_of), _NO_FORMS, dtype=np.uint32)
        new_form[used] = np.arange(len(used), dtype=np.uint32)
        has = old_forms != _NO_FORMS
        old_forms[has] = new_form[old_forms[has]]
        self._entry_form = array("I", old_forms.tobytes())
        self._form_of = [self._form_of[i] for i in used.tolist()]
        self._form_id = {f: i for i, f in enumerate(self._form_of)}
        size = max(1024, 2 * len(kept))
        for name in ("_df_by_id", "_name_df_by_id", "_lower_df_by_id"):
            counts = np.zeros(size, dtype=np.int64)
            counts[: len(kept)] = getattr(self, name)[kept]
            setattr(self, name, counts)
        self._new_weight = np.zeros(size, dtype=np.float64)
        self._new_name = np.zeros(size, dtype=np.bool_)

    # --- the index as arrays (a snapshot a restart loads instead of re-adding every event) ---

    def state(self) -> dict[str, np.ndarray]:
        """Everything the index holds, as numpy arrays (copies: the index may change after),
        from which `from_state` builds an index equal to this one: the same members in the
        same order, slots, postings, entries, term and form ids, and counts. Raises
        ValueError for what arrays cannot hold (an event's date not in UTC)."""
        members = list(self._members.values())
        count = len(members)
        try:
            micros = [(m.at - _EPOCH) // _MICROSECOND for m in members]
        except TypeError:
            raise ValueError("an indexed event's date has no time zone") from None
        if any(m.at.utcoffset() for m in members):
            raise ValueError("an indexed event's date is not in UTC")
        term_ids = np.fromiter(self._term_id.values(), dtype=np.int64, count=len(self._term_id))
        if not np.array_equal(term_ids, np.arange(len(term_ids))):
            raise ValueError("term ids out of order")  # never: ids are given in order
        lengths = [len(self._postings[t]) for t in self._term_of]
        return {
            "member_event": np.fromiter((m.event_id for m in members), np.int64, count),
            "member_at": np.array(micros, dtype=np.int64),
            "member_storyline": np.fromiter(
                (-1 if m.storyline_id is None else m.storyline_id for m in members),
                np.int64,
                count,
            ),
            "member_slot": np.fromiter((m.slot for m in members), np.int64, count),
            "slot_event": np.array(self._slot_event, dtype=np.int64),
            "slot_start": np.array(self._slot_start, dtype=np.int64),
            "entry_term": np.array(self._entry_term, dtype=np.uint32),
            "entry_form": np.array(self._entry_form, dtype=np.uint32),
            "entry_weight": np.frombuffer(bytes(self._entry_weight), dtype=np.uint8),
            "entry_kind": np.frombuffer(bytes(self._entry_kind), dtype=np.uint8),
            "weights": np.array(self._weights, dtype=np.float64),
            "terms": _joined(self._term_of),
            "forms": _joined(self._form_of),
            "posting_length": np.array(lengths, dtype=np.int64),
            "postings": np.concatenate(
                [np.frombuffer(self._postings[t], dtype=np.uint32) for t in self._term_of]
                or [np.zeros(0, dtype=np.uint32)]
            ),
            "df": self._df_by_id[: len(self._term_of)].copy(),
            "name_df": self._name_df_by_id[: len(self._term_of)].copy(),
            "lower_df": self._lower_df_by_id[: len(self._term_of)].copy(),
            "dead": np.array([self._dead], dtype=np.int64),
        }

    @classmethod
    def from_state(cls, window: timedelta, state: dict[str, np.ndarray]) -> StorylineIndex:
        """The index `state` (from `state`) describes. Raises ValueError (or KeyError: an
        array missing) when the arrays do not fit together."""
        index = cls(window)
        # (astype copies only what is not of its type already: a snapshot's arrays are.)
        events = state["member_event"].astype(np.int64, copy=False).tolist()
        micros = state["member_at"].astype(np.int64, copy=False).tolist()
        storylines = state["member_storyline"].astype(np.int64, copy=False).tolist()
        slots = state["member_slot"].astype(np.int64, copy=False).tolist()
        slot_event = state["slot_event"].astype(np.int64, copy=False)
        slot_start = state["slot_start"].astype(np.int64, copy=False)
        entry_term = state["entry_term"].astype(np.uint32, copy=False)
        entry_form = state["entry_form"].astype(np.uint32, copy=False)
        weight_codes = state["entry_weight"].astype(np.uint8, copy=False)
        kinds = state["entry_kind"].astype(np.uint8, copy=False)
        weights = state["weights"].astype(np.float64, copy=False).tolist()
        terms, forms = _split(state["terms"]), _split(state["forms"])
        lengths = state["posting_length"].astype(np.int64, copy=False)
        postings = state["postings"].astype(np.uint32, copy=False)
        counts = [state[k].astype(np.int64, copy=False) for k in ("df", "name_df", "lower_df")]
        entries = len(entry_term)
        if not (
            len(events) == len(micros) == len(storylines) == len(slots)
            and len(slot_start) == len(slot_event) + 1
            and len(slot_start)
            and slot_start[0] == 0
            and slot_start[-1] == entries
            and bool(np.all(np.diff(slot_start) >= 0))
            and len(entry_form) == len(weight_codes) == len(kinds) == entries
            and len(lengths) == len(terms) == len(set(terms))
            and all(len(c) == len(terms) for c in counts)
            and int(lengths.sum()) == len(postings)
            and len(set(forms)) == len(forms)
            and len(set(weights)) == len(weights) <= 256
            and (not entries or int(entry_term.max()) < len(terms))
            and (not entries or int(weight_codes.max()) < len(weights))
            and (not entries or int(kinds.max()) <= _OTHER)
            and bool(np.all((entry_form == _NO_FORMS) | (entry_form < len(forms))))
            and (not len(postings) or int(postings.max()) < len(slot_event))
            and _slots_hold(slot_event, state["member_slot"], state["member_event"])
        ):
            raise ValueError("the storyline index's arrays do not fit together")
        # C-level loops where they can be (a busy window holds half a million events).
        ats = map(_EPOCH.__add__, map(timedelta, repeat(0), repeat(0), micros))
        sids = [None if sid < 0 else sid for sid in storylines]
        index._members = dict(zip(events, map(_Member, events, ats, sids, slots), strict=True))
        for event_id, sid in zip(events, sids, strict=True):
            if sid is not None:
                index._by_storyline.setdefault(sid, set()).add(event_id)
        if len(index._members) != len(events):
            raise ValueError("an event indexed twice")
        index._slot_event = _array("q", slot_event)
        slot_at = np.zeros(len(slot_event), dtype=np.int64)
        slot_at[state["member_slot"].astype(np.int64, copy=False)] = state["member_at"]
        index._slot_at = _array("q", slot_at)
        index._dead = int(state["dead"][0])
        index._slot_start = _array("q", slot_start)
        index._entry_term = _array("I", entry_term)
        index._entry_form = _array("I", entry_form)
        index._entry_weight = bytearray(np.ascontiguousarray(weight_codes))
        index._entry_kind = bytearray(np.ascontiguousarray(kinds))
        index._weights = weights
        index._weight_code = {w: i for i, w in enumerate(weights)}
        index._term_of = terms
        index._term_id = {t: i for i, t in enumerate(terms)}
        index._form_of = forms
        index._form_id = {f: i for i, f in enumerate(forms)}
        ends = np.cumsum(lengths).tolist()
        begins = [0, *ends][: len(ends)]
        index._postings = {
            t: _array("I", postings[b:e]) for t, b, e in zip(terms, begins, ends, strict=True)
        }
        size = max(1024, 2 * len(terms))
        for name, got in zip(
            ("_df_by_id", "_name_df_by_id", "_lower_df_by_id"), counts, strict=True
        ):
            grown = np.zeros(size, dtype=np.int64)
            grown[: len(got)] = got
            setattr(index, name, grown)
        index._new_weight = np.zeros(size, dtype=np.float64)
        index._new_name = np.zeros(size, dtype=np.bool_)
        for counter, got in zip((index._df, index._name_df, index._lower_df), counts, strict=True):
            nonzero = np.flatnonzero(got > 0).tolist()
            counter.update(
                dict(zip(map(terms.__getitem__, nonzero), got[nonzero].tolist(), strict=True))
            )
        return index

    def _entries(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The positions of `slots`' entries, slot after slot, in their term order, and how
        many each slot has."""
        starts = np.frombuffer(self._slot_start, dtype=np.int64)
        begin = starts[slots]
        lengths = starts[slots + 1] - begin
        # Each slot's run of positions: a running count, shifted to where the run begins.
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        return np.arange(total) + np.repeat(begin - (ends - lengths), lengths), lengths

    def _count(self, slot: int, by: int) -> None:
        """Count (by=1) or uncount (by=-1) a slot's terms in the counts by term id."""
        begin, end = self._slot_start[slot], self._slot_start[slot + 1]
        ids = np.frombuffer(self._entry_term, dtype=np.uint32)[begin:end]
        kinds = np.frombuffer(self._entry_kind, dtype=np.uint8)[begin:end]
        self._df_by_id[ids] += by  # a term once per event: no repeated index
        self._name_df_by_id[ids[kinds == _NAME]] += by
        self._lower_df_by_id[ids[kinds == _LOWER]] += by

    def _grow_terms(self, size: int) -> None:
        for name in ("_df_by_id", "_name_df_by_id", "_lower_df_by_id", "_new_weight", "_new_name"):
            old = getattr(self, name)
            grown = np.zeros(size, dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def members_of(self, storyline_id: int) -> set[int]:
        """The indexed events of a storyline."""
        return set(self._by_storyline.get(storyline_id, ()))

    def move_earlier(self, event_id: int, at: datetime) -> None:
        """An indexed event's date moved earlier (an earlier source joined it)."""
        member = self._members.get(event_id)
        if member is not None and at < member.at:
            member.at = at
            self._slot_at[member.slot] = _micros(at)

    def set_storyline(self, event_ids: Iterable[int], storyline_id: int | None) -> None:
        """Record that these indexed events now belong to `storyline_id`."""
        for event_id in event_ids:
            member = self._members.get(event_id)
            if member is not None:
                self._leave(member)
                member.storyline_id = storyline_id
                if storyline_id is not None:
                    self._by_storyline.setdefault(storyline_id, set()).add(event_id)

    def _leave(self, member: _Member) -> None:
        if member.storyline_id is None:
            return
        ids = self._by_storyline.get(member.storyline_id)
        if ids is not None:
            ids.discard(member.event_id)
            if not ids:
                del self._by_storyline[member.storyline_id]

    def latest(self, storyline_id: int) -> datetime | None:
        """The date of a storyline's latest indexed event (None: none indexed)."""
        ids = self._by_storyline.get(storyline_id)
        return max(self._members[e].at for e in ids) if ids else None

    def _last(self, member: _Member, latest: dict[int, datetime | None]) -> datetime | None:
        """The latest event of `member`'s storyline (cached in `latest`; None: no storyline)."""
        sid = member.storyline_id
        if sid is None:
            return None
        if sid not in latest:
            latest[sid] = self.latest(sid)
        return latest[sid]

    def _reaches(self, member: _Member, at: datetime, latest: dict[int, datetime | None]) -> bool:
        """Whether a new event at `at` is compared with `member`: it is within the window of
        `at`, or its storyline is still developing (its latest event within the window of
        `at`) and it is within the window of that latest event: a storyline chains, while a
        gap of more than the window after its latest event ends it."""
        if abs(member.at - at) <= self.window:
            return True
        last = self._last(member, latest)
        return (
            last is not None and abs(last - at) <= self.window and last - member.at <= self.window
        )

    def prune(self, now: datetime) -> int:
        """Forget the events that happened more than `window` before `now`, except those of
        a storyline still developing (its latest event within the window) that are within
        the window of its latest event; return how many were forgotten. What is held stays
        bounded: at most twice the window."""
        cutoff = now - self.window
        latest: dict[int, datetime | None] = {}
        old = []
        for m in self._members.values():
            if m.at < cutoff:
                last = self._last(m, latest)
                if last is None or last < cutoff or last - m.at > self.window:
                    old.append(m.event_id)
        for event_id in old:
            self.remove(event_id)
        return len(old)

    def _idf_terms(self) -> tuple[float, float]:
        """`idf`'s numerator and its cut (the df above which a term counts for nothing), for
        the loops that inline it."""
        n = len(self._members)
        return n + IDF_PRIOR, COMMON_SHARE * n if n >= 20 else math.inf

    def idf(self, term: str) -> float:
        """How distinctive `term` is among the indexed events (0 for the commonest)."""
        df = self._df.get(term, 0)
        n = len(self._members)
        if n >= 20 and df > COMMON_SHARE * n:
            return 0.0
        return math.log((n + IDF_PRIOR) / (df + 1))

    def score(
        self,
        a: Subject,
        b: Subject,
        cache: dict[str, float] | None = None,
        a_vec: dict[str, float] | None = None,
    ) -> tuple[float, int, bool]:
        """Return (weighted cosine, shared distinctive terms, a shared name) of two subjects.

        `cache` holds IDF values already computed (filled as a side effect) and `a_vec` the
        weighted terms of `a` (`weighted`), so one subject scored against many costs one.
        """
        shared = a.terms.keys() & b.terms.keys()
        if not shared:
            return 0.0, 0, False
        idf = {} if cache is None else cache
        wa = self.weighted(a, idf) if a_vec is None else a_vec
        na = math.sqrt(sum(w * w for w in wa.values()))
        # `weighted(b)` without building it: b is scored once, a against many. `idf` and
        # `_known_name` inlined (the same arithmetic). `_scores` does this for indexed events.
        get = idf.get
        initial = b.initial
        top, cut = self._idf_terms()
        df_get, log = self._df.get, math.log
        name_get, lower_get = self._name_df.get, self._lower_df.get
        wa_get = wa.get
        nb = dot = 0.0
        for t, w in b.terms.items():
            weight = get(t)
            if weight is None:
                df = df_get(t, 0)
                weight = idf[t] = 0.0 if df > cut else log(top / (df + 1))
            if t in initial and name_get(t, 0) > lower_get(t, 0):
                w *= NAME_WEIGHT
            x = w * weight
            nb += x * x
            y = wa_get(t)
            if y is not None:
                dot += y * x
        nb = math.sqrt(nb)
        if not na or not nb:
            return 0.0, 0, False
        distinctive = sum(1 for t in shared if idf[t] > 0)
        named = any(idf[t] > 0 and self.is_name(a, t) and self.is_name(b, t) for t in shared)
        return dot / (na * nb), distinctive, named

    def weighted(self, subject: Subject, cache: dict[str, float]) -> dict[str, float]:
        """The terms of `subject` weighted by rarity (`idf`, cached in `cache`), the names
        the index knows but the event writes only at a sentence's start counting as names."""
        out = {}
        get = cache.get
        initial = subject.initial
        for t, w in subject.terms.items():
            idf = get(t)
            if idf is None:
                idf = cache[t] = self.idf(t)
            if t in initial and self._known_name(t):
                w *= NAME_WEIGHT
            out[t] = w * idf
        return out

    def _known_name(self, term: str) -> bool:
        return self._name_df.get(term, 0) > self._lower_df.get(term, 0)

    def is_name(self, subject: Subject, term: str) -> bool:
        """Whether `term` is a name in `subject`: written as one inside a sentence, or only
        at a sentence's start ("Panama Canal cuts ...") while the indexed events mostly write
        it as a name. A word the event itself writes in lower case is never one."""
        if term in subject.names:
            return True
        return term in subject.initial and self._known_name(term)

    def profile(self, storyline_id: int, at: datetime) -> Profile | None:
        """What a storyline is about near `at`, from its `PROFILE_MEMBERS` indexed events
        nearest in time that `at` reaches (`_reaches`; None: fewer than two such events)."""
        latest: dict[int, datetime | None] = {}
        near = sorted(
            (abs(m.at - at), m.event_id, m)
            for m in (self._members[e] for e in self._by_storyline.get(storyline_id, ()))
            if self._reaches(m, at, latest)
        )[:PROFILE_MEMBERS]
        if len(near) < 2:
            return None
        terms: dict[str, float] = {}
        seen: Counter[str] = Counter()
        names: set[str] = set()
        for _, _, m in near:
            own = self._subject(m, forms=False)
            for t, w in own.terms.items():
                if self.is_name(own, t):
                    names.add(t)
                    if t not in own.names:
                        w *= NAME_WEIGHT
                terms[t] = terms.get(t, 0.0) + w
            seen.update(own.terms.keys())
        wanted = max(2, math.ceil(len(near) / 2))
        core = frozenset(t for t, c in seen.items() if c >= wanted)
        return Profile(Subject(terms, frozenset(names)), core)

    def coverage(self, subject: Subject, core: frozenset[str], cache: dict[str, float]) -> float:
        """The share of a storyline's core, weighted by rarity, that `subject` has too."""
        total = have = 0.0
        for t in core:
            w = cache[t] if t in cache else self.idf(t)
            total += w * w
            if t in subject.terms:
                have += w * w
        return have / total if total else 0.0

    def _overlaps(self, subject: Subject, cache: dict[str, float]) -> list[int]:
        """The event ids of `_overlap_slots` (`cache` filled with the IDF of every term of
        `subject`)."""
        weighed = self._weigh(subject)
        cache.update(weighed.cache)
        events = np.frombuffer(self._slot_event, dtype=np.int64)
        ranked: list[int] = events[self._overlap_slots(weighed)].tolist()
        return ranked

    def _weigh(self, subject: Subject) -> _Weighed:
        """`subject`'s terms against the index: each term's IDF (`idf`), weight (`weighted`)
        and whether it is a distinctive name (`is_name`), with one look-up of its id (the
        counts by id, `_df_by_id` and the like, are the counts by term)."""
        terms = subject.terms
        tid = self._term_id.get
        ids = np.fromiter((tid(t, -1) for t in terms), dtype=np.int64, count=len(terms))
        known = ids >= 0
        at = np.where(known, ids, 0)
        dfs = np.where(known, self._df_by_id[at], 0).tolist()
        known_names = (known & (self._name_df_by_id[at] > self._lower_df_by_id[at])).tolist()
        top, cut = self._idf_terms()  # `idf`, inlined
        log = math.log
        cache: dict[str, float] = {}
        vector: dict[str, float] = {}
        rarity: list[tuple[int, str]] = []
        names: set[str] = set()
        named: list[bool] = []
        own_names, initial = subject.names, subject.initial
        for (t, w), df, known_name in zip(terms.items(), dfs, known_names, strict=True):
            idf = cache[t] = 0.0 if df > cut else log(top / (df + 1))
            # A name the event writes only at a sentence's start where the index mostly
            # writes it as one (`is_name`; `names` and `initial` are disjoint).
            if t in initial and known_name:
                w *= NAME_WEIGHT
                name = True
            else:
                name = t in own_names
            vector[t] = w * idf
            if idf > 0:
                rarity.append((df, t))
                if name:
                    names.add(t)
            named.append(idf > 0 and name)
        weights = np.fromiter(vector.values(), dtype=np.float64, count=len(vector))
        return _Weighed(
            cache,
            vector,
            rarity,
            names,
            ids[known],
            weights[known],
            ids[np.fromiter(named, dtype=np.bool_, count=len(named)) & known],
        )

    def _overlap_slots(  # noqa: C901 (the hot loop of placement, kept in one frame for speed)
        self, weighed: _Weighed
    ) -> np.ndarray:
        """The slots of the indexed events sharing at least `MIN_SHARED` distinctive terms
        with the weighed subject, by the summed IDF of the terms they share, highest first
        (ties: lower id), at most `MAX_CANDIDATES`.

        Events are found through the postings of the terms at most `WALK_MIN` events or
        `WALK_SHARE` of the indexed events (at most `WALK_CAP`) have, then of the next rarest
        terms of `subject` while their postings fit in `WALK_BUDGET` (the rarest whatever its
        count): a story that fills the window is still found through its least common
        words. A commoner term's postings (thousands in a busy window) are not walked: it
        only counts for the events found another way, and only while the postings of such
        terms fit in `COMMON_BUDGET`, rarest first. An event that shares nothing but common
        words with the new one is no candidate.
        """
        cap = min(max(WALK_MIN, WALK_SHARE * len(self._members)), WALK_CAP)
        postings, cache = self._postings, weighed.cache
        weighed_terms = sorted(weighed.rarity)
        walked: set[str] = set()
        budget = WALK_BUDGET
        for df, term in weighed_terms:
            if df <= cap or df <= budget or not walked:
                walked.add(term)
                if df > cap:
                    budget -= df
            else:
                break
        # The common terms that count, rarest first, while their postings fit in the budget.
        counted: set[str] = set()
        budget = COMMON_BUDGET
        for df, term in weighed_terms:
            if term not in walked:
                if df > budget:
                    break
                budget -= df
                counted.add(term)
        # The postings in the subject's term order, the walked (rare) ones apart; joined as
        # bytes, so each is read by numpy once, without a view per term. (A term no indexed
        # event has, df 0, has no live slot in its posting, if it has one.)
        rare: list[array[int]] = []
        rare_weights: list[float] = []
        rare_lengths: list[int] = []
        common: list[array[int]] = []
        common_weights: list[float] = []
        common_lengths: list[int] = []
        for df, term in weighed.rarity:
            if not df:
                continue
            posting = postings[term]
            if term in walked:
                rare.append(posting)
                rare_weights.append(cache[term])
                rare_lengths.append(len(posting))
            elif term in counted:
                common.append(posting)
                common_weights.append(cache[term])
                common_lengths.append(len(posting))
        if not rare:
            return _NO_SLOTS
        events = np.frombuffer(self._slot_event, dtype=np.int64)
        slots = np.frombuffer(b"".join(rare), dtype=np.uint32)
        weights = np.repeat(rare_weights, rare_lengths)
        if len(self._position) < len(events):
            self._position = np.full(2 * len(events), -1, dtype=np.int64)
        # The distinct slots found (`found`) and each hit's place among them (`at`), through
        # the scratch `position` by slot (kept at -1 between calls): of the hits on a slot,
        # the one whose number stayed in `position` stands for it. Removed events' slots are
        # dropped at the end (they add to no live event's sums).
        position = self._position
        hit = np.arange(len(slots))
        position[slots] = hit
        found = slots[position[slots] == hit]
        position[found] = np.arange(len(found))
        try:
            at = position[slots]
            if common:
                # A common term counts only for the events found through the rare ones.
                hits = position[np.frombuffer(b"".join(common), dtype=np.uint32)]
                have = hits >= 0
                at = np.concatenate((at, hits[have]))
                weights = np.concatenate((weights, np.repeat(common_weights, common_lengths)[have]))
        finally:
            position[found] = -1
        # Summed per event in the terms' order, rare ones first, as a loop over the terms
        # would (bincount adds in input order), so the ranking does not depend on rounding.
        mass = np.bincount(at, weights=weights, minlength=len(found))
        wanted = np.bincount(at, minlength=len(found)) >= MIN_SHARED
        wanted &= events[found] >= 0
        kept, mass = found[wanted].astype(np.int64), mass[wanted]
        # By mass, highest first; equal masses by id.
        ranked: np.ndarray = kept[np.lexsort((events[kept], -mass))][:MAX_CANDIDATES]
        return ranked

    def _scores(self, slots: list[int], weighed: _Weighed) -> list[tuple[float, int, bool]]:
        """`score(a, b)` of a new event (`weighed`: `_weigh`) against the indexed events in
        `slots`, all at once: per slot (weighted cosine, shared distinctive terms, a shared
        name), as `score` gives. The same arithmetic as `score`, summed in the same order,
        over the slots' entries (numpy's logarithm for the other event's IDF).
        """
        if not slots:
            return []
        k = len(slots)
        entries, lengths = self._entries(np.array(slots, dtype=np.int64))
        terms = np.frombuffer(self._entry_term, dtype=np.uint32)[entries]
        kinds = np.frombuffer(self._entry_kind, dtype=np.uint8)[entries]
        codes = np.frombuffer(self._entry_weight, dtype=np.uint8)[entries]
        weights = np.asarray(self._weights, dtype=np.float64)[codes]
        owner = np.repeat(np.arange(k), lengths)
        top, cut = self._idf_terms()
        df = self._df_by_id[terms]
        idf = np.log(top / (df + 1.0))
        idf[df > cut] = 0.0
        # A term written only at a sentence's start counts as a name where the index writes
        # it mostly as one (`is_name`): looked up for those entries only (few).
        initial = np.flatnonzero(kinds == _INITIAL)
        initial_terms = terms[initial]
        initial_name = initial[
            self._name_df_by_id[initial_terms] > self._lower_df_by_id[initial_terms]
        ]
        weights[initial_name] *= NAME_WEIGHT
        x = weights * idf
        nb = np.sqrt(np.bincount(owner, weights=x * x, minlength=k))
        # The new event's weights and names by term id (its terms the index does not hold
        # are in no indexed event: they add nothing here).
        new_weight, new_name = self._new_weight, self._new_name
        ids, name_ids = weighed.ids, weighed.name_ids
        new_weight[ids] = weighed.weights
        new_name[name_ids] = True
        try:
            y = new_weight[terms]
            b_name = kinds == _NAME
            b_name[initial_name] = True
            shared_name = new_name[terms] & b_name
        finally:
            new_weight[ids] = 0.0
            new_name[name_ids] = False
        # Other terms add y * x = 0.0: the same sum as over the shared terms only.
        dot = np.bincount(owner, weights=y * x, minlength=k)
        distinctive = np.bincount(owner, weights=y > 0, minlength=k)
        named = np.bincount(owner, weights=shared_name, minlength=k) > 0
        na = math.sqrt(sum(w * w for w in weighed.vector.values()))
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.where((nb > 0) & (na > 0), dot / (na * nb), 0.0)
        return list(
            zip(cosine.tolist(), distinctive.astype(np.int64).tolist(), named.tolist(), strict=True)
        )

    def find(  # noqa: C901 (the hot loop of placement, kept in one frame for speed)
        self, subject: Subject, at: datetime, *, exclude: int | None = None
    ) -> StoryMatch | None:
        """Return the earlier event within the window that `subject` continues, if any.

        Earlier events count within the window of `at`, and the events of a storyline still
        developing within the window of its latest event (`_reaches`). Joining a storyline
        with two or more such events takes `SUPPORT` of them
        that the new event resembles, or one it resembles strongly (`STRONG_SCORE`), or a
        likeness to the storyline's profile (its events' terms summed, `PROFILE_SCORE`): one
        loose likeness to one member is how a story about other things slips in, while a
        later event of a long story often shares a little with each earlier one and enough
        with all of them together.
        """
        weighed = self._weigh(subject)
        cache, a_vec = weighed.cache, weighed.vector
        ranked = self._overlap_slots(weighed)
        liked: list[tuple[float, datetime, int]] = []
        near: dict[int, tuple[float, datetime, int]] = {}  # storyline -> its likest member
        members = self._members
        latest: dict[int, datetime | None] = {}
        # Those within the window of `at` by their slots' dates, the others by `_reaches`.
        events = np.frombuffer(self._slot_event, dtype=np.int64)[ranked].tolist()
        gaps = np.frombuffer(self._slot_at, dtype=np.int64)[ranked] - _micros(at)
        close = (np.abs(gaps) <= self.window // _MICROSECOND).tolist()
        candidates = [
            members[e]
            for e, near in zip(events, close, strict=True)
            if e != exclude and (near or self._reaches(members[e], at, latest))
        ]
        scores = self._scores([m.slot for m in candidates], weighed)
        for member, (score, shared, named) in zip(candidates, scores, strict=True):
            liking = score >= JOIN_SCORE and shared >= MIN_SHARED and named
            if member.storyline_id is not None:
                key = (-score, member.at, member.event_id)
                best = near.get(member.storyline_id)
                if best is None or key < best:
                    near[member.storyline_id] = key
            if liking:
                liked.append((-score, member.at, member.event_id))
        support: Counter[int | None] = Counter(
            self._members[event_id].storyline_id for _, _, event_id in liked
        )
        profiles: dict[int, float] = {}
        found: dict[int, Profile | None] = {}

        def profile(sid: int) -> Profile | None:
            if sid not in found:
                found[sid] = self.profile(sid, at)
            return found[sid]

        def fits(sid: int) -> bool:
            """Whether the new event is like the storyline as a whole (see `PROFILE_SCORE`)."""
            if sid not in profiles:
                profiles[sid] = 0.0
                prof = profile(sid)
                if prof is not None:
                    score, shared, named = self.score(subject, prof.subject, cache, a_vec)
                    if (
                        shared >= MIN_SHARED
                        and named
                        and score >= PROFILE_SCORE
                        and self.coverage(subject, prof.core, cache) >= CORE_SHARE
                    ):
                        profiles[sid] = score
            return profiles[sid] > 0

        for key in sorted(liked):
            member = self._members[key[2]]
            sid = member.storyline_id
            if sid is not None and self._size_near(sid, at) >= 2:
                if support[sid] < SUPPORT and -key[0] < STRONG_SCORE and not fits(sid):
                    continue
            return StoryMatch(member.event_id, sid, -key[0])
        joinable = sorted(
            (-profiles[sid], key[1], key[2], sid) for sid, key in near.items() if fits(sid)
        )
        if joinable:
            score, _, event_id, sid = joinable[0]
            return StoryMatch(event_id, sid, -score)
        return None

    def _size_near(self, storyline_id: int, at: datetime) -> int:
        """Members of a storyline that `at` reaches (the ones a new event can like)."""
        latest: dict[int, datetime | None] = {}
        return sum(
            1
            for e in self._by_storyline.get(storyline_id, ())
            if self._reaches(self._members[e], at, latest)
        )

    def title_for(self, event_ids: Iterable[int], limit: int = TITLE_TERMS) -> str:
        """Name a storyline by the distinctive terms most of its indexed events share."""
        members = [self._members[e] for e in event_ids if e in self._members]
        if not members:
            return ""
        counts: Counter[str] = Counter()
        forms: dict[str, str] = {}
        for m in members:
            terms = self._terms(m.slot)
            counts.update(terms)
            for stem, form in zip(terms, self._forms(m.slot), strict=False):
                if form:
                    forms.setdefault(stem, form)
        wanted = max(2, math.ceil(len(members) / 2))
        ranked = sorted(
            (t for t, c in counts.items() if c >= min(wanted, len(members))),
            key=lambda t: (-counts[t] * (self.idf(t) + 0.01), t),
        )
        words = [forms.get(t, t) for t in ranked[:limit]]
        return ", ".join(w[:1].upper() + w[1:] for w in words)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # (for dates given without a time zone)
_MICROSECOND = timedelta(microseconds=1)
_NO_SLOTS = np.zeros(0, dtype=np.int64)


def _micros(at: datetime) -> int:
    """`at` in microseconds since the epoch (a date without a time zone: of a naive epoch)."""
    return (at - (_NAIVE_EPOCH if at.tzinfo is None else _EPOCH)) // _MICROSECOND


def _array(code: str, values: np.ndarray) -> array[int]:
    """An array of `values` (of that item size), copied once."""
    out = array(code)
    out.frombytes(np.ascontiguousarray(values).data.cast("B"))
    return out


def _slots_hold(slot_event: np.ndarray, slots: np.ndarray, events: np.ndarray) -> bool:
    """Whether each member's slot is a slot, holding that member's event."""
    slots = slots.astype(np.int64)
    if len(slots) and (int(slots.min()) < 0 or int(slots.max()) >= len(slot_event)):
        return False
    return bool(np.array_equal(slot_event[slots], events.astype(np.int64)))


def _joined(words: list[str]) -> np.ndarray:
    """Words as one array of UTF-8 bytes, a newline after each (no stem or form holds one)."""
    if any("\n" in w for w in words):
        raise ValueError("a word holds a newline")
    return np.frombuffer("".join(w + "\n" for w in words).encode(), dtype=np.uint8)


def _split(data: np.ndarray) -> list[str]:
    """The words `_joined` joined, interned (as a computed subject's stems are shared)."""
    text = data.astype(np.uint8).tobytes().decode()
    if text and not text.endswith("\n"):
        raise ValueError("a word list cut short")
    return list(map(intern, text.split("\n")[:-1]))


# --- source briefs: what a joining source says that the earlier ones did not ----------------

BRIEF_CHARS = 300
_SENTENCE = re.compile(r"(?<=[.!?])[\"”’']?\s+(?=[\"“‘A-Z0-9])")
_CLAUSE = re.compile(r";\s+|\s+[—–]\s+|,\s+(?:while|but|and|as|after|although|whereas)\s+")
_QUOTE = re.compile(r"[\"“]([^\"”]{8,300})[\"”]")
_NUMBER = re.compile(r"\d[\d,.]*(?:\s*(?:-|to)\s*\d[\d,.]*)?")
_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve dozen dozens hundred "
    "hundreds thousand thousands million millions billion billions trillion".split()
)


def _facts(text: str) -> set[str]:
    """The checkable facts of a text: figures, quoted words, names (as folded stems)."""
    facts = {n.replace(",", "") for n in _NUMBER.findall(text)}
    for quote in _QUOTE.findall(text):
        facts.update(f"q:{t}" for t in _terms(quote))
    facts.update(f"n:{n}" for n in _entities("", text))
    words = _WORD.findall(_fold(text))
    facts.update(f"w:{w}" for w in words if w in _NUMBER_WORDS)
    return facts


def _pieces(text: str) -> list[str]:
    out = []
    for sentence in _SENTENCE.split(text.strip()):
        parts = [p.strip() for p in _CLAUSE.split(sentence) if p and p.strip()]
        out.extend(parts if len(parts) > 1 else [sentence.strip()])
    return [p for p in out if len(p) >= 12]


def source_brief(new: str, earlier: Iterable[str]) -> str | None:
    """Return the sentence or clause of `new` that adds most to `earlier`, or None.

    Extractive: a piece of the new source's text is kept when it carries figures, quotes,
    names or terms that no earlier source has. None means the source adds nothing new.
    """
    new = new[:MAX_TEXT]
    seen_text = " ".join(e[:MAX_TEXT] for e in earlier)
    seen_facts = _facts(seen_text)
    seen_terms = set(_terms(seen_text))
    best: tuple[float, int, str] | None = None
    for i, piece in enumerate(_pieces(new)):
        facts = _facts(piece) - seen_facts
        terms = set(_terms(piece)) - seen_terms
        figures = sum(1 for f in facts if f[0].isdigit() or f.startswith("w:"))
        quotes = sum(1 for f in facts if f.startswith("q:"))
        names = sum(1 for f in facts if f.startswith("n:"))
        score = 2.0 * figures + 1.0 * min(quotes, 3) + 1.0 * names + 0.5 * len(terms)
        if not (figures or quotes or names) and len(terms) < 3:
            continue
        if best is None or (score, -i) > (best[0], -best[1]):
            best = (score, i, piece)
    if best is None or best[0] < 2.0:
        return None
    piece = best[2]
    return piece if len(piece) <= BRIEF_CHARS else piece[: BRIEF_CHARS - 1].rstrip() + "…"
