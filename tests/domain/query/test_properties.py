"""Property-based tests: any query parses or raises BadQuery; search equals the matcher."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from tests.domain.query.conftest import BASE_TIME
from timeline.domain.errors import BadQuery
from timeline.domain.query import Document, Query, WatchIndex, feed_source_names, parse_query
from timeline.domain.query import index as index_module
from timeline.storage import search as search_module
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Entry, Feed
from timeline.storage.search import fts5_query, search_entries, tsquery

VOCAB = [
    "NATO",
    "NATO's",
    "nato",
    "ＮＡＴＯ",
    "communique",
    "Communiqué",
    "communiqués",
    "drone",
    "drones",
    "Drone",
    "dual-use",
    "dual‑use",
    "dual",
    "use",
    "used",
    "war",
    "machine",
    "Iranian",
    "Iran",
    "sanctioned",
    "sanctions",
    "China",
    "Beijing",
    "senator",
    "über",
    "uber",
    "F-35",
    "x",
    "xx",
    "Straße",
    "strasse",
    "or",
    "not",
    "near",
    "a",
    "happy",
    "Dying",
]
SEPARATORS = [" ", " ", " ", ", ", " - ", "\u00a0", " — ", ". ", "/", "'s "]
OPERATORS = ["OR", "NOT", "AND", "-", "NEAR", "NEAR/0", "NEAR/2", "(", ")", '"', "*"]
FIELDS = ["", "", "title:", "title:", "summary:", "source:"]
ALIASES = {"cn": "China OR Beijing", "loop": "@loop x", "ru": "(Russia OR Moscow) -drone"}
FEEDS = [("Reuters World", "https://www.reuters.com/rss"), ("Bloomberg", "https://bloomberg.com/f")]


def text_from(words: list[str], seps: list[str]) -> str:
    return "".join(w + s for w, s in zip(words, seps, strict=False)).strip()


texts = st.builds(
    text_from,
    st.lists(st.sampled_from(VOCAB), max_size=12),
    st.lists(st.sampled_from(SEPARATORS), min_size=12, max_size=12),
)

word_leaf = st.sampled_from(VOCAB).filter(lambda w: w not in ("or", "not", "near"))
leaf = st.one_of(
    word_leaf,
    st.builds(lambda a, b: f'"{a} {b}"', word_leaf, word_leaf),
    st.builds(lambda w, k: w[: max(2, k)] + "*", st.sampled_from(VOCAB), st.integers(1, 12)),
    st.builds(lambda f, w: f + w, st.sampled_from(FIELDS), word_leaf),
    st.sampled_from(["source:reuters", "source:bloomberg.com", "@cn", "@ru"]),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"{a} {b}", children, children),
        st.builds(lambda a, b: f"{a} OR {b}", children, children),
        st.builds(lambda a: f"-{a}", children),
        st.builds(lambda a: f"NOT {a}", children),
        st.builds(lambda a: f"({a})", children),
        st.builds(lambda a, b, n: f"{a} NEAR/{n} {b}", leaf, leaf, st.integers(0, 4)),
    )


structured = st.recursive(leaf, _combine, max_leaves=8)
token_soup = st.lists(
    st.one_of(st.sampled_from(OPERATORS + FIELDS + ["@cn", "@loop", "@x"]), word_leaf),
    max_size=12,
).map(" ".join)
any_query = st.one_of(structured, token_soup, st.text(max_size=60))


@settings(max_examples=600, deadline=None)
@given(any_query)
def test_random_queries_parse_or_raise_bad_query(text: str) -> None:
    try:
        query = parse_query(text, ALIASES)
    except BadQuery as exc:
        assert exc.message
        assert exc.column is None or 1 <= exc.column <= len(text) + 1
        return
    doc = Document("NATO drone communique", "dual-use China over Iran", ("Reuters", "reuters.com"))
    query.match(doc)
    expr = query.root.fts()
    fts5_query(expr)
    tsquery(expr)
    assert str(parse_query(str(query))) == str(query)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(structured, min_size=1, max_size=10),
    st.lists(st.tuples(texts, texts, st.sampled_from(FEEDS)), min_size=1, max_size=4),
)
def test_watch_index_equals_each_query(
    queries: list[str], items: list[tuple[str, str, tuple[str, str]]]
) -> None:
    """The index (candidates, restricted documents) gives what each query gives on its own."""
    watches = []
    for i, text in enumerate(queries):
        try:
            watches.append((i, parse_query(text, ALIASES)))
        except BadQuery:
            pass
    index = WatchIndex(watches)
    # The same with a vocabulary deemed too large to look items' stems up in.
    saved = index_module._SMALL_VOCABULARY
    index_module._SMALL_VOCABULARY = 0
    try:
        large = WatchIndex(watches)
    finally:
        index_module._SMALL_VOCABULARY = saved
    for title, summary, feed in items:
        doc = Document(title, summary, feed_source_names(*feed))
        expected = [(i, m) for i, m in ((i, q.match(doc)) for i, q in watches) if m is not None]
        assert index.match(Document(title, summary, feed_source_names(*feed))) == expected
        assert large.match(Document(title, summary, feed_source_names(*feed))) == expected
        for _, query in watches:
            # A document restricted to the stems the query looks up answers the same.
            used = doc.any_stems & query.root.any_stems_used()
            assert query.match(doc.restricted(used)) == query.match(doc)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


async def _prepare(url: str) -> tuple[Database, list[int]]:
    await upgrade_async(url)
    db = Database(url)
    async with db.session() as session:
        feeds = [Feed(name=n, url=u) for n, u in FEEDS]
        session.add_all(feeds)
        await session.flush()
        return db, [f.id for f in feeds]


async def _store_and_search(
    db: Database, feed_ids: list[int], docs: list[tuple[str, str, int]], query: Query
) -> tuple[list[int], list[int]]:
    async with db.session() as session:
        await session.execute(delete(Entry))
        entries = [
            Entry(
                feed_id=feed_ids[f],
                key=str(i),
                title=title,
                summary=summary,
                published_at=BASE_TIME + timedelta(minutes=i % 3),  # ties are ordered by id
            )
            for i, (title, summary, f) in enumerate(docs)
        ]
        session.add_all(entries)
        await session.flush()
        stored = [
            (e.id, e.published_at, t, s, f) for e, (t, s, f) in zip(entries, docs, strict=True)
        ]
    async with db.session() as session:
        hits = await search_entries(session, query, guild_ids=None, limit=1000)
    expected = [
        entry_id
        for entry_id, _, title, summary, f in sorted(
            stored, key=lambda r: (r[1], r[0]), reverse=True
        )
        if query.match(Document(title, summary, feed_source_names(*FEEDS[f])))
    ]
    return [h.entry_id for h in hits], expected


docs_strategy = st.lists(st.tuples(texts, texts, st.integers(0, 1)), min_size=1, max_size=8)


def _check_equality(runner: asyncio.Runner, url: str, examples: int) -> None:
    db, feed_ids = runner.run(_prepare(url))

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(docs=docs_strategy, text=structured, walk=st.booleans())
    def check(docs: list[tuple[str, str, int]], text: str, walk: bool) -> None:
        try:
            query = parse_query(text, ALIASES)
        except BadQuery:
            return
        # Both SQLite plans: sort every candidate, or walk the publication-time index.
        saved = search_module._FEW_CANDIDATES
        search_module._FEW_CANDIDATES = 0 if walk else saved
        try:
            got, expected = runner.run(_store_and_search(db, feed_ids, docs, query))
        finally:
            search_module._FEW_CANDIDATES = saved
        assert got == expected

    try:
        check()
    finally:
        runner.run(db.dispose())


def test_search_equals_matcher_on_sqlite(runner: asyncio.Runner, tmp_path: Path) -> None:
    _check_equality(runner, f"sqlite+aiosqlite:///{tmp_path / 'prop.db'}", examples=200)


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.mark.postgres
def test_search_equals_matcher_on_postgres(runner: asyncio.Runner) -> None:
    name = f"tb_query_test_{os.getpid()}"
    runner.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    runner.run(_pg_admin(f"CREATE DATABASE {name}"))
    try:
        _check_equality(runner, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", 120)
    finally:
        runner.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
