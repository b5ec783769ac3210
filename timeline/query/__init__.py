"""The watch query language: parse, match items, index watches, search the timeline.

Syntax (operators are upper-case; lower-case `or`, `not`, `near` are ordinary words):

    NATO communique          every word, anywhere in title or summary
    "war machine"            consecutive words (also “curly quotes”)
    dual-use                 a word with punctuation inside is a phrase: dual-use, dual use
    drone OR UAV             either; OR binds tighter than the implicit AND:
                             `China drone OR UAV` = China AND (drone OR UAV)
    -fireworks, NOT fireworks  must not contain
    ( ... )                  grouping; `AND` may be written explicitly
    NATO NEAR/2 communique   at most 2 other tokens between, either order (NEAR = NEAR/10)
    communiq*                prefix of a word (unstemmed), at least 2 letters
    title:x  summary:x       only in that field (also title:"a b", title:(a OR b))
    source:reuters           only items from feeds whose name or domain matches
    @china                   a named alias, expanded recursively (cycles are refused)

Words are normalised (NFKC, case-folded, diacritics and possessive 's removed; every
non-alphanumeric character separates words) and stemmed with Snowball English, the same way
for queries, items and the search index. Errors raise timeline.errors.BadQuery with a column.

Use: `q = parse_query(text, aliases)`; `doc = Document(title, summary, feed_source_names(
name, url))`; `q.match(doc)` -> MatchResult | None; `WatchIndex([(watch_id, q), ...]).match(
doc)`; `highlight(text, result.terms)`; `await search_entries(session, q, guild_ids=...)`.
"""

from .document import Document, feed_source_names
from .highlight import highlight
from .index import WatchIndex
from .nodes import MatchResult
from .normalise import fold, stem, words
from .parser import MAX_DEPTH, MAX_QUERY_CHARS, MAX_TERMS, Query, parse_query
from .search import (
    MAX_LIMIT,
    SearchHit,
    few_candidates,
    index_tokens,
    indexed_candidates,
    matching_entries,
    required_feed_ids,
    search_entries,
    sync_search_index,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "Document",
    "MatchResult",
    "Query",
    "SearchHit",
    "WatchIndex",
    "feed_source_names",
    "few_candidates",
    "fold",
    "highlight",
    "index_tokens",
    "indexed_candidates",
    "matching_entries",
    "parse_query",
    "required_feed_ids",
    "search_entries",
    "stem",
    "sync_search_index",
    "words",
]
