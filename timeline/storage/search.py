"""Search stored entries with a Query: full-text candidates, then the matcher's verdict.

The full-text index (FTS5 on SQLite, a GIN-indexed tsvector on PostgreSQL) holds, per entry,
the same normalised tokens the matcher uses: every stem plus every unstemmed word that differs
from its stem (so `communiq*` finds "communique" although its stem is "communiqu"). A query
is translated into a condition every matching entry satisfies (phrases and NEAR become AND,
negations and `source:` are left out), and each candidate is then verified with the Python
matcher. Results are therefore exactly the matcher's, newest first.

Rows reach the index through a queue: database triggers (created by migration 0002) put the
id of every inserted or edited entry into `entries_fts_pending`; `sync_search_index` tokenises
them. `search_entries` syncs first, so ingest needs no change; ingest may also call it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, literal_column, or_, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.domain.query.document import SOURCE, Document, feed_source_names
from timeline.domain.query.nodes import (
    FTS_TOKEN_CHARS,
    TITLE_MARK,
    And,
    FtsExpr,
    Leaf,
    Node,
    pair_token,
)
from timeline.domain.query.normalise import tokens as split_tokens
from timeline.domain.query.parser import Query
from timeline.storage.models import Entry, Feed, UTCDateTime

log = logging.getLogger(__name__)

# An entry with more distinct tokens than this is indexed under OVERFLOW_TOKEN as well, and
# every search also looks there: hostile megabyte summaries cannot blow the index up.
MAX_INDEX_TOKENS = 5000
OVERFLOW_TOKEN = "0tboverflow0"
MAX_LIMIT = 1000
# The SQLite index's token format (see _check_sqlite_format): change it when index_tokens does.
INDEX_FORMAT = "0tbformat2pairs"
_SYNC_BATCH = 1000


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One stored entry that matches a search, with the terms to highlight."""

    entry_id: int
    event_id: int | None
    title: str
    summary: str
    link: str | None
    published_at: datetime
    feed_name: str
    terms: tuple[str, ...]


def index_tokens(title: str, summary: str, *, pairs: bool = True) -> list[str]:
    """Return the distinct tokens the full-text index stores for an entry.

    With `pairs`, each two consecutive stems of the title or the summary are a token too.
    """
    seen: dict[str, None] = {}
    title_tokens = split_tokens(title or "")
    for mark, (raw, part_stems) in (
        ("", title_tokens),
        (TITLE_MARK, title_tokens),
        ("", split_tokens(summary or "")),
    ):
        for word, st in zip(raw, part_stems, strict=True):
            seen[(mark + st)[:FTS_TOKEN_CHARS]] = None
            if word != st:
                seen[(mark + word)[:FTS_TOKEN_CHARS]] = None
        if pairs and not mark:
            for a, b in pairwise(part_stems):
                seen[pair_token(a, b)] = None
    tokens = list(seen)
    if len(tokens) > MAX_INDEX_TOKENS:
        tokens = [*tokens[:MAX_INDEX_TOKENS], OVERFLOW_TOKEN]
    return tokens


def fts5_query(expr: FtsExpr) -> str | None:
    """Render a candidate expression as an SQLite FTS5 MATCH string (None: no restriction)."""
    if expr is None:
        return None
    return f'({_fts5(expr)}) OR "{OVERFLOW_TOKEN}"'


def _fts5(expr: FtsExpr) -> str:
    assert expr is not None
    kind, value = expr
    if kind in ("term", "pair"):
        return f'"{value}"'
    if kind == "prefix":
        return f'"{value}"*'
    assert isinstance(value, tuple)
    joiner = " AND " if kind == "and" else " OR "
    return "(" + joiner.join(_fts5(v) for v in value) + ")"


def tsquery(expr: FtsExpr) -> str | None:
    """Render a candidate expression as a PostgreSQL tsquery literal (None: no restriction)."""
    if expr is None:
        return None
    return f"({_tsq(expr)}) | '{OVERFLOW_TOKEN}'"


