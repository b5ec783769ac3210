"""Issue 14.3: invisible characters split the same way in stored feed text and in `match`."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.parse import normalize_space, parse_feed
from timeline.domain.query import Document, parse_query, words

NOW = datetime(2024, 7, 12, 8, 0, tzinfo=UTC)
ODD = ["\u200b", "\u00ad", "\u200c", "\u200d", "\u2060", "\ufeff", "\x01", "\x85", "\xa0"]


def feed_title(text: str) -> str:
    """`text` as a title, through the real feed parser (as a character reference each)."""
    refs = "".join(c if c.isalnum() or c == " " else f"&#{ord(c)};" for c in text)
    body = (
        '<rss version="2.0"><channel><item><guid>g</guid>'
        f"<title>{refs}</title><description>{escape(text)}</description></item></channel></rss>"
    ).encode()
    feed = parse_feed(body, {"Content-Type": "application/rss+xml"}, "https://f.example/", NOW)
    [item] = feed.items
    return item.title


@pytest.mark.parametrize(
    "text", ["NA\u200bTO summit", "China\u200bRussia", "com\u00adpany", "dual\u2060use", "a\x01b"]
)
def test_feed_text_and_match_give_the_same_words(text: str) -> None:
    assert words(feed_title(text)) == words(text)


def test_zero_width_space_is_a_word_break_on_both_paths() -> None:
    stored = feed_title("China\u200bRussia drone")
    assert stored == "China Russia drone"
    query = parse_query('"China Russia"')
    assert query.match(Document(stored)) is not None
    assert query.match(Document("China\u200bRussia drone")) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*ODD, "nato", "NATO", "x", " ", "é", "1"]), max_size=12))
def test_stored_text_tokenises_as_the_raw_text(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert words(normalize_space(text)) == words(text)
