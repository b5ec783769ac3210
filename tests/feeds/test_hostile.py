"""Issue 14.3: hostile feeds that used to get through (or lose the whole feed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feeds.parse import FeedParseError, parse_feed
from tests.feeds.conftest import fixture_bytes

NOW = datetime(2024, 7, 12, 8, 0, tzinfo=UTC)
FEED_URL = "https://feeds.example.com/news.xml"
RSS = {"Content-Type": "application/rss+xml"}


def rss(*items: str) -> bytes:
    """An RSS 2.0 document whose items are the given inner XML strings."""
    body = "".join(f"<item>{inner}</item>" for inner in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{body}</channel></rss>"
    ).encode()


def story(n: int, title: str, description: str = "") -> str:
    """The inner XML of one item with guid `s{n}`."""
    return (
        f'<guid isPermaLink="false">s{n}</guid><title>{title}</title>'
        f"<link>https://news.example.com/{n}</link><description>{description}</description>"
    )


@pytest.mark.parametrize("ref", ["&#xD800;", "&#xDFFF;", "&#55296;", "&#x110000;", "&#0;"])
def test_reference_to_a_forbidden_character_is_replaced_and_the_feed_kept(ref: str) -> None:
    body = rss(*(story(n, f"Story {n}") for n in range(50)), story(50, f"Bad {ref} title"))
    feed = parse_feed(body, RSS, FEED_URL, NOW)
    assert len(feed.items) == 51
    assert feed.items[-1].title == "Bad \ufffd title"
    [warning] = feed.warnings
    assert ref in warning and "'s50'" in warning


def test_forbidden_references_in_every_field_and_encoding() -> None:
    feed = parse_feed(fixture_bytes("rss_invalid_charrefs.xml"), RSS, FEED_URL, NOW)
    by_key = {item.key.rsplit("/", 1)[-1]: item for item in feed.items}
    assert by_key["w1"].title == "Good story one"
    assert by_key["w2"].title == "\ufffdSurrogate\ufffd title"
    assert by_key["w3"].summary == "Past the end \ufffd and NUL \ufffd here"
    assert by_key["w4"].title == "Fine été 😀"  # valid references untouched
    assert by_key["w5"].title == "Huge \ufffd ref"
    [warning] = feed.warnings
    assert "replaced 6 reference(s)" in warning
    text = fixture_bytes("rss_invalid_charrefs.xml").decode().replace("utf-8", "utf-16", 1)
    utf16 = parse_feed(text.encode("utf-16"), RSS, FEED_URL, NOW)
    assert [i.title for i in utf16.items] == [i.title for i in feed.items]


def test_good_feed_has_no_warnings() -> None:
    assert parse_feed(fixture_bytes("rss20.xml"), RSS, FEED_URL, NOW).warnings == []


def test_comment_before_doctype_does_not_hide_entity_declarations() -> None:
    with pytest.raises(FeedParseError, match="ENTITY") as info:
        parse_feed(fixture_bytes("rss_comment_before_doctype.xml"), RSS, FEED_URL, NOW)
    assert info.value.kind == "malformed"


@pytest.mark.parametrize(
    "prolog",
    [
        '<?pi <x> ?><!DOCTYPE rss [<!ENTITY a "b">]>',
        '<!DOCTYPE rss PUBLIC "<x>" "y" [<!ENTITY a "b">]>',
        '<!DOCTYPE rss [<!-- ]> <rss> --> <!ENTITY a "b">]>',
        '<!--x--><!--<rss>--><!DOCTYPE rss [<!ENTITY a "b">]>',
        'garbage <rss> <!DOCTYPE rss [<!ENTITY a "b">]>',
    ],
)
def test_entity_declarations_after_fake_roots_are_refused(prolog: str) -> None:
    body = (
        f'<?xml version="1.0"?>{prolog}<rss version="2.0"><channel><item><title>&a;</title>'
        "</item></channel></rss>"
    ).encode()
    with pytest.raises(FeedParseError, match="ENTITY"):
        parse_feed(body, RSS, FEED_URL, NOW)


def test_entity_text_after_a_commented_prolog_is_content() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!-- <x> -->\n<?xml-stylesheet href="s.xsl"?>\n'
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "rss.dtd">\n'
        b'<rss version="2.0"><channel><item><title>DTDs</title>'
        b'<description><![CDATA[Write <!ENTITY name "value">.]]></description>'
        b"</item></channel></rss>"
    )
    [item] = parse_feed(body, RSS, FEED_URL, NOW).items
    assert item.summary == 'Write <!ENTITY name "value">.'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<![CDATA[<p>Para</p><script>alert(1)</script>]]>", "Para"),
        ("&lt;img src=x onerror=alert(1)&gt; Hi", "Hi"),
        ("<![CDATA[<b>Tom</b> &amp; <i>Jerry</i><style>b{}</style>]]>", "Tom & Jerry"),
        ("<![CDATA[Split<br>lines<!-- note -->]]>", "Split lines"),
        # Entities are decoded once: escaped markup is text, and is not parsed again.
        ("Use &amp;lt;b&amp;gt; for bold", "Use <b> for bold"),
        # Not tags: a comparison and an unknown element name stay as they are.
        ("5 &lt; 6 and x&lt;y and y&gt;z", "5 < 6 and x<y and y>z"),
    ],
)
def test_titles_are_plain_text(raw: str, expected: str) -> None:
    [item] = parse_feed(rss(story(1, raw)), RSS, FEED_URL, NOW).items
    assert item.title == expected


def test_atom_text_summary_and_content_are_plain_text() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:a</id>'
        b'<entry><id>urn:a:1</id><title type="text">&lt;p&gt;Hello&lt;/p&gt;</title>'
        b'<summary type="text">&lt;script&gt;x()&lt;/script&gt;&lt;b&gt;Body&lt;/b&gt;</summary>'
        b"</entry><entry><id>urn:a:2</id><title>Two</title>"
        b'<content type="text">&lt;div&gt;From content&lt;/div&gt;</content></entry></feed>'
    )
    first, second = parse_feed(body, {"Content-Type": "application/atom+xml"}, FEED_URL, NOW).items
    assert (first.title, first.summary) == ("Hello", "Body")
    assert second.summary == "From content"


def test_elements_nested_a_million_deep_are_refused_before_feedparser() -> None:
    body = rss(story(1, "Deep", "<x>" * 1_000_000), story(2, "Fine"))  # 3 MB
    with pytest.raises(FeedParseError, match="nested more than 256 deep") as info:
        parse_feed(body, RSS, FEED_URL, NOW)
    assert info.value.kind == "malformed"


@pytest.mark.parametrize(
    "description",
    [
        "</x>" * 1000 + "<x>" * 300,  # end tags first cannot pay for the nest
        "<é>" * 300,  # names need not be ASCII
        "<:x>" * 300,
        "<?pi " + "<x>" * 300,  # a PI ends at the first ">", as feedparser reads it
        "<x>" * 200 + "</x>" * 100 + "<x>" * 200,
        "<x " + " ".join(f'a{i}="1"' for i in range(101)) + "/>",
        "<x/>" * 150_001,  # more elements than MAX_ELEMENTS, however flat
        "<p>x <b>y</b></p>" * 75_001,
    ],
)
def test_hostile_shapes_are_refused(description: str) -> None:
    with pytest.raises(FeedParseError, match="refused"):
        parse_feed(rss(story(1, "Shape", description)), RSS, FEED_URL, NOW)


@pytest.mark.parametrize(
    "description",
    [
        "<x>" * 240 + "</x>" * 240,  # deep, within the limit
        "<![CDATA[" + "<b>" * 5000 + "]]>",  # HTML in CDATA is text, not elements
        "<!--" + "<x>" * 5000 + "-->",
        "&lt;div&gt;" * 5000,
        "<x/>" * 5000,
        "<x/>" * 149_000,  # within MAX_ELEMENTS
        "<![CDATA[" + "<x/>" * 200_000 + "]]>",  # text, not elements
        "<x " + " ".join(f'a{i}="1"' for i in range(100)) + "/>",
    ],
)
def test_normal_shapes_are_parsed(description: str) -> None:
    [item] = parse_feed(rss(story(1, "Shape", description)), RSS, FEED_URL, NOW).items
    assert item.title == "Shape"


def test_deep_nest_in_utf16_is_refused() -> None:
    text = rss(story(1, "Deep", "<x>" * 300)).decode().replace("utf-8", "utf-16", 1)
    with pytest.raises(FeedParseError, match="nested"):
        parse_feed(text.encode("utf-16"), RSS, FEED_URL, NOW)
