"""The terminal twins of the Discord commands, run through `timeline-bot` itself."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import FeedServer, rss
from timeline.app.config import load_settings
from timeline.cli.main import main
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade
from timeline.storage.models import Entry, Event, Feed

NATO = "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("admin") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def cfg(tmp_path: Path, migrated: Path) -> Path:
    shutil.copyfile(migrated, tmp_path / "t.db")
    path = tmp_path / "config.toml"
    path.write_text(
        "\n".join(
            [
                "[database]",
                f'url = "sqlite:///{tmp_path / "t.db"}"',
                "[polling]",
                'allow_private = ["127.0.0.1"]',
                "timeout_seconds = 2.0",
                "[aliases]",
                'china = "China OR Beijing"',
            ]
        )
        + "\n"
    )
    return path


async def run(cfg: Path, *argv: str) -> int:
    """Run the CLI in a thread: it runs its own event loop, as it does from a shell."""
    return await asyncio.to_thread(main, ["--config", str(cfg), *argv])


async def seed(cfg: Path) -> dict[str, int]:
    """Store a shared feed with two stories, one of them from two outlets."""
    url = load_settings(cfg).database.url
    database = Database(url)
    now = datetime.now(UTC)
    try:
        async with database.session() as s:
            a = Feed(guild_id=0, name="Bloomberg", url="https://bloomberg.example/rss")
            b = Feed(guild_id=0, name="Reuters", url="https://reuters.example/rss")
            s.add_all([a, b])
            await s.flush()
            nato = Event(guild_id=0, title=NATO, occurred_at=now - timedelta(hours=2))
            other = Event(
                guild_id=0, title="Markets \x1b[2J=calm", occurred_at=now - timedelta(hours=5)
            )
            s.add_all([nato, other])
            await s.flush()
            entries = [
                Entry(
                    feed_id=a.id,
                    event_id=nato.id,
                    key="a1",
                    title=NATO,
                    link="https://bloomberg.example/1",
                    published_at=nato.occurred_at,
                ),
                Entry(
                    feed_id=b.id,
                    event_id=nato.id,
                    key="b1",
                    title=NATO,
                    link="https://reuters.example/1",
                    published_at=nato.occurred_at + timedelta(minutes=20),
                ),
                Entry(
                    feed_id=b.id,
                    event_id=other.id,
                    key="b2",
                    title=other.title,
                    published_at=other.occurred_at,
                ),
            ]
            s.add_all(entries)
            await s.flush()
            return {"nato": nato.id, "other": other.id, "reuters_entry": entries[1].id}
    finally:
        await database.dispose()


async def test_feed_add_probes_the_url_then_follows_it(
    cfg: Path, feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.bodies["/world.xml"] = rss(
        ("g1", NATO, "s"), ("g2", "Other", "s"), title="World News"
    )
    world = feed_server.url("/world.xml")
    assert await run(cfg, "feed", "add", world, "--interval", "600", "--guild", "3") == 0
    assert "added feed 'World News' (World News, 2 entries)" in capsys.readouterr().out
    assert await run(cfg, "feed", "add", feed_server.url("/missing.xml"), "--guild", "3") == 1
    assert "cannot be used" in capsys.readouterr().err
    assert await run(cfg, "feed", "add", world, "--name", "Dup", "--guild", "3") == 1
    assert "already follows" in capsys.readouterr().err
    assert await run(cfg, "feed", "list", "--json", "--guild", "3") == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (listed["name"], listed["interval_seconds"], listed["origin"]) == (
        "World News",
        600,
        "cli",
    )
    opml = tmp_path / "feeds.opml"
    assert await run(cfg, "feed", "export", "-o", str(opml), "--guild", "3") == 0
    assert await run(cfg, "feed", "import", str(opml), "--guild", "5") == 0
    assert "added 1, skipped 0, refused 0" in capsys.readouterr().out
    assert await run(cfg, "feed", "import", str(opml), "--guild", "5") == 0
    assert "added 0, skipped 1, refused 0" in capsys.readouterr().out
    assert await run(cfg, "feed", "status", "World News", "--json", "--guild", "5") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "new"
    assert await run(cfg, "feed", "remove", "World News", "--guild", "3") == 0
    assert "stopped following feed 'World News' (retired" in capsys.readouterr().out
    assert await run(cfg, "feed", "list", "--guild", "3") == 0
    assert "[cli, retired " in capsys.readouterr().out
    assert await run(cfg, "feed", "list", "--guild", "5") == 0
    assert capsys.readouterr().out.startswith("World News: " + world)


async def test_watch_alias_and_config_export(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(cfg)
    assert await run(cfg, "alias", "set", "nato", "NATO OR alliance") == 0
    assert await run(cfg, "watch", "add", "Summit", "@nato communique", "--channel", "42") == 0
    assert await run(cfg, "watch", "add", "Bad", "NATO (", "--channel", "42") == 1
    assert "at column" in capsys.readouterr().err
    assert await run(cfg, "watch", "pause", "summit") == 0
    assert await run(cfg, "watch", "list", "--json") == 0
    out = capsys.readouterr().out.splitlines()
    watch = json.loads(out[-1])
    assert (watch["name"], watch["enabled"], watch["channel_id"]) == ("Summit", False, 42)
    assert await run(cfg, "watch", "test", "@nato communique", "--days", "2") == 0
    assert "2 stored entries in the last 2 days match" in capsys.readouterr().out
    exported = tmp_path / "exported.toml"
    assert await run(cfg, "config", "export", "-o", str(exported)) == 0
    back = load_settings(exported)
    assert [(w.name, w.query, w.enabled) for w in back.watches] == [
        ("Summit", "@nato communique", False)
    ]
    assert back.aliases == {"nato": "NATO OR alliance"}
    assert [f.name for f in back.feeds] == ["Bloomberg", "Reuters"]
    assert await run(cfg, "alias", "remove", "nato") == 1
    assert "still used by watch 'Summit'" in capsys.readouterr().err


async def test_timeline_event_export_and_status(
    cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await seed(cfg)
    assert await run(cfg, "timeline") == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text  # a hostile title cannot drive the terminal
    assert text.index("NATO Summit") < text.index("Markets")
    assert await run(cfg, "timeline", "--json", "--query", "NATO communique") == 0
    (event,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["feed"] for s in event["sources"]] == ["Bloomberg", "Reuters"]
    assert await run(cfg, "timeline", "--format", "md", "--since", "3h") == 0
    md = capsys.readouterr().out
    assert md.startswith("# Timeline") and "NATO Summit" in md and "Markets" not in md
    assert await run(cfg, "timeline", "--since", "soon") == 1
    assert "not a time I understand" in capsys.readouterr().err

    assert await run(cfg, "event", "note", str(ids["nato"]), "checked with the desk") == 0
    assert await run(cfg, "event", "split", str(ids["nato"]), str(ids["reuters_entry"])) == 0
    new_id = int(capsys.readouterr().out.rsplit("#", 1)[1])
    assert await run(cfg, "event", "merge", str(ids["nato"]), str(new_id)) == 0
    assert await run(cfg, "event", "show", str(ids["nato"]), "--json") == 0
    shown = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [s["feed"] for s in shown["sources"]] == ["Bloomberg", "Reuters"]
    assert shown["notes"][0]["text"] == "checked with the desk"
    assert await run(cfg, "event", "show", "999999") == 1
    assert "no event #999999" in capsys.readouterr().err

    assert (
        await run(cfg, "add-event", "yesterday", "Council briefing", "--url", "https://x.example/b")
        == 0
    )
    ics = tmp_path / "t.ics"
    assert await run(cfg, "export", "--format", "ics", "-o", str(ics)) == 0
    assert ics.read_bytes().count(b"BEGIN:VEVENT") == 3
    csv_file = tmp_path / "t.csv"
    assert await run(cfg, "export", "--format", "csv", "-o", str(csv_file)) == 0
    assert "'=calm" not in csv_file.read_text("utf-8-sig")  # starts with M: left alone
    assert await run(cfg, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert status["feeds_total"] == 2 and status["alerts_pending"] == 0
