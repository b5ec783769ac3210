"""parse_feed on the fixture files: formats, plain text, keys, dates, hostile documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from feeds.parse import FeedParseError, ParsedFeed, html_to_text, normalize_space, parse_feed
from tests.feeds.conftest import fixture_bytes

NOW = datetime(2024, 7, 12, 8, 0, tzinfo=UTC)
FEED_URL = "https://feeds.example.com/news.xml"
RSS = {"Content-Type": "application/rss+xml"}


def parse(name: str, headers: dict[str, str] | None = None, now: datetime = NOW) -> ParsedFeed:
    return parse_feed(fixture_bytes(name), headers or RSS, FEED_URL, now)


def test_rss091_uses_canonical_link_as_key_and_estimates_date() -> None:
    feed = parse("rss091.xml")
    assert feed.version == "rss091n"
    [item] = feed.items
    assert item.link == "http://wire.example.org/2024/budget.html"
    assert item.key == item.link
    assert item.published == NOW
    assert item.published_is_estimated


def test_rss10_rdf() -> None:
    feed = parse("rss10_rdf.xml")
    assert feed.version == "rss10"
    [item] = feed.items
    assert item.key == "https://rdf.example.net/items/7"
    assert item.title == "Central bank holds rates"
    assert item.author == "Jane Analyst"
    assert item.tags == ("Economy",)
    # dc:date 2024-03-01T09:15:00-05:00
    assert item.published == datetime(2024, 3, 1, 14, 15, tzinfo=UTC)


def test_rss20_fields() -> None:
    feed = parse("rss20.xml")
    assert feed.version == "rss20"
    first = feed.items[0]
    assert first.key == "urn:example:story:1001"
    assert first.summary == "Delegations met for six hours."
    assert first.link == "https://news.example.com/world/ceasefire-talks?id=42"
    assert first.tags == ("Diplomacy", "Europe")
    assert first.author == "desk@example.com (World Desk)"
    # pubDate Tue, 09 Jul 2024 14:30:00 +0200
    assert first.published == datetime(2024, 7, 9, 12, 30, tzinfo=UTC)
    assert not first.published_is_estimated


def test_atom_dates_convert_to_utc_and_updated_stands_in() -> None:
    feed = parse("atom.xml", {"Content-Type": "application/atom+xml"})
    assert feed.version == "atom10"
    first, second = feed.items
    assert first.published == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)  # 09:00+09:00
    assert first.published.utcoffset() == timedelta(0)
    assert second.published == datetime(2024, 5, 2, 0, 30, tzinfo=UTC)  # updated 23:30-01:00
    assert not second.published_is_estimated
    assert first.title == "Tokyo & Seoul sign chip pact"
    assert first.summary == "The agreement covers export controls."
    assert second.summary == "Body from content."
    assert first.author == "Kenji Sato"
    assert first.link == "https://atom.example.com/2024/05/chip-pact"


def test_nato_communique_sample() -> None:
    feed = parse("rss_nato_communique.xml")
    [item] = feed.items
    assert item.title == (
        "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"
    )
    assert "dual-use military-civilian materials, according to" in item.summary
    assert "“decisive enabler” of Russia’s war" in item.summary
    assert item.link == (
        "https://www.bloomberg.com/news/articles/2024-07-09/nato-draft-communique-calls-out-china"
    )
    assert item.published == datetime(2024, 7, 9, 21, 52, 33, tzinfo=UTC)  # 17:52:33 EDT
    assert item.author == "Natalia Drozdiak"
    assert item.tags == ("Politics", "NATO")


def test_html_stripped_entities_decoded_nbsp_normalised_tracking_removed() -> None:
    feed = parse("rss_html_in_fields.xml")
    assert feed.title == "Messy & Loud"
    [item] = feed.items
    assert item.title == "Breaking: Ministers meet in Brussels & Paris"
    assert item.summary == 'First paragraph — with a link. Second "quoted" paragraph…'
    assert "steal" not in item.summary
    assert "\xa0" not in item.title + item.summary
    assert item.link == "https://messy.example.com/story/1?id=7&page=2"


def test_duplicate_guid_keeps_distinct_stories_and_drops_exact_repeat() -> None:
    feed = parse("rss_duplicate_guid.xml")
    titles = [i.title for i in feed.items]
    assert titles == [
        "Morning briefing: markets open higher",
        "Morning briefing: storm warning issued",
    ]
    keys = [i.key for i in feed.items]
    assert len(set(keys)) == 2
    assert all(k.startswith("daily-briefing#") for k in keys)


def test_duplicate_guid_keys_do_not_depend_on_order() -> None:
    body = fixture_bytes("rss_duplicate_guid.xml")
    start = body.index(b"<item>")
    end = body.rindex(b"</item>") + len(b"</item>")
    items = body[start:end].split(b"</item>")
    reordered = body[:start] + items[1] + b"</item>" + items[0] + b"</item>" + body[end:]
    forward = {i.title: i.key for i in parse_feed(body, RSS, FEED_URL, NOW).items}
    backward = {i.title: i.key for i in parse_feed(reordered, RSS, FEED_URL, NOW).items}
    assert forward == backward


def test_missing_absurd_and_garbage_dates_are_estimated() -> None:
    feed = parse("rss_no_dates.xml")
    assert len(feed.items) == 5
    for item in feed.items:
        assert item.published == NOW
        assert item.published_is_estimated
    last = feed.items[-1]
    assert last.link is None
    assert last.key.startswith("sha256:") and len(last.key) == 7 + 64


def test_date_within_a_day_ahead_is_kept() -> None:
    early = datetime(2024, 7, 9, 0, 0, tzinfo=UTC)
    feed = parse("rss20.xml", now=early)  # the first item is 12h30 ahead of "now"
    assert feed.items[0].published == datetime(2024, 7, 9, 12, 30, tzinfo=UTC)
    assert not feed.items[0].published_is_estimated


def test_now_in_another_zone_is_returned_as_utc() -> None:
    now = datetime(2024, 7, 12, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    item = parse("rss091.xml", now=now).items[0]
    assert item.published == NOW
    assert item.published.tzinfo is UTC


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("rss20.xml", now=datetime(2024, 7, 12))


def test_iso_8859_1_from_header() -> None:
    feed = parse("rss_iso8859_1.xml", {"content-type": "application/rss+xml; charset=ISO-8859-1"})
    assert feed.items[0].summary == "Les cafés augmentent leurs prix de 5%. Àh, l'été!"


def test_windows_1252_from_declaration() -> None:
    feed = parse("rss_windows1252.xml", {"Content-Type": "application/xml"})
    assert feed.items[0].summary == "Officials call it “historic”."


def test_empty_feed_has_no_items() -> None:
    feed = parse("rss_empty.xml")
    assert feed.items == []
    assert feed.title == "Quiet Desk"


def test_bozo_feed_with_entries_keeps_them() -> None:
    feed = parse("rss_truncated_with_entries.xml")
    assert feed.bozo
    assert [i.title for i in feed.items] == ["Complete story"]


def test_entry_cut_off_mid_title_is_not_kept() -> None:
    with pytest.raises(FeedParseError) as info:
        parse_feed(b"<rss><channel><item><title>Half a ti", RSS, FEED_URL, NOW)
    assert info.value.kind == "malformed"


def test_bozo_from_undefined_entity_keeps_every_entry() -> None:
    body = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item><title>One&nbsp;two</title><guid>a</guid></item>"
        b"<item><title>Three</title><guid>b</guid></item></channel></rss>"
    )
    feed = parse_feed(body, RSS, FEED_URL, NOW)
    assert feed.bozo
    assert [i.title for i in feed.items] == ["One two", "Three"]


def test_malformed_without_entries() -> None:
    with pytest.raises(FeedParseError) as info:
        parse("rss_malformed.xml")
    assert info.value.kind == "malformed"


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (fixture_bytes("page_not_feed.html"), "text/html"),
        (fixture_bytes("page_not_feed.html"), "application/octet-stream"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "application/json"),
        (b'<?xml version="1.0"?><config><a>1</a></config>', "application/xml"),
        (b"   \n", "application/rss+xml"),
    ],
)
def test_not_a_feed(body: bytes, ctype: str) -> None:
    with pytest.raises(FeedParseError) as info:
        parse_feed(body, {"Content-Type": ctype}, FEED_URL, NOW)
    assert info.value.kind == "not_feed"


def test_entity_bomb_is_refused() -> None:
    with pytest.raises(FeedParseError, match="ENTITY") as info:
        parse("rss_entity_bomb.xml")
    assert info.value.kind == "malformed"


def test_entity_bomb_in_utf16_is_refused() -> None:
    text = (
        fixture_bytes("rss_entity_bomb.xml")
        .decode("ascii")
        .replace('"1.0"?>', '"1.0" encoding="utf-16"?>', 1)
    )
    with pytest.raises(FeedParseError, match="ENTITY"):
        parse_feed(text.encode("utf-16"), RSS, FEED_URL, NOW)


def test_entity_text_inside_an_item_is_not_a_declaration() -> None:
    body = (
        b'<rss version="2.0"><channel><title>XML tips</title><item><title>DTDs</title>'
        b'<description><![CDATA[Write <!ENTITY name "value"> in the DTD.]]></description>'
        b"<guid>tip-1</guid></item></channel></rss>"
    )
    [item] = parse_feed(body, RSS, FEED_URL, NOW).items  # parsed, not refused
    assert item.title == "DTDs"
    assert item.summary.startswith("Write")


def test_relative_links_resolve_against_feed_url() -> None:
    body = (
        b'<rss version="2.0"><channel><title>R</title><item><title>Rel</title>'
        b'<link>/stories/9?utm_campaign=x</link><guid isPermaLink="false">r9</guid>'
        b"</item></channel></rss>"
    )
    [item] = parse_feed(body, RSS, FEED_URL, NOW).items
    assert item.link == "https://feeds.example.com/stories/9"


def test_non_http_links_are_dropped() -> None:
    body = (
        b'<rss version="2.0"><channel><title>R</title><item><title>JS</title>'
        b'<link>javascript:alert(1)</link><guid isPermaLink="false">js</guid>'
        b"</item></channel></rss>"
    )
    [item] = parse_feed(body, RSS, FEED_URL, NOW).items
    assert item.link is None


def test_oversized_fields_are_bounded() -> None:
    long_guid = "g" * 5000
    long_title = "word " * 1000
    body = (
        '<rss version="2.0"><channel><title>Big</title><item>'
        f'<title>{long_title}</title><guid isPermaLink="false">{long_guid}</guid>'
        f"<description>{'x' * 50000}</description>"
        "</item></channel></rss>"
    ).encode()
    [item] = parse_feed(body, RSS, FEED_URL, NOW).items
    assert len(item.key) <= 512
    assert item.key.startswith("sha256:")
    assert len(item.title) <= 500 and item.title.endswith("…")
    assert len(item.summary) <= 4000


def test_html_to_text() -> None:
    assert html_to_text("<p>a</p><p>b</p>") == "a b"
    assert html_to_text("x&nbsp;&amp;&#160;y") == "x & y"
    assert html_to_text("<b>bold</b>, <i>it</i>.") == "bold, it."
    assert html_to_text("<style>p{}</style><script>x()</script>ok") == "ok"
    assert html_to_text("a<br>b<br/>c") == "a b c"


def test_normalize_space() -> None:
    assert normalize_space("  a\u00a0\u00a0b\t\n c\u200b\u2009d  ") == "a b c d"
