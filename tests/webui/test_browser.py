"""The web timeline in a real Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The link comes from `/web` through the real discord.py client and the emulator; the pages
come from a real server on 127.0.0.1 over the demo's real SQLite database. Screenshots of the
main pages go to tests/webui/screenshots/ (ignored by git) and /tmp/web-shots/ for review. If
the browser cannot start, these tests fail: they never skip.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from tests.discord_emulator import DiscordEmulator
from tests.discordbot.harness import GUILD
from tests.discordbot.member_harness import MemberBot
from tests.webui.conftest import HOSTILE_TITLE, SECRET, WEB, WebData
from timeline.app.config import DiscordSettings, Settings
from timeline.storage.engine import Database
from webui import app as webapp
from webui.app import make_app

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
REVIEW = Path("/tmp/web-shots")
SECRET_ENV = "TLBOT_BROWSER_WEB_SECRET"
LINK_RE = re.compile(r"<(http://[^>]+/\?token=[A-Za-z0-9_.\-]+)>")
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class Site:
    base: str
    link: str
    browser: Browser
    csp_errors: list[str]


def _folders() -> None:
    SHOTS.mkdir(exist_ok=True)
    REVIEW.mkdir(exist_ok=True)


async def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot for review."""
    _folders()
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    shutil.copyfile(path, REVIEW / path.name)
    print(f"screenshot: {path} (copy in {REVIEW})")


def watch_csp(page: Page, errors: list[str]) -> None:
    """Collect console errors the Content-Security-Policy raises (inline code, foreign hosts)."""
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )


@pytest.fixture
async def site(web_db: Database, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    server = TestServer(make_app(web_db, WEB, SECRET), host="127.0.0.1")
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    settings = Settings(
        discord=DiscordSettings(guild_ids=(GUILD.id,)),
        web=replace(WEB, base_url=base, secret_env=SECRET_ENV),
    )
    try:
        async with DiscordEmulator([GUILD]) as emu:
            bot = MemberBot(settings, web_db, ("discordbot.cogs.web",), guild_ready_timeout=0.05)
            async with emu.run_bot(bot):
                ix = await emu.invoke("web", member="user")
        assert ix.ephemeral
        match = LINK_RE.search(ix.text())
        assert match, ix.text()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                yield Site(base, match.group(1), browser, [])
            finally:
                await browser.close()
    finally:
        await server.close()


async def test_member_opens_link_searches_opens_event_and_storyline(
    site: Site, web_data: WebData
) -> None:
    context = await site.browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    watch_csp(page, site.csp_errors)

    response = await page.goto(site.link)
    assert response is not None and response.status == 200
    assert page.url == site.base + "/"  # the token left the address bar for a cookie
    assert await page.locator("#events > li").count() == 8
    await shot(page, "01-timeline")

    await page.fill("#q", "dual-use")
    await page.press("#q", "Enter")
    await page.wait_for_url(re.compile(r"q=dual-use"))
    titles = await page.locator("#events h2.title").all_inner_texts()
    assert "Customs seize drone parts shipment bound for Russia" in titles
    assert "Commission publishes updated dual-use export control list" in titles
    assert not any("Fireworks" in t for t in titles)
    await shot(page, "02-search-dual-use")

    await page.get_by_role(
        "link", name="Customs seize drone parts shipment bound for Russia"
    ).click()
    await page.wait_for_url(re.compile(r"/event/\d+$"))
    assert (
        await page.inner_text("#event-title")
        == "Customs seize drone parts shipment bound for Russia"
    )
    source = page.get_by_role("link", name="Customs seize drone parts shipment bound for Russia")
    assert await source.get_attribute("rel") == "noopener noreferrer"
    assert "<i>check</i> the list" in await page.inner_text("ul.notes")
    await shot(page, "03-event")

    await page.click("#storyline-link")
    await page.wait_for_url(re.compile(rf"/storyline/{web_data.storyline_id}$"))
    assert await page.inner_text("#storyline-title") == "Dual-use export controls"
    assert await page.locator("svg circle.axis-dot").count() == 2
    assert await page.locator("#events > li").count() == 2
    await shot(page, "04-storyline")

    await page.goto(site.base + '/?q=nato "communique')
    error = page.locator("#query-error")
    assert "column 6" in await error.inner_text()
    await shot(page, "05-query-error")

    await page.goto(site.base + "/chart?q=dual-use")
    loaded = await page.eval_on_selector("#chart", "img => img.complete && img.naturalWidth > 0")
    assert loaded
    await shot(page, "06-chart")
    assert site.csp_errors == []
    await context.close()


async def test_feed_markup_is_text_and_tampered_link_is_403(site: Site) -> None:
    context = await site.browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    watch_csp(page, site.csp_errors)
    await page.goto(site.link)
    hostile = page.locator("#events h2.title", has_text="dual-use <b>bold</b>")
    assert await hostile.inner_text() == HOSTILE_TITLE
    assert await page.evaluate("typeof window.pwned") == "undefined"
    assert await page.locator("#events b, #events img, #events script").count() == 0
    await hostile.get_by_role("link").click()
    await page.wait_for_url(re.compile(r"/event/\d+$"))
    assert await page.inner_text("#event-title") == HOSTILE_TITLE
    assert await page.locator("a[href^='javascript:']").count() == 0
    assert await page.evaluate("typeof window.pwned") == "undefined"
    await shot(page, "07-markup-as-text")

    fresh = await site.browser.new_context()
    other = await fresh.new_page()
    tampered = site.link[:-3] + ("AAA" if not site.link.endswith("AAA") else "BBB")
    response = await other.goto(tampered)
    assert response is not None and response.status == 403
    assert "expired or not valid" in await other.inner_text("#error-message")
    assert await other.locator("#events").count() == 0
    await shot(other, "08-tampered-403")
    assert site.csp_errors == []
    await fresh.close()
    await context.close()


async def test_phone_reading_and_infinite_scroll(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webapp, "PAGE_SIZE", 3)
    context = await site.browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    page = await context.new_page()
    watch_csp(page, site.csp_errors)
    await page.goto(site.link)
    await shot(page, "09-phone-timeline")
    # Nothing wider than the screen: readable without sideways scrolling.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    # The script appends the next cursor pages as the "Older events" link comes into view.
    for _ in range(3):
        if await page.locator("#more").count() == 0:
            break
        await page.locator("#more").scroll_into_view_if_needed()
        count = await page.locator("#events > li").count()
        # A function, not a string: the page's CSP (no 'unsafe-eval') refuses eval'd strings.
        await page.wait_for_function(
            "n => document.querySelectorAll('#events > li').length > n"
            " || !document.getElementById('more')",
            arg=count,
        )
    ids = await page.eval_on_selector_all("#events > li", "els => els.map(e => e.id)")
    assert len(ids) == len(set(ids)) == 8
    await shot(page, "10-phone-scrolled")

    # Without JavaScript the "Older events" link pages the same way.
    nojs = await site.browser.new_context(java_script_enabled=False, viewport=PHONE)
    plain = await nojs.new_page()
    await plain.goto(site.link)
    seen: list[str] = []
    while True:
        seen += await plain.eval_on_selector_all("#events > li", "els => els.map(e => e.id)")
        if await plain.locator("#more").count() == 0:
            break
        await plain.click("#more")
        await plain.wait_for_load_state()
    assert sorted(seen) == sorted(ids)
    assert site.csp_errors == []
    await nojs.close()
    await context.close()
