"""Stored storyline subjects: bytes per subject and decoding speed, by encoding.

    .venv/bin/python -m bench.subjects [--n 20000]

The storyline cache reads one stored `Subject` per event of its window at a cold start
(570,000 on the 1 M-entry cold-start database), so the encoding is chosen by what it costs to
turn back into a `Subject`: the text format of `encode_subject` against JSON, marshal and
pickle of the same fields, on the cold-start bench's texts (titles of 10 words, summaries of
25-45) and on the labelled storyline events (real news copy). Also the cost of computing the
subject from the text, which a stored one saves. Prints figures; never asserts on time.
"""

from __future__ import annotations

import argparse
import gc
import json
import marshal
import os
import pickle
import random
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from sys import intern
from typing import Any

from bench.bench_query import Corpus, make_vocab
from timeline.domain.storylines import Subject, decode_subject, encode_subject, subject

ROOT = Path(__file__).resolve().parent.parent


def _fields(s: Subject) -> tuple[list[str], list[float], list[str], list[str], list[str]]:
    return list(s.terms), list(s.terms.values()), sorted(s.names), list(s.forms), sorted(s.lower)


def _from_fields(stems: Any, weights: Any, names: Any, forms: Any, lower: Any) -> Subject:
    # Interned as `decode_subject` does (the memory of a cold start's 570,000 subjects).
    stems = list(map(intern, stems))
    forms = tuple(map(intern, forms))
    terms = dict(zip(stems, weights, strict=True))
    n, lo = frozenset(names), frozenset(lower)
    return Subject(terms, n, forms, tuple(sorted(lo)), frozenset(terms.keys() - n - lo))


def _text(s: Subject) -> bytes:
    return (encode_subject(s) or "").encode()


def _untext(b: bytes) -> Subject:
    got = decode_subject(b.decode())
    assert got is not None
    return got


ENCODINGS: dict[str, tuple[Callable[[Subject], bytes], Callable[[bytes], Subject]]] = {
    "text (encode_subject)": (_text, _untext),
    "json": (
        lambda s: json.dumps(_fields(s), separators=(",", ":"), ensure_ascii=False).encode(),
        lambda b: _from_fields(*json.loads(b)),
    ),
    "marshal": (lambda s: marshal.dumps(_fields(s)), lambda b: _from_fields(*marshal.loads(b))),
    "pickle (of the Subject)": (  # (its strings not interned)
        lambda s: pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL),
        pickle.loads,
    ),
}


def texts(n: int) -> dict[str, list[tuple[str, str]]]:
    """The cold-start bench's texts, and the labelled storyline events."""
    rng = random.Random(7)
    corpus = Corpus(rng, make_vocab(rng))
    synthetic = [(corpus.text(10), corpus.text(rng.randint(25, 45))) for _ in range(n)]
    labelled = []
    for name in ("labelled_dev.toml", "labelled_test.toml"):
        data = tomllib.loads((ROOT / "tests/domain/storylines" / name).read_text())
        labelled += [(e["title"], e.get("summary", "")) for e in data["event"]]
    return {"cold-start bench texts": synthetic, "labelled events": labelled}


def _per_item(fn: Callable[[], object], count: int) -> float:
    """CPU microseconds per item of the best of three runs of `fn` (over `count` items),
    the cycle collector paused as in a cold start's load (timeline.storage.bulk)."""
    best = float("inf")
    for _ in range(3):
        gc.disable()
        began = time.process_time()
        fn()
        best = min(best, time.process_time() - began)
        gc.enable()
    return best / count * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print bytes per subject and decoding CPU per subject, per encoding and text set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="synthetic texts")
    args = parser.parse_args(argv)
    for label, pairs in texts(args.n).items():
        subjects = [subject(t, s) for t, s in pairs]
        reps = max(1, 20_000 // len(subjects))
        many = subjects * reps
        again = pairs * reps
        # Warm: the per-word caches are filled, as in a long refresh.
        computed = _per_item(lambda: [subject(t, s) for t, s in again], len(many))  # noqa: B023
        print(f"{label}: {len(subjects):,} subjects, computing one {computed:.1f} us CPU")
        for name, (encode, decode) in ENCODINGS.items():
            blobs = [encode(s) for s in many]
            for s, b in zip(subjects, blobs, strict=False):
                back = decode(b)
                assert back == s and list(back.terms) == list(s.terms), name
            size = sum(len(b) for b in blobs) / len(blobs)
            took = _per_item(lambda: [decode(b) for b in blobs], len(blobs))  # noqa: B023
            print(f"  {name:24} {size:7.0f} bytes  decode {took:5.1f} us CPU")
    print(f"load {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
