"""Config export as TOML the loader accepts; start-up sync where the file wins."""

from __future__ import annotations

import tomllib

from sqlalchemy import select

from tests.usecases.factories import make_feed, make_story
from timeline.app.config import FeedConfig, Settings, WatchConfig, parse_settings
from timeline.storage.engine import Database
from timeline.storage.models import Alias, Feed, Watch
from timeline.usecases.aliases import set_alias
from timeline.usecases.config_io import export_config_toml, sync_config, toml_string
from timeline.usecases.feeds import add_feed
from timeline.usecases.watches import add_watch, list_watches, pause_watch

HOSTILE = 'say "hi" \\ back\n\ttab \x01 \x7f é'


def test_toml_string_escapes_everything_tomllib_needs() -> None:
    for value in (HOSTILE, "", "'''", '"""', "\\u0041", "a\rb", "\ufeff"):
        assert tomllib.loads(f"k = {toml_string(value)}")["k"] == value


async def test_export_round_trips_through_tomllib_and_the_config_loader(sdb: Database) -> None:
    async with sdb.session() as s:
        await make_feed(s, "Shared", "https://shared.example/rss")
        await set_alias(s, 4, "china", 'China OR "People\'s Republic"', "alice")
        await add_feed(
            s, 4, 'https://q.example/?a="1"&b=\\', "Quote Feed", 900, "alice", None, tags=['a"b']
        )
        await add_watch(
            s, 4, "Hostile", '"war machine" -"say hi" drone\\uav', 123, "alice", role_id=9
        )
        await add_watch(s, 4, "China drones", "@china drone", 124, "alice")
        await pause_watch(s, 4, "China drones", "alice")
        text = await export_config_toml(s, 4)
    data = tomllib.loads(text)
    settings = parse_settings(data, "<export>")
    assert [(f.name, f.url, f.interval_seconds, f.tags) for f in settings.feeds] == [
        ("Quote Feed", 'https://q.example/?a="1"&b=\\', 900, ('a"b',)),
        ("Shared", "https://shared.example/rss", None, ()),
    ]
    assert [(w.name, w.query, w.channel_id, w.role_id, w.enabled) for w in settings.watches] == [
        ("China drones", "@china drone", 124, None, False),
        ("Hostile", '"war machine" -"say hi" drone\\uav', 123, 9, True),
    ]
    assert settings.aliases == {"china": 'China OR "People\'s Republic"'}


async def test_sync_adds_updates_and_retires_config_rows_only(sdb: Database) -> None:
    first = Settings(
        feeds=(
            FeedConfig("Reuters", "https://reuters.example/rss", 600, ("world",)),
            FeedConfig("Old", "https://old.example/rss"),
        ),
        watches=(
            WatchConfig("NATO", "NATO communique", 10),
            WatchConfig("Gone", "fireworks", 11),
        ),
        aliases={"china": "China OR Beijing"},
    )
    async with sdb.session() as s:
        report = await sync_config(s, first)
        assert sorted(report.added) == [
            "alias:china",
            "feed:Old",
            "feed:Reuters",
            "watch:Gone",
            "watch:NATO",
        ]
        assert report.errors == []
        # Discord-made rows of a guild, and an edit of a config watch from Discord.
        await add_watch(s, 7, "Mine", "drone", 70, "alice")
        await set_alias(s, 7, "mine", "UAV", "alice")
        await pause_watch(s, 7, "NATO", "alice")
        old = (await s.scalars(select(Feed).where(Feed.name == "Old"))).one()
        await make_story(s, [old], "old story")
    second = Settings(
        feeds=(FeedConfig("Reuters", "https://reuters.example/world", None, ()),),
        watches=(WatchConfig("NATO", "NATO communique", 10),),
        aliases={},
    )
    async with sdb.session() as s:
        report = await sync_config(s, second)
    assert report.removed == ["alias:china"]
    assert sorted(report.retired) == ["feed:Old", "watch:Gone"]
    assert sorted(report.updated) == ["feed:Reuters", "watch:NATO"]
    async with sdb.session() as s:
        feeds = (await s.scalars(select(Feed).order_by(Feed.name))).all()
        assert [(f.name, f.url, f.interval_seconds, f.retired_at is None) for f in feeds] == [
            ("Old", "https://old.example/rss", None, False),
            ("Reuters", "https://reuters.example/world", None, True),
        ]
        watches = {w.name: w for w in await list_watches(s, 7)}
        assert watches["NATO"].enabled is True  # the file wins at start-up
        assert watches["Mine"].origin == "discord"
        aliases = (await s.scalars(select(Alias))).all()
        assert [(a.name, a.guild_id) for a in aliases] == [("mine", 7)]
        again = await sync_config(s, second)
        assert (again.added, again.updated, again.removed, again.retired) == ([], [], [], [])
        assert len((await s.scalars(select(Watch))).all()) == 3  # Gone: retired, kept
