"""EventIndex behaviour: identity, windows, several sources, hostile input."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.domain.test_text_dates import CASES, PUB
from timeline.domain.clustering import _MAY_NAME_A_DAY, EventIndex, link_key
from timeline.domain.text_dates import extract_dates

T0 = datetime(2024, 7, 9, 21, 14, tzinfo=UTC)
WIRE_TITLE = "Kenya's president withdraws finance bill after deadly protests"
WIRE_SUMMARY = (
    "Kenyan President William Ruto said Wednesday he would not sign a finance bill containing "
    "tax hikes, a day after protesters stormed parliament and more than 20 people were killed."
)


def story(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": WIRE_TITLE,
        "summary": WIRE_SUMMARY,
        "published": T0,
        "link": "https://www.france24.com/en/kenya-finance-bill",
    }
    base.update(over)
    return base


def test_empty_index_finds_nothing() -> None:
    assert EventIndex().find(**story()) is None


def test_same_link_with_tracking_and_scheme_changes_is_identical() -> None:
    index = EventIndex()
    index.add(7, **story())
    got = index.find(
        **story(
            title="Completely rewritten headline",
            summary="",
            link="http://france24.com/en/kenya-finance-bill/?utm_source=rss#top",
        )
    )
    assert got is not None and (got.event_id, got.stage) == (7, "identical")


def test_same_guid_is_identical_but_feed_local_counters_are_not() -> None:
    index = EventIndex()
    index.add(1, **story(link=None), keys=["urn:uuid:5f0c3a2e-1b7d-4f55-9c1e-0a9d2b7e4c11"])
    index.add(
        2, **story(title="Fed holds rates", summary="Rates steady.", link=None), keys=["1234"]
    )
    got = index.find(
        title="x",
        summary="",
        published=T0,
        link=None,
        keys=["urn:uuid:5f0c3a2e-1b7d-4f55-9c1e-0a9d2b7e4c11"],
    )
    assert got is not None and (got.event_id, got.stage) == (1, "identical")
    # "1234" is item 1234 of some other feed: a different story, so no match at all.
    other = index.find(
        title="Oil prices rise", summary="Brent rose.", published=T0, link=None, keys=["1234"]
    )
    assert other is None


def test_wire_copy_is_a_near_copy() -> None:
    index = EventIndex()
    index.add(3, **story())
    got = index.find(
        **story(
            title="Kenya's Ruto withdraws finance bill after deadly protests",
            summary=WIRE_SUMMARY.replace("more than 20", "at least 22"),
            link="https://www.barrons.com/news/kenya-ruto-bill",
            published=T0 + timedelta(hours=1),
        )
    )
    assert got is not None and (got.event_id, got.stage) == (3, "near_copy")
    assert 0 < got.score <= 1


def test_nothing_matches_outside_the_window() -> None:
    index = EventIndex(window=timedelta(hours=72))
    index.add(3, **story(summary=WIRE_SUMMARY.replace(" Wednesday", "")))
    # No weekday in the text: "Wednesday" three days later would name another Wednesday.
    summary = WIRE_SUMMARY.replace(" Wednesday", "")
    later = story(summary=summary, link="https://o.example/a", published=T0 + timedelta(hours=73))
    assert index.find(**later) is None
    earlier = story(summary=summary, link="https://o.example/b", published=T0 + timedelta(hours=71))
    assert index.find(**earlier) is not None


def test_a_new_story_can_match_any_source_of_an_event() -> None:
    index = EventIndex()
    index.add(
        5,
        title="Explosion reported at BASF site in Ludwigshafen",
        summary="Emergency services are responding, police said.",
        published=T0,
        link="https://a.example/1",
    )
    index.add(5, **story(published=T0 + timedelta(hours=1), link="https://b.example/2"))
    got = index.find(**story(published=T0 + timedelta(hours=2), link="https://c.example/3"))
    assert got is not None and got.event_id == 5
    assert index.earliest(5) == T0
    assert index.earliest(6) is None
    assert len(index) == 2


def test_find_then_add_reuses_the_work_and_keeps_ids_straight() -> None:
    index = EventIndex()
    index.add(1, **story())
    new = story(
        title="Gold hits record high",
        summary="Gold rose to $2,483 an ounce.",
        link="https://d.example/gold",
    )
    assert index.find(**new) is None
    index.add(2, **new)
    again = index.find(
        **story(
            link="https://e.example/gold-copy",
            title="Gold hits record high",
            summary="Gold rose to $2,483 an ounce.",
        )
    )
    assert again is not None and again.event_id == 2


def test_daily_templates_with_other_figures_stay_apart() -> None:
    index = EventIndex()
    index.add(
        1,
        title="Ukraine says it shot down 23 of 28 Russian drones overnight",
        summary="Ukraine's air force said on Tuesday it destroyed 23 of 28 drones.",
        published=datetime(2024, 10, 15, 6, 30, tzinfo=UTC),
        link=None,
    )
    got = index.find(
        title="Ukraine says it shot down 19 of 24 Russian drones overnight",
        summary="Ukraine's air force said on Wednesday it destroyed 19 of 24 drones.",
        published=datetime(2024, 10, 16, 6, 20, tzinfo=UTC),
        link=None,
    )
    assert got is None


@pytest.mark.parametrize(
    "hostile",
    [
        {"title": "", "summary": ""},
        {"title": "!!! ??? ...", "summary": "— – -"},
        {"title": "Ω" * 200_000, "summary": "\x00\ud800" * 1000},
        {"title": "NATO " * 100_000, "summary": "A" * 1_000_000},
        {"title": "Zalgo Ṱ̺̺̕o͞ ̷i̲̬͇̪͙n̝̗͕v̟̜̘̦͟o̶̙̰̠kè͚̮̺̪̹̱̤", "summary": "ｆｕｌｌｗｉｄｔｈ ＮＡＴＯ"},
    ],
)
def test_hostile_text_never_crashes(hostile: dict[str, str]) -> None:
    index = EventIndex()
    index.add(1, **story())
    index.add(2, title=hostile["title"], summary=hostile["summary"], published=T0, link=None)
    index.find(title=hostile["title"], summary=hostile["summary"], published=T0, link=None)


def test_two_empty_stories_are_not_the_same_event() -> None:
    index = EventIndex()
    index.add(1, title="", summary="", published=T0, link=None)
    assert index.find(title="", summary="", published=T0, link=None) is None


def test_naive_datetimes_and_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        EventIndex().add(1, **story(published=datetime(2024, 7, 9)))
    with pytest.raises(ValueError, match="window"):
        EventIndex(window=timedelta(0))


@pytest.mark.parametrize(
    ("link", "key"),
    [
        ("https://www.Example.com/a/b/?utm_medium=rss&id=3#x", "example.com/a/b?id=3"),
        ("http://example.com/a/b?id=3", "example.com/a/b?id=3"),
        ("", None),
        (None, None),
        ("not a url", None),
        ("http://[::1", None),
        ("https://" + "a" * 5000, None),
    ],
)
def test_link_key(link: str | None, key: str | None) -> None:
    assert link_key(link) == key


def _stories(
    rng: random.Random, n: int, start: datetime, spread: timedelta, tag: str
) -> list[dict[str, Any]]:
    """Return `n` made-up stories published within `spread` after `start`, a third near copies."""
    words = [f"w{i}" for i in range(5000)]
    names = [f"Name{i}" for i in range(500)]
    out: list[dict[str, Any]] = []
    for i in range(n):
        if out and rng.random() < 0.3:
            base = rng.choice(out)
            copy = dict(base, link=f"https://copy.example/{tag}{i}", published=base["published"])
            copy["summary"] = base["summary"].replace(base["summary"].split()[0], "Amid", 1)
            out.append(copy)
            continue
        title = " ".join([*rng.sample(words, 6), *rng.sample(names, 2)])
        summary = " ".join([*rng.sample(words, 25), *rng.sample(names, 3)]) + "."
        published = start + spread * rng.random()
        out.append(
            {
                "title": title,
                "summary": summary,
                "published": published,
                "link": f"https://n.example/{tag}{i}",
            }
        )
    return out


def test_prune_forgets_sources_older_than_the_window_and_keeps_the_rest() -> None:
    rng = random.Random(3)
    window = timedelta(hours=72)
    old = _stories(rng, 1200, T0, timedelta(hours=10), "old")
    recent = _stories(rng, 300, T0 + timedelta(hours=80), timedelta(hours=10), "recent")
    index = EventIndex(window)
    for event_id, s in enumerate(old + recent):
        index.add(event_id, **s, seen=s["published"])
    now = T0 + timedelta(hours=90)
    assert index.prune(T0 + timedelta(hours=20)) == 0  # nothing has expired yet
    assert index.prune(now) == 1200
    assert len(index) == 300
    assert index.prune(now) == 0
    # The old stories are gone (even their links); the recent ones are still found by link.
    gone = index.find(**dict(old[0], published=now))
    assert gone is None or gone.event_id >= 1200
    got = index.find(**dict(recent[0], published=now))
    assert got is not None and got.stage == "identical" and got.event_id == 1200
    assert index.earliest(0) is None and index.earliest(1200) == recent[0]["published"]


def test_prune_waits_until_enough_has_expired() -> None:
    # Rebuilding is O(index): a few expired sources are dropped with the next big batch.
    rng = random.Random(4)
    index = EventIndex(timedelta(hours=72))
    stories = _stories(rng, 50, T0, timedelta(hours=1), "old")
    stories += _stories(rng, 1500, T0 + timedelta(hours=70), timedelta(hours=1), "recent")
    for event_id, s in enumerate(stories):
        index.add(event_id, **s, seen=s["published"])
    assert index.prune(T0 + timedelta(hours=74)) == 0
    assert len(index) == 1550


def test_a_pruned_index_decides_like_a_fresh_one() -> None:
    rng = random.Random(5)
    window = timedelta(hours=72)
    old = _stories(rng, 1100, T0, timedelta(hours=5), "old")
    recent = _stories(rng, 400, T0 + timedelta(hours=76), timedelta(hours=4), "recent")
    pruned, fresh = EventIndex(window), EventIndex(window)
    for event_id, s in enumerate(old + recent):
        pruned.add(event_id, **s, seen=s["published"])
        if event_id >= len(old):
            fresh.add(event_id, **s, seen=s["published"])
    assert pruned.prune(T0 + timedelta(hours=80)) == 1100
    queries = _stories(rng, 200, T0 + timedelta(hours=80), timedelta(hours=1), "query")
    # Retellings of recent stories (new links), so stages 2 and 3 are exercised.
    queries += [dict(s, link=f"https://q.example/{i}") for i, s in enumerate(recent[:200])]
    decisions = []
    for q in queries:
        a, b = pruned.find(**q), fresh.find(**q)
        assert a == b, q
        decisions.append(None if a is None else a.stage)
    assert decisions.count("near_copy") > 50 and decisions.count(None) > 50


def test_an_old_story_ingested_recently_is_kept_for_a_window_after_it_was_seen() -> None:
    # A feed may deliver items dated days ago: another outlet's retelling arriving in the
    # next rounds must still find them.
    rng = random.Random(6)
    index = EventIndex(timedelta(hours=72))
    dated = _stories(rng, 1200, T0, timedelta(hours=1), "dated")
    arrived = T0 + timedelta(days=30)
    for event_id, s in enumerate(dated):
        index.add(event_id, **s, seen=arrived)
    assert index.prune(arrived + timedelta(hours=71)) == 0
    retold = dict(dated[0], link="https://other.example/retold")
    got = index.find(**retold)
    assert got is not None and got.event_id == 0
    assert index.prune(arrived + timedelta(hours=73)) == 1200
    assert index.find(**retold) is None


def test_texts_that_name_a_day_keep_their_text_for_the_day_veto() -> None:
    # The index drops a source's text when it cannot name a day (memory); the filter that
    # decides must accept every text from which extract_dates reads a single day.

    words = ["July", "the", "3rd", "on", "two", "days", "ago", "Friday", "Tonight", "met", "9"]
    rng = random.Random(7)
    texts = [text for text, _ in CASES]
    texts += [" ".join(rng.choices(words, k=rng.randint(1, 8))) for _ in range(3000)]
    named = 0
    for text in texts:
        if any(m.precision == "day" and m.start == m.end for m in extract_dates(text, PUB)):
            named += 1
            assert _MAY_NAME_A_DAY.search(text), text
    assert named > 500
