"""Precision and recall of the clustering decision over the labelled pairs."""

from __future__ import annotations

from collections import Counter

from tests.domain.clustering.labelled import evaluate, load_pairs, precision_recall

PRECISION_TARGET = 0.95
RECALL_TARGET = 0.80


def test_labelled_set_is_large_and_mostly_hard() -> None:
    pairs = load_pairs()
    kinds = Counter(p["kind"] for p in pairs)
    assert len(pairs) >= 80
    assert sum(not p["same"] for p in pairs) >= 40
    for kind in ("follow_up", "same_summit", "same_place", "template", "wire_rewrite"):
        assert kinds[kind] >= 5, kind


def test_precision_and_recall_meet_targets_pairwise() -> None:
    precision, recall = precision_recall(evaluate())
    assert precision >= PRECISION_TARGET, precision
    assert recall >= RECALL_TARGET, recall


def test_precision_and_recall_meet_targets_in_a_crowded_index() -> None:
    precision, recall = precision_recall(evaluate(crowded=True))
    assert precision >= PRECISION_TARGET, precision
    assert recall >= RECALL_TARGET, recall


def test_seed_story_merges_and_its_follow_up_stays_apart() -> None:
    outcomes = {o.note: o for o in evaluate()}
    seed = outcomes["seed story: Bloomberg and Reuters, different headlines"]
    assert seed.match is not None and seed.match.stage == "same_story"
    follow_up = outcomes["seed follow-up: Beijing's reply to the communique"]
    assert follow_up.match is None
    for o in outcomes.values():
        if o.kind in ("same_summit", "template"):
            assert o.match is None, o.note


def test_every_identical_pair_is_found_by_link_or_key() -> None:
    for o in evaluate():
        if o.kind == "identical":
            assert o.match is not None and o.match.stage == "identical", o.note
