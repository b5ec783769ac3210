"""Web fixtures: the demo's real SQLite database plus two guilds' own rows, and a live server.

The demo (timeline/cli/demo.py) polls its bundled feeds through the real fetcher into a real SQLite
file once per session; each test gets a copy. On top of it: a storyline over the demo's two
dual-use events, guild A's own feed with a hostile, markup-laden story, and guild B's own feed
and storyline that guild A must never see.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from timeline.app.config import WebSettings
from timeline.cli.demo import run_demo
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event, EventNote, Feed, Storyline
from timeline.usecases.web import member_link
from webui.app import make_app

GUILD_A = 900_000_000_000_000_001  # the emulator's default guild: /web links name it
GUILD_B = 222222222222222222
SECRET = b"web-test-secret-0123456789abcdef-xyz"
HOSTILE_TITLE = (
    '<script>window.pwned = 1</script><img src=x onerror="window.pwned=2"> dual-use <b>bold</b>'
)
B_TITLE = "Guild B private dual-use memo"


@dataclass(frozen=True)
class WebData:
    """What the fixture database holds beyond the demo."""

    path: Path
    storyline_id: int
    hostile_event_id: int
    b_event_id: int
    b_storyline_id: int


async def _build(path: Path) -> WebData:
    assert await run_demo(path.parent, []) == 0
    db = Database(f"sqlite:///{path}")
    try:
        async with db.session() as s:
            dual = (
                await s.scalars(
                    select(Event.id).where(
                        Event.title.in_(
                            [
                                "Customs seize drone parts shipment bound for Russia",
                                "Commission publishes updated dual-use export control list",
                            ]
                        )
                    )
                )
            ).all()
            assert len(dual) == 2
            story = Storyline(guild_id=0, title="Dual-use export controls")
            s.add(story)
            await s.flush()
            await s.execute(update(Event).where(Event.id.in_(dual)).values(storyline_id=story.id))
            s.add(EventNote(event_id=max(dual), author="alice", text="<i>check</i> the list"))

            at = datetime(2025, 7, 8, 11, 0, tzinfo=UTC)
            feed_a = Feed(
                guild_id=GUILD_A, name="Guild A wire", url="https://a.example/rss", origin="discord"
            )
            feed_b = Feed(
                guild_id=GUILD_B, name="Guild B wire", url="https://b.example/rss", origin="discord"
            )
            s.add_all([feed_a, feed_b])
            await s.flush()
            hostile = Event(
                guild_id=GUILD_A, title=HOSTILE_TITLE, link="javascript:alert(1)", occurred_at=at
            )
            b_story = Storyline(guild_id=GUILD_B, title="Guild B secret storyline")
            s.add_all([hostile, b_story])
            await s.flush()
            b_event = Event(
                guild_id=GUILD_B,
                title=B_TITLE,
                link="https://b.example/memo",
                occurred_at=at,
                storyline_id=b_story.id,
            )
            s.add(b_event)
            await s.flush()
            s.add_all(
                [
                    Entry(
                        feed_id=feed_a.id,
                        event_id=hostile.id,
                        key="hostile",
                        title=HOSTILE_TITLE,
                        summary="<script>alert(3)</script>",
                        link="javascript:alert(1)",
                        published_at=at,
                        first_seen_at=at,
                        tags=[],
                    ),
                    Entry(
                        feed_id=feed_b.id,
                        event_id=b_event.id,
                        key="memo",
                        title=B_TITLE,
                        summary="dual-use memo",
                        link="https://b.example/memo",
                        published_at=at + timedelta(minutes=1),
                        first_seen_at=at,
                        tags=[],
                    ),
                ]
            )
            await s.flush()
            return WebData(path, story.id, hostile.id, b_event.id, b_story.id)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def web_template(tmp_path_factory: pytest.TempPathFactory) -> WebData:
    """Run the demo once per session and add the web rows."""
    folder = tmp_path_factory.mktemp("webdemo")
    return asyncio.run(_build(folder / "demo.db"))


@pytest.fixture
def web_data(web_template: WebData, tmp_path: Path) -> WebData:
    """A copy of the session's web database for one test."""
    target = tmp_path / "web.db"
    shutil.copyfile(web_template.path, target)
    return WebData(
        target,
        web_template.storyline_id,
        web_template.hostile_event_id,
        web_template.b_event_id,
        web_template.b_storyline_id,
    )


@pytest.fixture
async def web_db(web_data: WebData) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{web_data.path}")
    try:
        yield db
    finally:
        await db.dispose()


WEB = WebSettings(enabled=True, host="127.0.0.1", port=0, token_lifetime_seconds=3600)


# The client of the web app under test (TestClient is generic in its request and app types).
WebClient = TestClient[web.Request, web.Application]


def token_for(guild_id: int, member: str = "alice") -> str:
    """Return the bare token of a fresh link (what /web hands out)."""
    url, _ = member_link(WEB, SECRET, guild_id, member)
    return url.split("token=", 1)[1]


@pytest.fixture
async def client(web_db: Database) -> AsyncIterator[WebClient]:
    """A real server on 127.0.0.1 serving the web app, and a client with a cookie jar."""
    server = TestServer(make_app(web_db, WEB, SECRET), host="127.0.0.1")
    async with TestClient(server) as c:
        yield c


async def login(client: WebClient, guild_id: int = GUILD_A) -> None:
    """Open a link for `guild_id` so the client holds its cookie."""
    response = await client.get(f"/?token={token_for(guild_id)}", allow_redirects=False)
    assert response.status == 303