def _tsq(expr: FtsExpr) -> str:
    assert expr is not None
    kind, value = expr
    if kind == "term":
        return f"'{value}'"
    if kind == "prefix":
        return f"'{value}':*"
    assert isinstance(value, tuple)
    if kind == "and":
        # PostgreSQL rows are indexed without pairs: an AND of a phrase's words is the
        # condition there (a phrase always has its words next to its pairs).
        value = tuple(v for v in value if v is not None and v[0] != "pair")
    joiner = " & " if kind == "and" else " | "
    return "(" + joiner.join(_tsq(v) for v in value) + ")"


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def sync_search_index(session: AsyncSession, batch: int = _SYNC_BATCH) -> int:
    """Index the entries queued by the triggers since the last sync; return how many."""
    if _dialect(session) == "postgresql":
        return await _sync_postgres(session, batch)
    return await _sync_sqlite(session, batch)


async def _sync_sqlite(session: AsyncSession, batch: int) -> int:
    await _check_sqlite_format(session)
    done = 0
    while True:
        rows = (
            await session.execute(
                text(
                    "SELECT p.entry_id, e.title, e.summary FROM entries_fts_pending p "
                    "LEFT JOIN entries e ON e.id = p.entry_id ORDER BY p.entry_id LIMIT :n"
                ),
                {"n": batch},
            )
        ).all()
        if not rows:
            return done
        ids = [{"id": r[0]} for r in rows]
        await session.execute(text("DELETE FROM entries_fts WHERE rowid = :id"), ids)
        live = [
            {"id": r[0], "tokens": " ".join(index_tokens(r[1], r[2] or ""))}
            for r in rows
            if r[1] is not None
        ]
        if live:
            await session.execute(
                text("INSERT INTO entries_fts(rowid, tokens) VALUES (:id, :tokens)"), live
            )
        await session.execute(text("DELETE FROM entries_fts_pending WHERE entry_id = :id"), ids)
        done += len(rows)
        log.debug("indexed %d entries for search", len(rows))


async def _check_sqlite_format(session: AsyncSession) -> None:
    """Queue every entry for indexing again if the index predates the current token format.

    Phrase searches rely on pair tokens: an entry indexed without them would be missed. The
    format is a marker row (rowid 0: no entry has that id) holding INDEX_FORMAT.
    """
    marker = (
        await session.execute(text("SELECT tokens FROM entries_fts WHERE rowid = 0"))
    ).scalar_one_or_none()
    if marker == INDEX_FORMAT:
        return
    log.info("search index format changed: indexing every entry again")
    await session.execute(
        text("INSERT OR IGNORE INTO entries_fts_pending(entry_id) SELECT id FROM entries")
    )
    await session.execute(text("DELETE FROM entries_fts WHERE rowid = 0"))
    await session.execute(
        text("INSERT INTO entries_fts(rowid, tokens) VALUES (0, :f)"), {"f": INDEX_FORMAT}
    )


async def _sync_postgres(session: AsyncSession, batch: int) -> int:
    done = 0
    while True:
        # SKIP LOCKED: two processes syncing at once take different rows.
        claimed = (
            await session.execute(
                text(
                    "DELETE FROM entries_fts_pending WHERE entry_id IN ("
                    "SELECT entry_id FROM entries_fts_pending ORDER BY entry_id "
                    "LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING entry_id"
                ),
                {"n": batch},
            )
        ).all()
        if not claimed:
            return done
        ids = [r[0] for r in claimed]
        rows = (
            await session.execute(
                select(Entry.id, Entry.title, Entry.summary).where(Entry.id.in_(ids))
            )
        ).all()
        if rows:
            await session.execute(
                text(
                    "INSERT INTO entries_fts(entry_id, tsv) "
                    "VALUES (:id, array_to_tsvector(CAST(:tokens AS text[]))) "
                    "ON CONFLICT (entry_id) DO UPDATE SET tsv = EXCLUDED.tsv"
                ),
                [{"id": r[0], "tokens": index_tokens(r[1], r[2] or "", pairs=False)} for r in rows],
            )
        done += len(ids)


def _required_source_leaves(root: Node) -> list[Leaf]:
    items = root.items if isinstance(root, And) else (root,)
    return [i for i in items if isinstance(i, Leaf) and i.field == SOURCE]


async def _source_feed_ids(
    session: AsyncSession, leaves: list[Leaf], guild_ids: Sequence[int] | None
) -> list[int]:
    stmt = select(Feed.id, Feed.name, Feed.url)
    if guild_ids is not None:
        stmt = stmt.where(Feed.guild_id.in_(list(guild_ids)))
    keep = []
    for feed_id, name, url in (await session.execute(stmt)).all():
        doc = Document("", "", feed_source_names(name, url))
        if all(leaf.matches(doc) for leaf in leaves):
            keep.append(feed_id)
    return keep


