"""Searched cursor pages of the web timeline against the full answer worked out apart.

The store is built so that paging mistakes show: more matching entries than a page, events
with many matching entries across page boundaries, events whose only matching source came
days after the event (an entry-ordered search would put them in the wrong place), ties in
time, manual events, another guild's matches, entry ids far apart and out of time order (the
index is asked by id ranges), entries outside the window. Each case walks every page and
compares the ids, in order, with a plain Python pass over all rows using the matcher alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from tests.usecases.factories import NOW, make_feed
from timeline.domain.query import Document, feed_source_names, parse_query
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event, Feed, Storyline
from timeline.storage.search import indexed_candidates, matching_entries, sync_search_index
from timeline.usecases import timeline as timeline_service
from timeline.usecases.timeline import timeline_page

GUILD = 7
WORDS = ("drone", "drones", "swarm", "strike", "summit", "harbour", "filler", "quiet", "tide")


@dataclass
class Store:
    story_id: int


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def _store(sdb: Database, seed: int = 5) -> Store:
    rng = random.Random(seed)
    async with sdb.session() as s:
        alpha = await make_feed(s, "Alpha Wire", "https://alpha.example/rss", guild_id=GUILD)
        beta = await make_feed(s, "Beta News", "https://beta.example/rss", guild_id=GUILD)
        shared = await make_feed(s, "Shared", "https://shared.example/rss", guild_id=0)
        other = await make_feed(s, "Other", "https://other.example/rss", guild_id=8)
        story = Storyline(guild_id=GUILD, title="Drones")
        s.add(story)
        await s.flush()
        mine = [alpha.id, beta.id, shared.id]
        entry_ids = rng.sample(range(1, 400_000), 2_000)  # far apart, not in time order
        events: list[dict[str, object]] = []
        entries: list[dict[str, object]] = []
        for i in range(90):
            event_id = i + 1
            # Three events share each instant, so page boundaries fall inside ties.
            at = NOW - timedelta(hours=(i // 3) * 5)
            manual = i % 17 == 0
            guild = 8 if i % 13 == 0 else (0 if i % 29 == 0 else GUILD)
            title = _words(rng, 4)
            events.append(
                {
                    "id": event_id,
                    "guild_id": guild,
                    "title": title,
                    "occurred_at": at,
                    "manual": manual,
                    "storyline_id": story.id if i % 4 == 0 else None,
                }
            )
            if manual:
                continue
            # Some events carry many sources (a page of them and more), some one or two.
            count = 14 if i % 11 == 0 else rng.randint(1, 3)
            for j in range(count):
                # The first source is the event's time; later ones up to days later, and
                # one in five events gets a source long after (a late match).
                late = timedelta(days=9) if j and i % 5 == 0 else timedelta(minutes=13 * j)
                feed = other.id if guild == 8 else rng.choice(mine)
                entries.append(
                    {
                        "id": entry_ids.pop(),
                        "feed_id": feed,
                        "event_id": event_id,
                        "key": f"k{event_id}-{j}",
                        "title": _words(rng, 3) if j else title,
                        "summary": _words(rng, 6),
                        "tags": [],
                        "published_at": at + late,
                        "first_seen_at": at + late,
                    }
                )
        # Zeppelins: one event matched only by a source nine days late (past the window's
        # end), one inside the window, one whose event time is before the window's start
        # although its source is inside.
        for event_id, hours, later in ((1001, 30, 9 * 24), (1002, 40, 0), (1003, 100, 72)):
            at = NOW - timedelta(hours=hours)
            events.append({"id": event_id, "guild_id": GUILD, "title": "quiet", "occurred_at": at})
            pair = (("quiet", at), ("zeppelin", at + timedelta(hours=later)))
            for j, (title, when) in enumerate(pair):
                entries.append(
                    {
                        "id": entry_ids.pop(),
                        "feed_id": alpha.id,
                        "event_id": event_id,
                        "key": f"z{event_id}-{j}",
                        "title": title,
                        "summary": "",
                        "tags": [],
                        "published_at": when,
                        "first_seen_at": when,
                    }
                )
        await s.execute(insert(Event), events)
        await s.execute(insert(Entry), entries)
    return Store(story.id)


async def _expected(  # noqa: C901 (each filter applied apart from the product code, one by one)
    sdb: Database,
    text: str,
    *,
    oldest_first: bool,
    since: datetime | None = None,
    until: datetime | None = None,
    source_feed: str | None = None,
    storyline_id: int | None = None,
) -> list[int]:
    """Every matching event of the guild, in page order, by the matcher over all rows."""
    query = parse_query(text, {})
    async with sdb.session() as s:
        feeds = {f.id: f for f in (await s.scalars(select(Feed))).all()}
        events = (await s.scalars(select(Event))).all()
        entries = (await s.scalars(select(Entry))).all()
    by_event: dict[int, list[Entry]] = {}
    for entry in entries:
        if entry.event_id is not None:
            by_event.setdefault(entry.event_id, []).append(entry)
    keep = []
    for event in events:
        if event.guild_id not in (GUILD, 0):
            continue
        if since is not None and event.occurred_at < since:
            continue
        if until is not None and event.occurred_at > until:
            continue
        if storyline_id is not None and event.storyline_id != storyline_id:
            continue
        sources = by_event.get(event.id, [])
        if source_feed is not None and not any(
            feeds[e.feed_id].name == source_feed for e in sources
        ):
            continue
        hit = event.manual and query.match(Document(event.title, "", ())) is not None
        for entry in sources:
            feed = feeds[entry.feed_id]
            if feed.guild_id not in (GUILD, 0):
                continue
            if since is not None and entry.published_at < since:
                continue
            if until is not None and entry.published_at > until:
                continue
            doc = Document(entry.title, entry.summary, feed_source_names(feed.name, feed.url))
            hit = hit or query.match(doc) is not None
        if hit:
            keep.append(event)
    keep.sort(key=lambda e: (e.occurred_at, e.id), reverse=not oldest_first)
    return [e.id for e in keep]


async def _walk(sdb: Database, text: str, *, limit: int = 7, **filters: Any) -> list[int]:
    """Every page's event ids in order, following next_cursor to the end."""
    seen: list[int] = []
    cursor = None
    async with sdb.session() as s:
        for _ in range(500):
            page = await timeline_page(
                s,
                GUILD,
                query=text,
                cursor=cursor,
                limit=limit,
                **filters,
            )
            assert len(page.events) <= limit
            seen += [e.id for e in page.events]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor
    raise AssertionError("the cursor chain does not end")


