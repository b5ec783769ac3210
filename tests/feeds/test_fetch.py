"""The Fetcher against a real HTTP server on 127.0.0.1: every failure is a clear FetchResult."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from feeds.fetch import MAX_RETRY_AFTER, Fetcher, parse_retry_after
from feeds.types import FetchState
from tests.feeds.conftest import Origin, assert_failure_logged, fetch_settings, fixture_bytes


async def test_rss20_feed_is_fetched_and_parsed(origin: Origin, fetcher: Fetcher) -> None:
    url = origin.url("/f/rss20.xml")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "ok", result.error
    assert result.status == 200
    assert result.feed_title == "Example World News"
    assert [i.key for i in result.items] == ["urn:example:story:1001", "urn:example:story:1002"]
    body = fixture_bytes("rss20.xml")
    assert result.state.body_hash == hashlib.sha256(body).hexdigest()
    assert result.bytes_read == len(body)
    assert result.permanent_url is None
    assert origin.requests[0].headers["User-Agent"] == "TimelineBot-tests/1.0"


@pytest.mark.parametrize(
    ("name", "title", "count"),
    [
        ("rss091.xml", "Old School Wire", 1),
        ("rss10_rdf.xml", "RDF Ledger", 1),
        ("rss20.xml", "Example World News", 2),
        ("atom.xml", "Atom Observer", 2),
        ("rss_nato_communique.xml", "Bloomberg Politics", 1),
    ],
)
async def test_feed_formats_over_http(
    origin: Origin, fetcher: Fetcher, name: str, title: str, count: int
) -> None:
    result = await fetcher.fetch(FetchState(url=origin.url(f"/f/{name}")))
    assert result.outcome == "ok", result.error
    assert result.feed_title == title
    assert len(result.items) == count


async def test_iso_8859_1_charset_from_http_header(origin: Origin, fetcher: Fetcher) -> None:
    url = origin.url("/f/rss_iso8859_1.xml?ct=application/rss%2Bxml;%20charset=ISO-8859-1")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "ok", result.error
    assert result.feed_title == "Le Journal de Zürich"
    assert result.items[0].title == "Café crème: prix à la hausse à Genève"


async def test_windows_1252_charset_from_xml_declaration(origin: Origin, fetcher: Fetcher) -> None:
    url = origin.url("/f/rss_windows1252.xml?ct=application/xml")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "ok", result.error
    assert result.items[0].title == "“Budget deal” reached – €40bn package"


async def test_unreachable_host(
    fetcher: Fetcher, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port}/feed.xml"
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "unreachable"
    assert f"127.0.0.1:{closed_port}" in (result.error or "")
    assert result.state == FetchState(url=url)
    assert_failure_logged(caplog, url, "unreachable")


@pytest.mark.parametrize(("code", "text"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500")])
async def test_http_error_status(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture, code: int, text: str
) -> None:
    url = origin.url(f"/status/{code}")
    result = await fetcher.fetch(FetchState(url=url, etag='"old"', body_hash="abc"))
    assert result.outcome == "error"
    assert result.error_kind == "http"
    assert result.status == code
    assert (result.error or "").startswith(text)
    # The stored state is untouched, so the next fetch is not fooled by a 304 or hash match.
    assert result.state == FetchState(url=url, etag='"old"', body_hash="abc")
    assert_failure_logged(caplog, url, "http")


async def test_429_with_retry_after_seconds(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/status/429?retry_after=120")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "rate_limited"
    assert result.status == 429
    assert result.retry_after == 120.0
    assert "Retry-After 120 s" in (result.error or "")
    assert_failure_logged(caplog, url, "rate_limited")


async def test_503_with_retry_after_http_date(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    url = origin.url("/status/503?retry_after=" + when.replace(" ", "%20").replace(",", "%2C"))
    result = await fetcher.fetch(FetchState(url=url))
    assert result.error_kind == "http"
    assert result.retry_after is not None
    assert 7000 < result.retry_after <= 7200
    assert_failure_logged(caplog, url, "http")


def test_retry_after_parsing_is_bounded() -> None:
    now = datetime(2024, 7, 1, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after("Mon, 01 Jul 2024 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("Sun, 30 Jun 2024 00:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("99999999999999999999", now) == MAX_RETRY_AFTER
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


async def test_html_page_instead_of_feed(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/f/page_not_feed.html?ct=text/html;%20charset=utf-8")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "not_feed"
    assert result.status == 200
    assert "HTML page" in (result.error or "")
    assert result.state.body_hash is None  # a broken body is not remembered as "seen"
    assert_failure_logged(caplog, url, "not_feed")


async def test_malformed_xml(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/f/rss_malformed.xml")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "malformed"
    assert_failure_logged(caplog, url, "malformed")


async def test_empty_feed_is_ok(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    result = await fetcher.fetch(FetchState(url=origin.url("/f/rss_empty.xml")))
    assert result.outcome == "ok"
    assert result.items == []
    assert result.feed_title == "Quiet Desk"
    assert not [r for r in caplog.records if r.name == "feeds.fetch"]


@pytest.mark.parametrize("path", ["/big", "/big-declared"])
async def test_body_over_size_cap(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    url = origin.url(path)
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "too_large"
    assert str(64 * 1024) in (result.error or "")
    assert_failure_logged(caplog, url, "too_large")


async def test_gzip_bomb_is_refused(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/gzip-bomb")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "too_large"
    assert result.status == 200
    assert_failure_logged(caplog, url, "too_large")


@pytest.mark.parametrize("route", ["gzip", "deflate", "zlib"])
async def test_compressed_feed_is_decoded(origin: Origin, fetcher: Fetcher, route: str) -> None:
    result = await fetcher.fetch(FetchState(url=origin.url(f"/{route}/atom.xml")))
    assert result.outcome == "ok", result.error
    assert len(result.items) == 2
    assert origin.requests[0].headers["Accept-Encoding"] == "gzip, deflate"
    assert result.bytes_read < len(fixture_bytes("atom.xml"))


async def test_corrupt_gzip_body(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/corrupt-gzip")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.error_kind == "http"
    assert "corrupt gzip response body" in (result.error or "")
    assert_failure_logged(caplog, url, "http")


async def test_server_slower_than_timeout(origin: Origin, caplog: pytest.LogCaptureFixture) -> None:
    url = origin.url("/slow")
    async with Fetcher(fetch_settings(timeout_seconds=0.3)) as fetcher:
        result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "timeout"
    assert "0.3 s" in (result.error or "")
    assert_failure_logged(caplog, url, "timeout")


async def test_redirect_loop(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/loop/a")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "redirect_loop"
    assert len(origin.requests) == 2
    assert_failure_logged(caplog, url, "redirect_loop")


async def test_too_many_redirects(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/chain/0")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.error_kind == "redirect_loop"
    assert "more than 5" in (result.error or "")
    assert len(origin.requests) == 6  # the original request and 5 redirects followed
    assert_failure_logged(caplog, url, "redirect_loop")


async def test_permanent_redirect_sets_permanent_url(origin: Origin, fetcher: Fetcher) -> None:
    target = origin.url("/f/rss20.xml")
    url = origin.url(f"/redirect?status=301&to={target}")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "ok", result.error
    assert result.permanent_url == target
    assert len(result.items) == 2
    assert result.state.url == url  # the poller decides whether to store permanent_url


async def test_temporary_redirect_keeps_url(origin: Origin, fetcher: Fetcher) -> None:
    result = await fetcher.fetch(FetchState(url=origin.url("/redirect?status=307&to=/f/atom.xml")))
    assert result.outcome == "ok", result.error
    assert result.permanent_url is None


async def test_permanent_redirect_to_a_failure_is_not_reported(
    origin: Origin, fetcher: Fetcher
) -> None:
    result = await fetcher.fetch(FetchState(url=origin.url("/redirect?status=308&to=/status/404")))
    assert result.error_kind == "http"
    assert result.permanent_url is None


async def test_private_address_refused_without_allow_list(
    origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/f/rss20.xml")
    async with Fetcher(fetch_settings(allow_private=())) as fetcher:
        result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "refused"
    assert "loopback" in (result.error or "")
    assert origin.requests == []
    assert_failure_logged(caplog, url, "refused")


async def test_hostname_resolving_to_loopback_refused(
    origin: Origin, caplog: pytest.LogCaptureFixture
) -> None:
    # "localhost" is a name, so this goes through the guarded resolver, not the literal check.
    url = f"http://localhost:{origin.port}/f/rss20.xml"
    async with Fetcher(fetch_settings(allow_private=())) as fetcher:
        result = await fetcher.fetch(FetchState(url=url))
    assert result.error_kind == "refused", result.error
    assert "localhost resolves to loopback address" in (result.error or "")
    assert origin.requests == []
    assert_failure_logged(caplog, url, "refused")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://10.20.30.40/feed.xml", "private"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[::1]:80/feed.xml", "loopback"),
    ],
)
async def test_redirect_from_allowed_host_to_refused_one(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture, target: str, reason: str
) -> None:
    url = origin.url(f"/redirect?status=301&to={target}")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "refused"
    assert reason in (result.error or "")
    assert result.permanent_url is None
    assert_failure_logged(caplog, url, "refused")


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/feed.xml", "file:///etc/passwd", "feed.xml", "http://", ""]
)
async def test_only_http_urls(fetcher: Fetcher, caplog: pytest.LogCaptureFixture, url: str) -> None:
    result = await fetcher.fetch(FetchState(url=url))
    assert result.outcome == "error"
    assert result.error_kind == "bad_url"
    assert_failure_logged(caplog, url, "bad_url")


async def test_redirect_to_non_http_scheme(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/redirect?to=file:///etc/passwd")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.error_kind == "bad_url"
    assert_failure_logged(caplog, url, "bad_url")


async def test_conditional_get_304(origin: Origin, fetcher: Fetcher) -> None:
    url = origin.url("/etag")
    first = await fetcher.fetch(FetchState(url=url))
    assert first.outcome == "ok"
    assert first.state.etag == '"v1"'
    assert first.state.last_modified == "Tue, 09 Jul 2024 15:00:00 GMT"

    second = await fetcher.fetch(first.state)
    assert second.outcome == "not_modified"
    assert second.status == 304
    assert second.items == []
    assert second.state == first.state
    sent = origin.requests[1].headers
    assert sent["If-None-Match"] == '"v1"'
    assert sent["If-Modified-Since"] == "Tue, 09 Jul 2024 15:00:00 GMT"
    assert "If-None-Match" not in origin.requests[0].headers


async def test_unsendable_validators_are_not_sent(origin: Origin, fetcher: Fetcher) -> None:
    state = FetchState(url=origin.url("/etag"), etag='"v1"\r\nX-Evil: 1', last_modified="x" * 5000)
    result = await fetcher.fetch(state)
    assert result.outcome == "ok", result.error
    assert "If-None-Match" not in origin.requests[0].headers
    assert "If-Modified-Since" not in origin.requests[0].headers
    assert result.state.etag == '"v1"'


async def test_identical_body_is_unchanged(origin: Origin, fetcher: Fetcher) -> None:
    url = origin.url("/f/atom.xml")
    first = await fetcher.fetch(FetchState(url=url))
    assert first.outcome == "ok"
    second = await fetcher.fetch(first.state)
    assert second.outcome == "unchanged"
    assert second.items == []
    assert second.state.body_hash == first.state.body_hash


async def test_entity_bomb_over_http(
    origin: Origin, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    url = origin.url("/f/rss_entity_bomb.xml")
    result = await fetcher.fetch(FetchState(url=url))
    assert result.error_kind == "malformed"
    assert "ENTITY" in (result.error or "")
    assert_failure_logged(caplog, url, "malformed")


async def test_per_host_concurrency_limit(origin: Origin) -> None:
    async with Fetcher(fetch_settings(per_host_concurrency=1)) as fetcher:
        tasks = [
            asyncio.create_task(fetcher.fetch(FetchState(url=origin.url(f"/held?n={n}"))))
            for n in range(3)
        ]
        await origin.first_arrived.wait()
        # A full round trip from an independent client: without the limit, the other fetches
        # (started earlier) would have reached the held handler by the time it completes.
        async with aiohttp.ClientSession() as other, other.get(origin.url("/ping")) as resp:
            assert await resp.text() == "pong"
        assert origin.in_flight == 1
        origin.release.set()
        results = await asyncio.gather(*tasks)
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert origin.max_in_flight == 1


async def test_fetch_outside_context_is_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    result = await Fetcher(fetch_settings()).fetch(FetchState(url="http://127.0.0.1:9/x"))
    assert result.outcome == "error"
    assert result.error_kind == "internal"