async def search_entries(
    session: AsyncSession,
    query: Query,
    *,
    guild_ids: Sequence[int] | None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    offset: int = 0,
    before: tuple[datetime, int] | None = None,
) -> list[SearchHit]:
    """Return stored entries matching `query`, newest first (since <= published <= until).

    `guild_ids` limits the search to entries of feeds owned by those guilds (pass the guild
    and GLOBAL_SCOPE); None searches everything. `limit` is capped at MAX_LIMIT. `before`
    is a cursor, the (published_at, entry_id) of the last hit of the previous page: the
    search continues strictly after it in the newest-first order.
    """
    limit = max(0, min(int(limit), MAX_LIMIT))
    offset = max(0, int(offset))
    if limit == 0:
        return []
    await sync_search_index(session)
    expr = query.root.fts()
    feed_ids: list[int] | None = None
    sources = _required_source_leaves(query.root)
    if sources:
        feed_ids = await _source_feed_ids(session, sources, guild_ids)
        if not feed_ids:
            return []
    if _dialect(session) == "postgresql":
        pages = _postgres_pages(session, expr, guild_ids, feed_ids, since, until)
    else:
        pages = await _sqlite_pages(session, expr, guild_ids, feed_ids, since, until)

    wanted = offset + limit
    batch = min(max(2 * wanted, 50), 2000)
    hits: list[SearchHit] = []
    last: tuple[datetime, int] | None = before
    while len(hits) < wanted:
        rows = await pages(last, batch)
        for entry_id, event_id, title, summary, link, published, feed_name, feed_url in rows:
            doc = Document(title, summary or "", feed_source_names(feed_name, feed_url))
            got = query.match(doc)
            if got is not None:
                hits.append(
                    SearchHit(
                        entry_id=entry_id,
                        event_id=event_id,
                        title=title,
                        summary=summary or "",
                        link=link,
                        published_at=published,
                        feed_name=feed_name,
                        terms=got.terms,
                    )
                )
                if len(hits) >= wanted:
                    break
        if len(rows) < batch:
            break
        last = (rows[-1][5], rows[-1][0])
    return hits[offset:wanted]


Pages = Callable[[tuple[datetime, int] | None, int], Awaitable[Sequence[Row[Any]]]]
_COLUMNS = (
    Entry.id,
    Entry.event_id,
    Entry.title,
    Entry.summary,
    Entry.link,
    Entry.published_at,
    Feed.name,
    Feed.url,
)
# Below this many full-text candidates, fetch them all and sort; above, walk the
# publication-time index newest first and stop at the first page of verified hits.
_FEW_CANDIDATES = 2000