QUERY_RARE = '"drone tide swarm"'  # three events of ninety
QUERIES = (
    "zeppelin",
    "drone",
    "drone -swarm",
    "drones OR summit",
    '"swarm strike"',
    "source:alpha tide",
)


@pytest.mark.parametrize("dense", [False, True], ids=["few", "walk"])
@pytest.mark.parametrize("oldest_first", [False, True], ids=["newest", "oldest"])
async def test_searched_pages_are_the_full_answer_in_order(
    sdb: Database, monkeypatch: pytest.MonkeyPatch, dense: bool, oldest_first: bool
) -> None:
    await _store(sdb)
    if dense:  # every query has more candidates than this: the event walk answers
        monkeypatch.setattr(timeline_service, "FEW_CANDIDATES", 2)
    for text in QUERIES:
        expected = await _expected(sdb, text, oldest_first=oldest_first)
        got = await _walk(sdb, text, oldest_first=oldest_first)
        assert got == expected, text
    # The store is big enough to matter: several pages, late and many-source events in them.
    assert len(await _expected(sdb, "drone", oldest_first=False)) > 3 * 7


@pytest.mark.parametrize("dense", [False, True], ids=["few", "walk"])
async def test_searched_pages_keep_the_filters(
    sdb: Database, monkeypatch: pytest.MonkeyPatch, dense: bool
) -> None:
    store = await _store(sdb)
    if dense:
        monkeypatch.setattr(timeline_service, "FEW_CANDIDATES", 2)
    since, until = NOW - timedelta(hours=90), NOW - timedelta(hours=20)
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"since": since, "until": until}, {"since": since, "until": until}),
        ({"source": "beta.example"}, {"source_feed": "Beta News"}),
        ({"storyline_id": store.story_id}, {"storyline_id": store.story_id}),
    ]
    for text in ("drone OR strike", "zeppelin"):
        for oldest_first in (False, True):
            for page_filters, oracle_filters in cases:
                expected = await _expected(
                    sdb,
                    text,
                    oldest_first=oldest_first,
                    **oracle_filters,
                )
                got = await _walk(sdb, text, oldest_first=oldest_first, **page_filters)
                assert got == expected, (text, page_filters)
    assert await _expected(sdb, "drone OR strike", oldest_first=False, since=since, until=until)
    # Only the zeppelin inside the window both by event time and by source time.
    window = await _expected(sdb, "zeppelin", oldest_first=False, since=since, until=until)
    assert window == [1002]
    assert await _expected(sdb, "zeppelin", oldest_first=False) == [1001, 1002, 1003]


async def test_a_page_that_runs_out_of_budget_stops_short_and_goes_on(
    sdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _store(sdb)
    monkeypatch.setattr(timeline_service, "FEW_CANDIDATES", 2)
    monkeypatch.setattr(timeline_service, "SCAN_BUDGET", 5)
    expected = await _expected(sdb, QUERY_RARE, oldest_first=False)
    assert 0 < len(expected) < 7
    short = 0
    seen: list[int] = []
    cursor = None
    async with sdb.session() as s:
        while True:
            page = await timeline_page(s, GUILD, query=QUERY_RARE, cursor=cursor, limit=7)
            seen += [e.id for e in page.events]
            if page.capped:
                short += 1
                assert page.next_cursor is not None and len(page.events) < 7
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == expected
    assert short > 0


async def test_index_candidates_by_id_ranges_far_apart(sdb: Database) -> None:
    # 120 entries 5,000 ids apart: more gaps than the range queries take, so ranges merge.
    async with sdb.session() as s:
        feed = await make_feed(s, "Alpha Wire", "https://alpha.example/rss", guild_id=GUILD)
        await s.execute(
            insert(Entry),
            [
                {
                    "id": 5_000 * (k + 1),
                    "feed_id": feed.id,
                    "key": f"r{k}",
                    "title": "zeppelin over the harbour" if k % 3 == 0 else "quiet harbour",
                    "summary": "",
                    "tags": [],
                    "published_at": NOW,
                    "first_seen_at": NOW,
                }
                for k in range(120)
            ],
        )
    query = parse_query("zeppelin", {})
    every = [5_000 * (k + 1) for k in range(120)]
    zeppelins = {5_000 * (k + 1) for k in range(0, 120, 3)}
    async with sdb.session() as s:
        await sync_search_index(s)
        assert await indexed_candidates(s, query, every) == zeppelins
        some = every[::7]
        assert await indexed_candidates(s, query, some) == zeppelins & set(some)
        assert await matching_entries(s, query, some) == zeppelins & set(some)
