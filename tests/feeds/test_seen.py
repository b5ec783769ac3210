"""Cutting a changed body to the items it adds (feeds/seen.py), and parsing the cut."""

from __future__ import annotations

import hashlib
import pickle
from datetime import UTC, datetime

from feeds.parse import parse_job
from feeds.seen import ChangedParse, parse_changed_job, without_seen_items

NOW = datetime(2024, 7, 12, 8, 0, tzinfo=UTC)
URL = "https://feeds.example.com/news.xml"
RSS = {"Content-Type": "application/rss+xml"}


def item(n: int, title: str | None = None, guid: str | None = None) -> str:
    return (
        f"<item><title>{title or f'Story {n}'}</title>"
        f"<link>https://example.com/{n}</link><guid>{guid or f'g{n}'}</guid>"
        f"<pubDate>Fri, 12 Jul 2024 0{n % 8}:00:00 GMT</pubDate></item>"
    )


def body(*items: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_body_that_adds_items_is_cut_to_them() -> None:
    first = body(item(1), item(2))
    _, seen = without_seen_items(first, digest(first), None, None)
    assert seen is not None and seen.body_hash == digest(first)
    second = body(item(3), item(1), item(2))
    cut, remembered = without_seen_items(second, digest(second), seen, digest(first))
    assert cut is not None and b"Story 3" in cut and b"Story 1" not in cut
    assert remembered is not None and remembered.body_hash == digest(second)
    parsed = parse_job(cut, RSS, URL, NOW)
    assert not isinstance(parsed, tuple) and [i.title for i in parsed.items] == ["Story 3"]


def test_the_whole_body_is_parsed_unless_the_last_one_remembered_is_the_one_stored() -> None:
    first = body(item(1))
    second = body(item(2), item(1))
    _, seen = without_seen_items(first, digest(first), None, None)
    # The stored body is another one (e.g. the store did not keep the last fetch).
    cut, remembered = without_seen_items(second, digest(second), seen, "another")
    assert cut is None and remembered is not None
    # Nothing remembered (a restart).
    assert without_seen_items(second, digest(second), None, digest(first))[0] is None
    # Items dropped, none added: a document with no items.
    fewer = body(item(1))
    _, seen = without_seen_items(second, digest(second), None, None)
    cut, _ = without_seen_items(fewer, digest(fewer), seen, digest(second))
    parsed = parse_job(cut or b"", RSS, URL, NOW)
    assert cut is not None and not isinstance(parsed, tuple) and parsed.items == []


def test_a_changed_item_with_a_known_guid_or_link_parses_the_whole_body() -> None:
    first = body(item(1), item(2))
    _, seen = without_seen_items(first, digest(first), None, None)
    edited = body(item(2, title="Story 2, updated"), item(1))
    assert without_seen_items(edited, digest(edited), seen, digest(first))[0] is None


def test_a_body_without_items_forgets_the_last_one() -> None:
    page = b"<html><body>not a feed</body></html>"
    assert without_seen_items(page, digest(page), None, None) == (None, None)


def test_a_cut_that_does_not_parse_cleanly_parses_the_whole_body() -> None:
    first = body(item(1))
    _, seen = without_seen_items(first, digest(first), None, None)
    # The new item holds an undeclared entity: the cut alone is not a clean document, so
    # the job parses the whole body and gives what a full parse gives.
    second = body(item(2, title="Caf&eacute; talks"), item(1))
    job = parse_changed_job(second, RSS, URL, NOW, digest(second), seen, digest(first))
    whole = parse_job(second, RSS, URL, NOW)
    assert isinstance(job, ChangedParse) and not isinstance(whole, tuple)
    assert not isinstance(job.parsed, tuple)
    assert job.parsed.items == whole.items and len(job.parsed.items) == 2
    assert job.seen is not None and job.seen.body_hash == digest(second)
    assert pickle.loads(pickle.dumps(job)) == job  # a worker process sends it back
