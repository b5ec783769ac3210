"""Search over a real migrated SQLite file: results, order, filters, index upkeep."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy import insert as sa_insert

from tests.domain.query.conftest import BASE_TIME, add_entries, add_feed
from tests.domain.query.test_language import ALIASES, SYNTAX_ROWS
from timeline.domain.query import Document, feed_source_names, parse_query
from timeline.storage import search as search_module
from timeline.storage.engine import Database
from timeline.storage.migrate import downgrade, upgrade_async
from timeline.storage.models import Entry, Feed
from timeline.storage.search import search_entries, sync_search_index

SEED = (
    "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine",
    "Beijing supplies dual-use military-civilian materials, the communiqué says.",
)
OTHERS = [
    ("Senator praises individual use of drones", "A senator spoke."),
    ("Fireworks light up the harbour", "Drones replaced fireworks this year."),
    ("Iranian drones sighted", "UAV wreckage found near the border."),
    ("NATO foreign ministers meet", "No communique is expected."),
]


async def _ids(db: Database, query: str, **kw: object) -> list[int]:
    async with db.session() as session:
        hits = await search_entries(session, parse_query(query), guild_ids=None, **kw)  # type: ignore[arg-type]
    return [h.entry_id for h in hits]


@pytest.fixture(params=["few-candidates", "index-walk"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with both SQLite plans: sort all candidates, or walk the time index."""
    if request.param == "index-walk":
        monkeypatch.setattr(search_module, "_FEW_CANDIDATES", 0)


@pytest.mark.usefixtures("plan")
async def test_search_finds_the_seed_story_with_highlight_terms(sqlite_db: Database) -> None:
    feed = await add_feed(sqlite_db, "Reuters World", "https://www.reuters.com/rss")
    ids = await add_entries(sqlite_db, feed, [SEED, *OTHERS])
    seed_id = ids[0]
    async with sqlite_db.session() as session:
        hits = await search_entries(session, parse_query("NATO communique"), guild_ids=[0])
    # Newest first: the ministers' item (added last) also says NATO and communique.
    assert [h.entry_id for h in hits] == [ids[4], seed_id]
    assert hits[1].terms == ("NATO", "Communique")
    assert hits[1].feed_name == "Reuters World"
    assert hits[1].published_at == BASE_TIME
    assert await _ids(sqlite_db, '"NATO communique"') == []
    assert await _ids(sqlite_db, "NATO NEAR/2 communique") == [seed_id]
    assert await _ids(sqlite_db, "NATO NEAR/1 communique") == []
    assert await _ids(sqlite_db, "dual-use") == [seed_id]
    assert await _ids(sqlite_db, "drone") == [ids[3], ids[2], ids[1]]
    assert await _ids(sqlite_db, "drone -fireworks") == [ids[3], ids[1]]
    assert await _ids(sqlite_db, "communiq*") == [ids[4], seed_id]
    assert await _ids(sqlite_db, "Iran") == []
    assert await _ids(sqlite_db, "Iran*") == [ids[3]]
    assert await _ids(sqlite_db, "title:communique") == [seed_id]
    assert await _ids(sqlite_db, "source:reuters NATO") == [ids[4], seed_id]
    assert await _ids(sqlite_db, "source:bloomberg NATO") == []
    assert await _ids(sqlite_db, "Senator") == [ids[1]]
    assert await _ids(sqlite_db, "NATO") == [ids[4], seed_id]


CORPUS = [
    SEED,
    *OTHERS,
    ("NATO’s communiqué on dual‑use goods", "ＮＡＴＯ leaders: war-machine talk"),
    ("Sanctioned drone makers", "Beijing and Moscow discuss the Communique draft."),
    ("Nothing relevant", "NATO NATO machine war"),
]


@pytest.mark.usefixtures("plan")
async def test_search_equals_matcher_for_every_syntax_row(sqlite_db: Database) -> None:
    reuters = await add_feed(sqlite_db, "Reuters World", "https://www.reuters.com/rss")
    other = await add_feed(sqlite_db, "Bloomberg", "https://bloomberg.com/feed")
    ids = await add_entries(sqlite_db, reuters, CORPUS[::2])
    ids += await add_entries(sqlite_db, other, CORPUS[1::2], start=len(ids))
    docs = [
        (entry_id, Document(t, s, feed_source_names(*feed)))
        for entry_id, (t, s), feed in zip(
            ids,
            [*CORPUS[::2], *CORPUS[1::2]],
            [("Reuters World", "https://www.reuters.com/rss")] * len(CORPUS[::2])
            + [("Bloomberg", "https://bloomberg.com/feed")] * len(CORPUS[1::2]),
            strict=True,
        )
    ]
    for text_query, _ in SYNTAX_ROWS:
        query = parse_query(text_query, ALIASES)
        expected = sorted((i for i, doc in docs if query.match(doc)), reverse=True)
        async with sqlite_db.session() as session:
            hits = await search_entries(session, query, guild_ids=None, limit=100)
        assert [h.entry_id for h in hits] == expected, text_query


