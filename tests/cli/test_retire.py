"""Issue 19.1: a config file without its feeds retires them; history is deleted only by purge.

The demo's feeds go into a real SQLite file (over its real HTTP server), then `timeline-bot`
runs with other config files, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.helpers import FeedServer, rss
from timeline.cli.demo import run_demo
from timeline.cli.main import main
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Entry, Event, EventNote, Feed, Watch


async def run(cfg: Path, *argv: str) -> int:
    """Run the CLI in a thread: it runs its own event loop, as it does from a shell."""
    return await asyncio.to_thread(main, ["--config", str(cfg), *argv])


def only_database(tmp_path: Path, db_path: Path, name: str = "bare.toml") -> Path:
    path = tmp_path / name
    path.write_text(f'[database]\nurl = "sqlite:///{db_path}"\n')
    return path


async def counts(db: Database) -> dict[str, int]:
    async with db.session() as s:
        return {
            model.__name__: int(await s.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Entry, Event, EventNote, Alert, Feed, Watch)
        }


async def demo_db(tmp_path: Path) -> tuple[Path, Database]:
    """Run the demo into tmp_path/demo.db, note an event, and hand back the database."""
    assert await run_demo(tmp_path, []) == 0
    db_path = tmp_path / "demo.db"
    db = Database(f"sqlite:///{db_path}")
    async with db.session() as s:
        # The note goes on an event Bloomberg carried: which event is the first one depends
        # on which feed's fetch the demo's round finished first.
        event_id = await s.scalar(
            select(func.min(Entry.event_id))
            .join(Feed, Feed.id == Entry.feed_id)
            .where(Feed.name == "Bloomberg", Entry.event_id.is_not(None))
        )
        assert event_id is not None
        s.add(EventNote(event_id=event_id, author="alice", text="keep this"))
    return db_path, db


def config_like_demo(
    tmp_path: Path, db_path: Path, feeds: list[Feed], watches: list[Watch]
) -> Path:
    lines = ["[database]", f'url = "sqlite:///{db_path}"']
    for feed in feeds:
        lines += ["[[feeds]]", f"name = {json.dumps(feed.name)}", f"url = {json.dumps(feed.url)}"]
    for watch in watches:
        lines += [
            "[[watches]]",
            f"name = {json.dumps(watch.name)}",
            f"query = {json.dumps(watch.query)}",
            f"channel_id = {watch.channel_id}",
        ]
    path = tmp_path / "demo.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_config_without_feeds_retires_them_and_keeps_the_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path, db = await demo_db(tmp_path)
    try:
        before = await counts(db)
        assert before["Entry"] and before["Event"] and before["Alert"] and before["EventNote"]
        async with db.session() as s:
            feeds = list((await s.scalars(select(Feed).order_by(Feed.id))).all())
            watches = list((await s.scalars(select(Watch).order_by(Watch.id))).all())
        bare = only_database(tmp_path, db_path)
        capsys.readouterr()

        # The safety valve: every feed and watch would go at once.
        assert await run(bare, "poll", "--once") == 78
        err = capsys.readouterr().err
        assert str(bare) in err and "--accept-config" in err
        assert "3 of the 3 active feeds" in err and "2 of the 2 active watches" in err
        assert await run(bare, "db", "upgrade") == 78
        assert "--accept-config" in capsys.readouterr().err
        assert await counts(db) == before
        async with db.session() as s:
            assert (await s.scalar(select(func.count()).where(Feed.retired_at.is_not(None)))) == 0

        # Accepted: retired, nothing deleted, nothing polled.
        assert await run(bare, "--accept-config", "poll", "--once", "--all") == 0
        out = capsys.readouterr().out
        assert "feed " not in out  # no feed polled
        assert await counts(db) == before
        async with db.session() as s:
            assert all(f.retired_at is not None for f in (await s.scalars(select(Feed))).all())
            assert all(w.retired_at is not None for w in (await s.scalars(select(Watch))).all())

        assert await run(bare, "feed", "list") == 0
        listed = capsys.readouterr().out.splitlines()
        assert len(listed) == 3 and all("retired" in line for line in listed)
        assert await run(bare, "watch", "list") == 0
        assert all("retired" in line for line in capsys.readouterr().out.splitlines())
        assert await run(bare, "status") == 0
        status = capsys.readouterr().out
        assert "retired (left the config file, history kept): 3 feeds, 2 watches" in status
        assert await run(bare, "search", "NATO", "--json") == 0
        assert "NATO" in capsys.readouterr().out  # still searchable

        # Back in the file (one feed renamed, same URL): revived, same rows, same history.
        feeds[0].name = "Bloomberg News"
        demo = config_like_demo(tmp_path, db_path, feeds, watches)
        assert await run(demo, "db", "upgrade") == 0
        # Three feeds and two watches revived; the renamed feed also updated.
        assert "1 updated, 0 retired, 5 revived" in capsys.readouterr().out
        async with db.session() as s:
            now_feeds = list((await s.scalars(select(Feed).order_by(Feed.id))).all())
            now_watches = list((await s.scalars(select(Watch).order_by(Watch.id))).all())
        assert [(f.id, f.url, f.retired_at) for f in now_feeds] == [
            (f.id, f.url, None) for f in feeds
        ]
        assert now_feeds[0].name == "Bloomberg News"
        assert [(w.id, w.retired_at) for w in now_watches] == [(w.id, None) for w in watches]
        assert await counts(db) == before
    finally:
        await db.dispose()


async def test_feed_purge_needs_yes_refuses_configured_feeds_and_deletes_a_retired_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path, db = await demo_db(tmp_path)
    try:
        async with db.session() as s:
            feeds = list((await s.scalars(select(Feed).order_by(Feed.id))).all())
            watches = list((await s.scalars(select(Watch).order_by(Watch.id))).all())
            reuters = next(f for f in feeds if f.name == "Reuters")
            reuters_entries = int(
                await s.scalar(select(func.count()).where(Entry.feed_id == reuters.id)) or 0
            )
        demo = config_like_demo(tmp_path, db_path, feeds, watches)
        assert await run(demo, "db", "upgrade") == 0
        capsys.readouterr()

        # Still in the config file: refused, with or without --yes.
        assert await run(demo, "feed", "purge", "Reuters", "--yes") == 1
        assert "remove it from the config first" in capsys.readouterr().err

        # Out of the file (one of three: under the valve), so retired; then purged.
        without = config_like_demo(
            tmp_path, db_path, [f for f in feeds if f.name != "Reuters"], watches
        )
        assert await run(without, "db", "upgrade") == 0
        assert "1 retired" in capsys.readouterr().out
        before = await counts(db)
        assert await run(without, "feed", "purge", "Reuters") == 2
        err = capsys.readouterr().err
        assert "--yes" in err and f"{reuters_entries} stored entries" in err
        assert await counts(db) == before
        assert await run(without, "feed", "purge", "Reuters", "--yes") == 0
        assert "purged feed 'Reuters'" in capsys.readouterr().out
        after = await counts(db)
        assert after["Feed"] == before["Feed"] - 1
        assert after["Entry"] == before["Entry"] - reuters_entries
        # The NATO event Bloomberg also carried stays; its note too.
        assert after["EventNote"] == before["EventNote"]
        assert await run(without, "search", "NATO", "--json") == 0
        assert "NATO" in capsys.readouterr().out
    finally:
        await db.dispose()


async def test_poll_all_takes_feeds_leased_by_a_killed_poller(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:

    feed_server.bodies["/a.xml"] = rss(("1", "One", "s"))
    feed_server.bodies["/b.xml"] = rss(("2", "Two", "s"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "\n".join(
            [
                "[database]",
                f'url = "sqlite:///{tmp_path / "t.db"}"',
                "[polling]",
                'allow_private = ["127.0.0.1"]',
                "timeout_seconds = 2.0",
                "[[feeds]]",
                'name = "A"',
                f'url = "{feed_server.url("/a.xml")}"',
                "[[feeds]]",
                'name = "B"',
                f'url = "{feed_server.url("/b.xml")}"',
            ]
        )
        + "\n"
    )
    assert await run(cfg, "db", "upgrade") == 0
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    try:
        # A poller claimed A and was killed: its lease still runs for an hour.
        async with db.session() as s:
            a = (await s.scalars(select(Feed).where(Feed.name == "A"))).one()
            a.lease_owner = "deadhost:4242"
            a.lease_until = datetime.now(UTC) + timedelta(hours=1)
        capsys.readouterr()
        assert await run(cfg, "poll", "--once", "--all") == 0
        out = capsys.readouterr().out
        assert "took over 1 feed(s) still leased by another poller" in out
        assert "feed A: ok, 1 new entries" in out and "feed B: ok, 1 new entries" in out
        async with db.session() as s:
            a = (await s.scalars(select(Feed).where(Feed.name == "A"))).one()
            assert a.lease_owner is None
    finally:
        await db.dispose()
