"""The web timeline over a real server on 127.0.0.1 and the demo's real SQLite database."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import select

from tests.webui.conftest import (
    B_TITLE,
    GUILD_A,
    GUILD_B,
    HOSTILE_TITLE,
    SECRET,
    WebClient,
    WebData,
    login,
    token_for,
)
from timeline.app.config import Settings, WebSettings
from timeline.domain.signed_links import sign_token
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event, Feed
from timeline.usecases import settings as settings_svc
from webui import app as webapp
from webui.app import COOKIE
from webui.server import WebServer


async def test_link_moves_token_into_cookie_and_redirects(client: WebClient) -> None:
    token = token_for(GUILD_A)
    response = await client.get(f"/?q=dual-use&token={token}", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/?q=dual-use"
    cookie = response.cookies[COOKIE]
    assert cookie.value == token
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    page = await client.get("/?q=dual-use")
    assert page.status == 200
    assert "Customs seize drone parts" in await page.text()


@pytest.mark.parametrize("path", ["/", "/event/1", "/chart.png", "/export.csv", "/storyline/1"])
async def test_no_token_is_a_plain_403(client: WebClient, path: str) -> None:
    response = await client.get(path)
    assert response.status == 403
    body = await response.text()
    assert "expired or not valid" in body and "/web" in body
    assert "NATO" not in body


async def test_tampered_and_expired_tokens_are_403(client: WebClient) -> None:
    token = token_for(GUILD_A)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = await client.get(f"/?token={tampered}", allow_redirects=False)
    assert response.status == 403
    assert COOKIE not in response.cookies or not response.cookies[COOKIE].value
    client.session.cookie_jar.update_cookies({COOKIE: tampered})
    assert (await client.get("/")).status == 403

    old = sign_token(
        SECRET,
        GUILD_A,
        "alice",
        lifetime=timedelta(minutes=1),
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    assert (await client.get(f"/?token={old}", allow_redirects=False)).status == 403


async def test_security_headers_on_every_response(client: WebClient) -> None:
    for response in (await client.get("/"), await client.get("/static/style.css")):
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    await login(client)
    response = await client.get("/")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = await response.text()
    # No inline scripts or styles: the CSP would block them anyway.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "style=" not in html and "<style" not in html


async def test_timeline_newest_first_and_cursor_pages(client: WebClient, web_data: WebData) -> None:
    await login(client)
    html = await (await client.get("/")).text()
    assert html.index("Fireworks factory blast") < html.index("EU Weighs Tighter Rules")
    assert 'id="more"' not in html  # one page holds the demo
    oldest = await (await client.get("/?order=oldest")).text()
    assert oldest.index("EU Weighs Tighter Rules") < oldest.index("Fireworks factory blast")
    # Storyline, watches and notes show on the timeline.
    assert "storyline: Dual-use export controls" in html
    assert 'class="tag watch">dual-use' in html
    assert "1 note" in html


async def test_cursor_paging_links_cover_everything(client: WebClient) -> None:

    await login(client)
    old = webapp.PAGE_SIZE
    webapp.PAGE_SIZE = 3
    try:
        seen: list[str] = []
        path = "/"
        while True:
            html = await (await client.get(path)).text()
            seen += re.findall(r'<li class="event" id="event-(\d+)"', html)
            more = re.search(r'id="more" rel="next" href="([^"]+)"', html)
            if not more:
                break
            path = more.group(1).replace("&amp;", "&")
            assert "cursor=" in path and "offset" not in path
    finally:
        webapp.PAGE_SIZE = old
    assert len(seen) == len(set(seen)) == 8  # the demo's 7 and guild A's own


async def test_search_shows_matching_events(client: WebClient) -> None:
    await login(client)
    html = await (await client.get("/?q=dual-use")).text()
    assert "Customs seize drone parts" in html
    assert "Commission publishes updated dual-use export control list" in html
    assert "Fireworks factory" not in html and "Oil Holds Gains" not in html


async def test_query_syntax_error_is_shown_by_the_box_with_its_column(
    client: WebClient,
) -> None:
    await login(client)
    response = await client.get('/?q=nato "communique')
    assert response.status == 400
    html = await response.text()
    match = re.search(
        r'<div class="query-error" id="query-error" role="alert">\s*<p>([^<]+)</p>', html
    )
    assert match and "column 6" in match.group(1)
    assert '<pre class="caret">nato &#34;communique\n     ^</pre>' in html
    assert 'aria-invalid="true"' in html


async def test_filters_by_watch_source_dates_and_storyline(
    client: WebClient, web_data: WebData
) -> None:
    await login(client)
    html = await (await client.get("/?watch=nato-communique")).text()
    assert "NATO Summit Draft" in html and "Customs seize" not in html
    html = await (await client.get("/?source=Export Control Monitor")).text()
    assert "Customs seize" in html and "Oil Holds" not in html
    html = await (await client.get("/?since=2025-07-08&until=2025-07-08")).text()
    assert "Fireworks" in html and "EU Weighs" not in html
    html = await (await client.get(f"/?storyline={web_data.storyline_id}")).text()
    assert re.findall(r'id="event-(\d+)"', html).__len__() == 2
    bad = await client.get("/?watch=nope&since=soonish")
    assert bad.status == 400
    text = await bad.text()
    assert "since:" in text


async def test_event_page_lists_sources_added_and_notes(client: WebClient) -> None:
    await login(client)
    html = await (await client.get("/?q=communique")).text()
    event_id = re.search(r'href="/event/(\d+)"', html).group(1)  # type: ignore[union-attr]
    page = await (await client.get(f"/event/{event_id}")).text()
    assert "Bloomberg" in page and "Reuters" in page
    assert 'rel="noopener noreferrer"' in page
    assert (
        "https://www.bloomberg.example/news/2025-07-08/nato-draft-communique-china-russia" in page
    )


async def test_storyline_page_has_time_axis_and_events(
    client: WebClient, web_data: WebData
) -> None:
    await login(client)
    page = await (await client.get(f"/storyline/{web_data.storyline_id}")).text()
    assert "Dual-use export controls" in page
    assert page.count('class="axis-dot"') == 2
    assert page.index("Commission publishes") < page.index("Customs seize")  # oldest first
    png = await client.get(f"/storyline/{web_data.storyline_id}/chart.png")
    assert png.status == 200 and (await png.read()).startswith(b"\x89PNG")


async def test_feed_markup_is_text_and_bad_links_are_dropped(
    client: WebClient, web_data: WebData
) -> None:
    await login(client)
    for path in ("/", f"/event/{web_data.hostile_event_id}"):
        html = await (await client.get(path)).text()
        assert "<script>window.pwned" not in html and "<b>bold</b>" not in html
        assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
        assert "javascript:" not in html
    page = await (await client.get(f"/event/{web_data.hostile_event_id}")).text()
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page
    note_page = await (await client.get("/?q=customs")).text()
    event_id = re.search(r'href="/event/(\d+)"', note_page).group(1)  # type: ignore[union-attr]
    notes = await (await client.get(f"/event/{event_id}")).text()
    assert "&lt;i&gt;check&lt;/i&gt; the list" in notes


async def test_guild_a_never_reads_guild_b(client: WebClient, web_data: WebData) -> None:
    await login(client, GUILD_A)
    for path in ("/", "/?q=dual-use", "/?q=memo", "/export.json", "/export.csv?q=memo"):
        body = await (await client.get(path)).text()
        assert B_TITLE not in body and "Guild B" not in body, path
    assert (await client.get(f"/event/{web_data.b_event_id}")).status == 404
    assert (await client.get(f"/storyline/{web_data.b_storyline_id}")).status == 404
    assert (await client.get(f"/storyline/{web_data.b_storyline_id}/export.json")).status == 404
    assert (await client.get(f"/export.json?storyline={web_data.b_storyline_id}")).status == 404
    assert (await client.get("/?source=Guild B wire")).status == 400
    # And B's own token does see it (so the test above is not vacuous).
    await login(client, GUILD_B)
    assert B_TITLE in await (await client.get("/?q=memo")).text()
    assert (await client.get(f"/event/{web_data.b_event_id}")).status == 200
    assert HOSTILE_TITLE[:10] not in await (await client.get("/")).text()


async def test_export_links_follow_the_filter(client: WebClient) -> None:
    await login(client)
    html = await (await client.get("/?q=dual-use")).text()
    for fmt in ("csv", "json", "ics", "md"):
        assert f'href="/export.{fmt}?q=dual-use"' in html
    response = await client.get("/export.json?q=dual-use")
    assert response.status == 200
    assert "attachment" in response.headers["Content-Disposition"]
    titles = {e["title"] for e in json.loads(await response.read())["events"]}
    assert "Customs seize drone parts shipment bound for Russia" in titles
    assert not any("Fireworks" in t for t in titles)
    ics = await client.get("/export.ics?watch=dual-use")
    assert (await ics.read()).startswith(b"BEGIN:VCALENDAR")
    assert (await client.get("/export.pdf")).status == 404


async def test_chart_png_is_the_chart_use_case(client: WebClient) -> None:
    await login(client)
    page = await client.get("/chart?q=dual-use")
    assert page.status == 200
    assert 'src="/chart.png?q=dual-use&amp;bucket=day"' in await page.text()
    png = await client.get("/chart.png?q=dual-use&bucket=week")
    assert png.status == 200 and png.content_type == "image/png"
    assert (await png.read()).startswith(b"\x89PNG")
    bad = await client.get('/chart.png?q="open')
    assert bad.status == 400


async def test_unknown_event_is_404_and_crash_is_500_apology(
    client: WebClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await login(client)
    assert (await client.get("/event/999999")).status == 404

    async def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(webapp, "show_event", boom)
    response = await client.get("/event/1")
    assert response.status == 500
    body = await response.text()
    assert "Sorry" in body and "on fire" not in body
    assert any("failed" in r.getMessage() for r in caplog.records)


async def test_refused_token_logs_one_line_without_the_token(
    client: WebClient, caplog: pytest.LogCaptureFixture
) -> None:

    caplog.set_level(logging.INFO, logger="webui")
    token = token_for(GUILD_A)
    await client.get(f"/?token={token}x", allow_redirects=False)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("webui")]
    assert len(lines) == 1 and "refused" in lines[0]
    assert token not in lines[0]


async def test_web_server_keeps_no_access_log(
    web_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # The test client's own server logs requests; the product's WebServer must not (a first
    # visit's address carries the token).

    caplog.set_level(logging.DEBUG)
    settings = Settings(web=WebSettings(enabled=True, host="127.0.0.1", port=0))
    token = token_for(GUILD_A)
    async with WebServer(settings, web_db, secret=SECRET) as server:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(f"http://127.0.0.1:{server.port}/?token={token}") as response:
                assert response.status == 200
                assert "Customs seize" in await response.text()
    assert token not in caplog.text


async def test_dates_mentioned_show_on_timeline_and_event_page(client: WebClient) -> None:
    await login(client)
    html = await (await client.get("/?q=communique")).text()
    assert re.findall(r'<li class="event" id="event-(\d+)"', html).__len__() == 1
    assert "NATO Summit Draft Communique" in html
    assert (
        '<p class="mentions">Mentions:\n<time datetime="2025-07-09" title="from July 9 to 11">'
        "2025-07-09 – 2025-07-11</time>"
    ) in html
    event_id = re.search(r'href="/event/(\d+)"', html).group(1)  # type: ignore[union-attr]
    page = await (await client.get(f"/event/{event_id}")).text()
    assert "Dates mentioned" in page and "2025-07-09 – 2025-07-11" in page


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/\\evil.example/", "/%5Cevil.example/"),
        ("/%0d%0aSet-Cookie:x=1", "/%0D%0ASet-Cookie:x=1"),
        ("/event/5", "/event/5"),
    ],
)
async def test_token_redirect_stays_on_this_site(
    client: WebClient, path: str, location: str
) -> None:
    token = token_for(GUILD_A)
    response = await client.get(f"{path}?token={token}&q=a%20b", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"{location}?q=a+b"
    assert "Set-Cookie:x" not in str(response.headers.getall("Set-Cookie"))


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        ("//evil.example/x", "/evil.example/x"),
        ("/\\evil.example/x", "/evil.example/x"),
        ("/a\\b", "/a%5Cb"),
    ],
)
async def test_redirect_target_never_names_another_host(
    client: WebClient, raw: str, location: str
) -> None:
    # Sent as raw bytes: an HTTP client library would read these paths as URLs of other hosts.

    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        request = (
            f"GET {raw}?token={token_for(GUILD_A)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = (await reader.read()).split(b"\r\n\r\n", 1)[0].decode()
    finally:
        writer.close()
        await writer.wait_closed()
    assert head.startswith("HTTP/1.1 303")
    assert f"\r\nLocation: {location}\r\n" in head


@pytest.mark.parametrize(
    "path",
    [
        "/?q=" + "a" * 5000,
        "/?q=%00drone%00",
        "/?q=((((((((((a",
        '/?q="',
        "/?q=-",
        "/?cursor=garbage",
        "/?cursor=" + "A" * 200,
        "/?storyline=abc",
        "/?storyline=99999999999999999999",
        "/?since=2025-13-45",
        "/?since=9999999d",
        "/?until=1900-01-01&since=2100-01-01",
        "/?watch=%E2%80%AE",
        "/?order=sideways",
        "/chart.png?bucket=month",
        "/chart.png?since=1970-01-01",
        "/chart?q=%22",
        "/export.csv?q=(",
        "/export.json?storyline=x",
        "/storyline/0",
        "/event/0",
    ],
)
async def test_hostile_parameters_get_a_clear_page_not_a_crash(
    client: WebClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    await login(client)
    response = await client.get(path)
    assert response.status in (200, 400, 404), (path, response.status)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], path


async def test_a_guild_in_paris_reads_its_times_days_and_files_in_its_zone(
    client: WebClient, web_db: Database, web_data: WebData
) -> None:

    async with web_db.session() as s:
        await settings_svc.set_timezone(s, GUILD_A, "Europe/Paris", "admin", "UTC")
        # 22:30 UTC on the 8th is 00:30 on Wednesday the 9th in Paris.
        late = Event(
            guild_id=GUILD_A,
            title="Midnight briefing",
            occurred_at=datetime(2025, 7, 8, 22, 30, tzinfo=UTC),
            storyline_id=web_data.storyline_id,
        )
        s.add(late)
        await s.flush()
        feed = await s.scalar(select(Feed.id).where(Feed.name == "Guild A wire"))
        s.add(
            Entry(
                feed_id=feed,
                event_id=late.id,
                key="midnight",
                title="Midnight briefing",
                link="https://a.example/midnight",
                published_at=late.occurred_at,
                first_seen_at=late.occurred_at,
                tags=[],
            )
        )
        late_id = late.id
    await login(client)
    page = await (await client.get(f"/event/{web_data.hostile_event_id}")).text()
    # The hostile event is 11:00 UTC: 13:00 summer time in Paris, and the footer says so.
    assert "2025-07-08 13:00 CEST" in page and "UTC" not in page.split("<footer>")[0]
    assert "Times and days are in Europe/Paris" in page
    since = await (await client.get("/?q=midnight&since=2025-07-09")).text()
    assert f'id="event-{late_id}"' in since and "2025-07-09 00:30 CEST" in since
    until = await (await client.get("/?q=midnight&until=2025-07-08")).text()
    assert f'id="event-{late_id}"' not in until and 'id="empty"' in until
    md = await (await client.get("/export.md?q=midnight&since=2025-07-09")).text()
    assert md.index("## 2025-07-09") < md.index("00:30 CEST") < md.index("Midnight briefing")
    doc = json.loads(await (await client.get("/export.json?q=midnight")).text())
    assert doc["timezone"] == "Europe/Paris"
    assert doc["events"][0]["occurred_local"] == "2025-07-09T00:30:00+02:00"
    story = await client.get(f"/export.json?storyline={web_data.storyline_id}")
    assert json.loads(await story.text())["timezone"] == "Europe/Paris"
    story_md = await client.get(f"/storyline/{web_data.storyline_id}/export.md")
    assert "## 2025-07-09" in await story_md.text()
    assert (await client.get("/chart.png?q=midnight&since=2025-07-09")).status == 200
    assert (await client.get(f"/storyline/{web_data.storyline_id}/chart.png")).status == 200