@pytest.mark.usefixtures("plan")
async def test_filters_by_time_guild_and_pages(sqlite_db: Database) -> None:
    global_feed = await add_feed(sqlite_db, "Wire", "https://wire.example/rss")
    guild_feed = await add_feed(sqlite_db, "Guild wire", "https://g.example/rss", guild_id=42)
    ids = await add_entries(sqlite_db, global_feed, [(f"drone report {i}", "") for i in range(30)])
    own = await add_entries(sqlite_db, guild_feed, [("drone guild", "")], start=100)
    newest_first = [*own, *reversed(ids)]
    assert await _ids(sqlite_db, "drone", limit=100) == newest_first
    assert await _ids(sqlite_db, "drone", limit=5, offset=3) == newest_first[3:8]
    since, until = BASE_TIME + timedelta(minutes=10), BASE_TIME + timedelta(minutes=12)
    assert await _ids(sqlite_db, "drone", since=since, until=until) == [ids[12], ids[11], ids[10]]
    async with sqlite_db.session() as session:
        q = parse_query("drone")
        scoped = await search_entries(session, q, guild_ids=[7, 0], limit=100)
        assert [h.entry_id for h in scoped] == list(reversed(ids))
        mine = await search_entries(session, q, guild_ids=[42], limit=100)
        assert [h.entry_id for h in mine] == own
        assert await search_entries(session, q, guild_ids=None, limit=0) == []


async def test_index_follows_inserts_edits_and_deletes(sqlite_db: Database) -> None:
    feed = await add_feed(sqlite_db, "Wire", "https://wire.example/rss")
    [first] = await add_entries(sqlite_db, feed, [("Drone strike", "")])
    assert await _ids(sqlite_db, "drone") == [first]
    async with sqlite_db.session() as session:
        await session.execute(update(Entry).where(Entry.id == first).values(title="Ceasefire"))
    assert await _ids(sqlite_db, "drone") == []
    assert await _ids(sqlite_db, "ceasefire") == [first]
    async with sqlite_db.session() as session:
        await session.execute(delete(Entry).where(Entry.id == first))
        left = (
            await session.execute(text("SELECT count(*) FROM entries_fts WHERE rowid > 0"))
        ).scalar()
        assert left == 0
    assert await _ids(sqlite_db, "ceasefire") == []
    async with sqlite_db.session() as session:
        assert await sync_search_index(session) == 0


async def test_hostile_huge_summary_stays_searchable(sqlite_db: Database) -> None:
    feed = await add_feed(sqlite_db, "Wire", "https://wire.example/rss")
    summary = " ".join(f"w{i}" for i in range(8000)) + " needle " + "x" * 500
    [big] = await add_entries(sqlite_db, feed, [("Big", summary)])
    assert await _ids(sqlite_db, "needle") == [big]
    assert await _ids(sqlite_db, "x" * 500) == [big]
    assert await _ids(sqlite_db, "w7999 w0") == [big]
    assert await _ids(sqlite_db, "nothere") == []


async def test_migration_indexes_existing_rows_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await upgrade_async(url, "0001")
    db = Database(url)
    try:
        # A Core insert of the named columns only: the ORM model has columns of later revisions.
        async with db.session() as session:
            feed = (
                await session.execute(
                    sa_insert(Feed.__table__)  # type: ignore[arg-type]
                    .values(name="Wire", url="https://wire.example/rss", guild_id=0)
                    .returning(Feed.__table__.c.id)
                )
            ).scalar_one()
            old = (
                await session.execute(
                    sa_insert(Entry.__table__)  # type: ignore[arg-type]
                    .values(
                        feed_id=feed,
                        key="k0",
                        title="Drone before the index existed",
                        summary="",
                        tags=[],
                        published_at=BASE_TIME,
                        published_is_estimated=False,
                        first_seen_at=BASE_TIME,
                    )
                    .returning(Entry.__table__.c.id)
                )
            ).scalar_one()
        await upgrade_async(url, "head")
        assert await _ids(db, "drone") == [old]
        await db.dispose()

        await asyncio.to_thread(downgrade, url, "0001")
        async with db.session() as session:
            names = (
                await session.execute(
                    text("SELECT name FROM sqlite_master WHERE name LIKE 'entries_fts%'")
                )
            ).all()
        assert names == []
        await upgrade_async(url, "head")
        assert await _ids(db, "drone") == [old]
    finally:
        await db.dispose()


async def _fts_candidates(db: Database, query: str) -> list[int]:
    expr = parse_query(query).root.fts()
    async with db.session() as session:
        await sync_search_index(session)
        rows = await session.execute(
            text("SELECT rowid FROM entries_fts WHERE entries_fts MATCH :q ORDER BY rowid"),
            {"q": search_module.fts5_query(expr)},
        )
        return [r[0] for r in rows]


async def test_rare_phrase_of_common_words_has_few_candidates(sqlite_db: Database) -> None:
    feed = await add_feed(sqlite_db, "Wire", "https://wire.example/rss")
    common = [(f"Oil use rises {i}", "Dual role. The use of oil.") for i in range(30)]
    ids = await add_entries(sqlite_db, feed, [*common, ("Dual-use exports", "")])
    # Every entry holds "dual" and "use"; only the last has them next to each other.
    assert await _fts_candidates(sqlite_db, '"dual use" -oil') == [ids[-1]]
    assert await _fts_candidates(sqlite_db, "title:dual-use") == [ids[-1]]
    assert len(await _fts_candidates(sqlite_db, "dual NEAR/3 use")) == len(ids)
    assert await _ids(sqlite_db, '"dual use" -oil') == [ids[-1]]


async def test_index_in_an_older_format_is_rebuilt(sqlite_db: Database) -> None:
    feed = await add_feed(sqlite_db, "Wire", "https://wire.example/rss")
    [old] = await add_entries(sqlite_db, feed, [("Dual-use exports", "")])
    assert await _ids(sqlite_db, "dual-use") == [old]
    async with sqlite_db.session() as session:
        # What an index written before pair tokens holds: no marker, no pairs.
        await session.execute(text("DELETE FROM entries_fts"))
        await session.execute(
            text("INSERT INTO entries_fts(rowid, tokens) VALUES (:id, 'dual use export exports')"),
            {"id": old},
        )
    assert await _ids(sqlite_db, "dual-use") == [old]
    async with sqlite_db.session() as session:
        assert await sync_search_index(session) == 0