async def _sqlite_pages(
    session: AsyncSession,
    expr: FtsExpr,
    guild_ids: Sequence[int] | None,
    feed_ids: list[int] | None,
    since: datetime | None,
    until: datetime | None,
) -> Pages:
    # Raw SQL because the join order matters here: SQLite's planner, left alone, walks every
    # entry of the feed and probes the candidate list (linear in the table size).
    params: dict[str, Any] = {}
    binds = [
        bindparam("since", type_=UTCDateTime()),
        bindparam("until", type_=UTCDateTime()),
        bindparam("last_at", type_=UTCDateTime()),
    ]
    where: list[str] = []
    few = True
    if expr is not None:
        params["fts_q"] = fts5_query(expr)
        count = (
            await session.execute(
                text(
                    "SELECT count(*) FROM (SELECT rowid FROM entries_fts "
                    "WHERE entries_fts MATCH :fts_q LIMIT :cap)"
                ),
                {"fts_q": params["fts_q"], "cap": _FEW_CANDIDATES + 1},
            )
        ).scalar_one()
        if count == 0:
            return _no_pages
        few = count <= _FEW_CANDIDATES
        if few:
            source = (
                "(SELECT rowid AS id FROM entries_fts WHERE entries_fts MATCH :fts_q) AS c "
                "CROSS JOIN entries AS e ON e.id = c.id"
            )
        else:
            source = "entries AS e INDEXED BY ix_entries_published"
            where.append("e.id IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH :fts_q)")
    else:
        source = "entries AS e INDEXED BY ix_entries_published"
    if guild_ids is not None:
        where.append("f.guild_id IN :guilds")
        params["guilds"] = list(guild_ids)
        binds.append(bindparam("guilds", expanding=True))
    if feed_ids is not None:
        where.append("e.feed_id IN :feeds")
        params["feeds"] = feed_ids
        binds.append(bindparam("feeds", expanding=True))
    if since is not None:
        where.append("e.published_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("e.published_at <= :until")
        params["until"] = until
    base = (
        "SELECT e.id, e.event_id, e.title, e.summary, e.link, e.published_at, f.name, f.url "
        f"FROM {source} CROSS JOIN feeds AS f ON f.id = e.feed_id"
    )
    order = " ORDER BY e.published_at DESC, e.id DESC LIMIT :n"
    keyset = "(e.published_at < :last_at OR (e.published_at = :last_at AND e.id < :last_id))"
    first_binds = [b for b in binds if b.key in params]
    more_binds = [b for b in binds if b.key in params or b.key == "last_at"]
    first = text(base + _where(where) + order).bindparams(*first_binds).columns(*_COLUMNS)
    more = text(base + _where([*where, keyset]) + order).bindparams(*more_binds).columns(*_COLUMNS)

    async def pages(last: tuple[datetime, int] | None, n: int) -> Sequence[Row[Any]]:
        if last is None:
            return (await session.execute(first, {**params, "n": n})).all()
        values = {**params, "n": n, "last_at": last[0], "last_id": last[1]}
        return (await session.execute(more, values)).all()

    return pages


async def _no_pages(last: tuple[datetime, int] | None, n: int) -> Sequence[Row[Any]]:
    return []


def _where(parts: list[str]) -> str:
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def _postgres_pages(
    session: AsyncSession,
    expr: FtsExpr,
    guild_ids: Sequence[int] | None,
    feed_ids: list[int] | None,
    since: datetime | None,
    until: datetime | None,
) -> Pages:
    stmt = select(*_COLUMNS).join(Feed, Feed.id == Entry.feed_id)
    if expr is not None:
        cand: Select[Any] = (
            select(literal_column("entry_id"))
            .select_from(table("entries_fts"))
            .where(text("tsv @@ CAST(:fts_q AS tsquery)").bindparams(fts_q=tsquery(expr)))
        )
        stmt = stmt.where(Entry.id.in_(cand))
    if guild_ids is not None:
        stmt = stmt.where(Feed.guild_id.in_(list(guild_ids)))
    if feed_ids is not None:
        stmt = stmt.where(Entry.feed_id.in_(feed_ids))
    if since is not None:
        stmt = stmt.where(Entry.published_at >= since)
    if until is not None:
        stmt = stmt.where(Entry.published_at <= until)
    stmt = stmt.order_by(Entry.published_at.desc(), Entry.id.desc())

    async def pages(last: tuple[datetime, int] | None, n: int) -> Sequence[Row[Any]]:
        page = stmt
        if last is not None:
            page = page.where(
                or_(
                    Entry.published_at < last[0],
                    and_(Entry.published_at == last[0], Entry.id < last[1]),
                )
            )
        return (await session.execute(page.limit(n))).all()

    return pages


# -- candidates for paging events (the web timeline) --------------------------------------------
# The timeline pages events, not entries: it asks which entries may match (all of them when
# there are few), which of a batch of entries may match, and which of those really match.

_RANGE_GAP = 1024
_MAX_RANGES = 32


async def few_candidates(
    session: AsyncSession,
    query: Query,
    *,
    guild_ids: Sequence[int],
    since: datetime | None,
    until: datetime | None,
    few: int,
) -> list[tuple[int, int]] | None:
    """Return (entry_id, event_id) of every entry the index cannot rule out, or None.

    None when the query has no full-text condition or more than `few` entries satisfy it
    (before the guild and window filters): the caller then walks events instead. Only entries
    of feeds of `guild_ids`, with an event, published in since..until (inclusive) are returned.
    """
    await sync_search_index(session)
    expr = query.root.fts()
    if expr is None:
        return None
    postgres = _dialect(session) == "postgresql"
    fts_q = tsquery(expr) if postgres else fts5_query(expr)
    matching = (
        "SELECT entry_id AS id FROM entries_fts WHERE tsv @@ CAST(:fts_q AS tsquery)"
        if postgres
        else "SELECT rowid AS id FROM entries_fts WHERE entries_fts MATCH :fts_q"
    )
    count = (
        await session.execute(
            text(f"SELECT count(*) FROM ({matching} LIMIT :cap) AS c"),
            {"fts_q": fts_q, "cap": few + 1},
        )
    ).scalar_one()
    if count > few:
        return None
    if count == 0:
        return []
    where = ["f.guild_id IN :guilds", "e.event_id IS NOT NULL"]
    params: dict[str, Any] = {"fts_q": fts_q, "guilds": list(guild_ids)}
    binds = [
        bindparam("guilds", expanding=True),
        bindparam("since", type_=UTCDateTime()),
        bindparam("until", type_=UTCDateTime()),
    ]
    if since is not None:
        where.append("e.published_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("e.published_at <= :until")
        params["until"] = until
    # CROSS JOIN fixes SQLite's join order (candidates first); PostgreSQL plans it itself.
    join = "JOIN" if postgres else "CROSS JOIN"
    stmt = text(
        f"SELECT e.id, e.event_id FROM ({matching}) AS c "
        f"{join} entries AS e ON e.id = c.id {join} feeds AS f ON f.id = e.feed_id" + _where(where)
    ).bindparams(*[b for b in binds if b.key in params])
    return [(row[0], row[1]) for row in (await session.execute(stmt, params)).all()]


async def indexed_candidates(
    session: AsyncSession, query: Query, entry_ids: Sequence[int]
) -> set[int]:
    """Return those of `entry_ids` the full-text index cannot rule out for `query`.

    On SQLite the index is asked for id ranges (FTS5 seeks a rowid range cheaply but not a
    list): ids close together share a range, and the answer is intersected with the list.
    """
    wanted = set(entry_ids)
    expr = query.root.fts()
    if expr is None or not wanted:
        return wanted
    if _dialect(session) == "postgresql":
        stmt = text(
            "SELECT entry_id FROM entries_fts "
            "WHERE entry_id IN :ids AND tsv @@ CAST(:fts_q AS tsquery)"
        ).bindparams(bindparam("ids", expanding=True))
        rows = await session.execute(stmt, {"ids": sorted(wanted), "fts_q": tsquery(expr)})
        return {row[0] for row in rows} & wanted
    ranges = _id_ranges(sorted(wanted))
    params: dict[str, Any] = {"fts_q": fts5_query(expr)}
    parts = []
    for i, (low, high) in enumerate(ranges):
        parts.append(
            "SELECT rowid FROM entries_fts WHERE entries_fts MATCH :fts_q "
            f"AND rowid >= :lo{i} AND rowid <= :hi{i}"
        )
        params[f"lo{i}"] = low
        params[f"hi{i}"] = high
    rows = await session.execute(text(" UNION ALL ".join(parts)), params)
    return {row[0] for row in rows} & wanted


def _id_ranges(ids: Sequence[int]) -> list[tuple[int, int]]:
    """Cover sorted `ids` with at most _MAX_RANGES ranges, split at the widest gaps."""
    gaps = sorted(
        (ids[i + 1] - ids[i], i) for i in range(len(ids) - 1) if ids[i + 1] - ids[i] > _RANGE_GAP
    )
    cuts = sorted(i for _, i in gaps[-(_MAX_RANGES - 1) :]) if gaps else []
    ranges = []
    start = 0
    for cut in cuts:
        ranges.append((ids[start], ids[cut]))
        start = cut + 1
    ranges.append((ids[start], ids[-1]))
    return ranges


async def matching_entries(
    session: AsyncSession, query: Query, entry_ids: Sequence[int]
) -> set[int]:
    """Return those of `entry_ids` that `query` matches (the matcher's verdict, per entry)."""
    if not entry_ids:
        return set()
    rows = await session.execute(
        select(Entry.id, Entry.title, Entry.summary, Feed.name, Feed.url)
        .join(Feed, Feed.id == Entry.feed_id)
        .where(Entry.id.in_(list(entry_ids)))
    )
    return {
        entry_id
        for entry_id, title, summary, feed_name, feed_url in rows
        if query.match(Document(title, summary or "", feed_source_names(feed_name, feed_url)))
        is not None
    }


async def required_feed_ids(
    session: AsyncSession, query: Query, guild_ids: Sequence[int]
) -> list[int] | None:
    """Return the feeds a match must come from (the query's required `source:` terms), or None."""
    sources = _required_source_leaves(query.root)
    if not sources:
        return None
    return await _source_feed_ids(session, sources, guild_ids)
