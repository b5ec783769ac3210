"""canonical_url and check_http_url."""

from __future__ import annotations

import pytest

from feeds.urls import BadURL, canonical_url, check_http_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://News.Example.COM/a/B?x=1#frag", "https://news.example.com/a/B?x=1"),
        ("http://example.com:80/p", "http://example.com/p"),
        ("https://example.com:443/p", "https://example.com/p"),
        ("https://example.com:8443/p", "https://example.com:8443/p"),
        ("https://example.com", "https://example.com/"),
        (
            "https://e.com/s?utm_source=rss&b=2&UTM_Medium=x&a=1&fbclid=z&gclid=y",
            "https://e.com/s?b=2&a=1",
        ),
        ("https://e.com/s?mc_cid=1&mc_eid=2&ref_src=twsrc&igshid=abc", "https://e.com/s"),
        ("https://e.com/s?q=a+b&z=%20&utm_term=t", "https://e.com/s?q=a+b&z=%20"),
        ("https://e.com/s?b=2&a=1", "https://e.com/s?b=2&a=1"),  # order kept, nothing sorted
        ("https://e.com/s?ref=home", "https://e.com/s?ref=home"),  # "ref" alone can be content
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        ("  https://e.com/x  ", "https://e.com/x"),
        ("not a url", "not a url"),
        ("http://e.com:99999/x", "http://e.com:99999/x"),  # unparseable port: left alone
    ],
)
def test_canonical_url(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


def test_canonical_url_is_idempotent() -> None:
    once = canonical_url("HTTP://A.example:80/p?utm_x=1&k=v#f")
    assert canonical_url(once) == once == "http://a.example/p?k=v"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://e.com/x", "scheme is ftp"),
        ("javascript:alert(1)", "scheme is javascript"),
        ("/relative/feed.xml", "scheme is none"),
        ("http:///nohost", "no host"),
        ("http://e.com/a b", "whitespace"),
        ("http://e.com:notaport/", "invalid URL"),
    ],
)
def test_check_http_url_rejects(url: str, message: str) -> None:
    with pytest.raises(BadURL, match=message):
        check_http_url(url)


def test_check_http_url_accepts() -> None:
    assert check_http_url(" https://e.com/feed ") == "https://e.com/feed"
