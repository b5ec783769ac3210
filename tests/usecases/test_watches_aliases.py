"""Watches and aliases: validation with the query language, isolation, test without saving."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.usecases.factories import NOW, make_feed, make_story
from timeline.domain.errors import BadQuery, Conflict, NotFound
from timeline.storage.engine import Database
from timeline.storage.models import Alert, Alias, Watch
from timeline.usecases.aliases import list_aliases, remove_alias, set_alias
from timeline.usecases.events import add_manual_event
from timeline.usecases.timeline import list_timeline
from timeline.usecases.watches import (
    add_watch,
    edit_watch,
    list_watches,
    pause_watch,
    remove_watch,
    resume_watch,
    test_watch,
    watch_names,
)

NATO = "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"


async def test_add_watch_validates_the_query_and_refuses_duplicates(sdb: Database) -> None:
    async with sdb.session() as s:
        view = await add_watch(s, 1, "NATO", "NATO communique", 100, "alice", role_id=200)
        assert (view.name, view.channel_id, view.role_id, view.origin) == (
            "NATO",
            100,
            200,
            "discord",
        )
        with pytest.raises(BadQuery) as info:
            await add_watch(s, 1, "broken", '"unbalanced', 100, "alice")
        assert info.value.column is not None
        with pytest.raises(BadQuery):
            await add_watch(s, 1, "alias", "@nosuchalias", 100, "alice")
        with pytest.raises(Conflict):
            await add_watch(s, 1, "nato", "NATO", 100, "alice")
        with pytest.raises(BadQuery):
            await add_watch(s, 1, "bad/name", "NATO", 100, "alice")
        with pytest.raises(BadQuery):
            await add_watch(s, 1, "neg", "NATO", -5, "alice")
        # Another guild may reuse the name: scopes are separate.
        await add_watch(s, 2, "NATO", "NATO", 300, "bob")
    async with sdb.session() as s:
        assert [w.name for w in await list_watches(s, 1)] == ["NATO"]
        assert (await list_watches(s, 2))[0].channel_id == 300
        assert await watch_names(s, 1, "na") == ["NATO"]
        assert await watch_names(s, 3, "") == []


async def test_edit_pause_resume_remove(sdb: Database) -> None:
    async with sdb.session() as s:
        await add_watch(s, 1, "Drones", "drone", 100, "alice", role_id=7)
        edited = await edit_watch(s, 1, "drones", "alice", query="drone OR UAV", channel_id=101)
        assert (edited.query, edited.channel_id, edited.role_id) == ("drone OR UAV", 101, 7)
        assert (await edit_watch(s, 1, "Drones", "alice", clear_role=True)).role_id is None
        with pytest.raises(BadQuery):
            await edit_watch(s, 1, "Drones", "alice")
        with pytest.raises(BadQuery):
            await edit_watch(s, 1, "Drones", "alice", query="(unclosed")
        assert (await pause_watch(s, 1, "Drones", "alice")).enabled is False
        assert (await resume_watch(s, 1, "Drones", "alice")).enabled is True
        with pytest.raises(NotFound):
            await pause_watch(s, 2, "Drones", "mallory")
        removed = await remove_watch(s, 1, "Drones", "alice")
        assert removed.retired_at is not None
        assert [(w.name, w.retired_at is not None) for w in await list_watches(s, 1)] == [
            ("Drones", True)
        ]
        with pytest.raises(Conflict, match="already retired"):
            await remove_watch(s, 1, "Drones", "alice")
        back = await add_watch(s, 1, "drones", "drone", 102, "alice")
        assert (back.id, back.retired_at, back.channel_id) == (removed.id, None, 102)


async def test_config_watches_can_be_paused_but_not_removed_from_a_guild(sdb: Database) -> None:
    async with sdb.session() as s:
        s.add(Watch(guild_id=0, name="Shared", query="NATO", channel_id=1, origin="config"))
        await s.flush()
        assert [w.name for w in await list_watches(s, 5)] == ["Shared"]
        assert (await pause_watch(s, 5, "shared", "alice")).enabled is False
        with pytest.raises(Conflict, match="config file"):
            await remove_watch(s, 5, "Shared", "alice")
        with pytest.raises(Conflict):
            await add_watch(s, 5, "shared", "x", 1, "alice")


async def test_aliases_expand_in_watches_and_cycles_are_refused(sdb: Database) -> None:
    async with sdb.session() as s:
        await set_alias(s, 1, "china", "China OR Chinese OR Beijing", "alice")
        await set_alias(s, 1, "east", "@china OR Russia", "alice")
        await add_watch(s, 1, "Eastern drones", "@east drone", 100, "alice")
        with pytest.raises(BadQuery, match="cycle"):
            await set_alias(s, 1, "china", "@east OR China", "alice")
        with pytest.raises(BadQuery):
            await set_alias(s, 1, "bad name!", "x", "alice")
        with pytest.raises(BadQuery):
            await set_alias(s, 1, "empty", "   ", "alice")
        with pytest.raises(BadQuery):
            await add_watch(s, 2, "other guild", "@china", 100, "bob")  # not its alias
        with pytest.raises(Conflict, match="Eastern drones"):
            await remove_alias(s, 1, "east", "alice")
        with pytest.raises(Conflict, match="@east"):
            await remove_alias(s, 1, "china", "alice")
        changed = await set_alias(s, 1, "@china", "China OR PRC", "alice")
        assert changed.query == "China OR PRC"
        assert [a.name for a in await list_aliases(s, 1)] == ["china", "east"]
        assert await list_aliases(s, 2) == []
        await remove_watch(s, 1, "Eastern drones", "alice")
        await remove_alias(s, 1, "east", "alice")
        with pytest.raises(NotFound):
            await remove_alias(s, 1, "east", "alice")
        assert await s.scalar(select(func.count(Alias.id))) == 1


async def test_config_aliases_are_shared_and_guarded(sdb: Database) -> None:
    async with sdb.session() as s:
        s.add(Alias(guild_id=0, name="china", query="China OR Beijing", origin="config"))
        await s.flush()
        await add_watch(s, 3, "China watch", "@china", 1, "alice")
        with pytest.raises(Conflict, match="config file"):
            await remove_alias(s, 3, "china", "alice")
        # A guild may shadow a config alias with its own value.
        await set_alias(s, 3, "china", "China OR PRC", "alice")
        assert [(a.query, a.guild_id) for a in await list_aliases(s, 3)] == [("China OR PRC", 3)]
        await remove_alias(s, 3, "china", "alice")  # falls back to the config one
        assert [a.guild_id for a in await list_aliases(s, 3)] == [0]


async def test_test_watch_counts_recent_matches_without_saving(sdb: Database) -> None:
    async with sdb.session() as s:
        bloomberg = await make_feed(s, "Bloomberg", "https://bloomberg.example/rss")
        mine = await make_feed(s, "Mine", "https://mine.example/rss", 1, "discord")
        theirs = await make_feed(s, "Theirs", "https://theirs.example/rss", 2, "discord")
        await make_story(s, [bloomberg], NATO, hours_ago=2)
        await make_story(s, [mine], "NATO communique on drones", hours_ago=30)
        await make_story(s, [theirs], "NATO communique leaked", hours_ago=3)
        await make_story(s, [bloomberg], "NATO communique, old", hours_ago=24 * 10)
        await make_story(s, [bloomberg], "Senator says communique", hours_ago=1)
    async with sdb.session() as s:
        result = await test_watch(s, 1, "NATO communique", 7, NOW)
        assert result.count == 2 and not result.capped
        assert [h.feed_name for h in result.first] == ["Bloomberg", "Mine"]
        assert result.first[0].terms
        assert (await test_watch(s, 1, "NATO communique", 30, NOW)).count == 3
        with pytest.raises(BadQuery):
            await test_watch(s, 1, "NATO (", 7, NOW)
        with pytest.raises(BadQuery):
            await test_watch(s, 1, "NATO", 0, NOW)
        assert await s.scalar(select(func.count(Watch.id))) == 0


async def test_timeline_query_uses_the_query_language(sdb: Database) -> None:
    async with sdb.session() as s:
        bloomberg = await make_feed(s, "Bloomberg", "https://bloomberg.example/rss")
        reuters = await make_feed(s, "Reuters", "https://reuters.example/rss")
        theirs = await make_feed(s, "Theirs", "https://theirs.example/rss", 2, "discord")
        nato = await make_story(s, [bloomberg, reuters], NATO, hours_ago=2)
        await make_story(s, [bloomberg], "Dual-use exports rise", hours_ago=5)
        await make_story(s, [theirs], "NATO communique leaked", hours_ago=3)

        manual = await add_manual_event(s, 1, NOW, "Briefing on the NATO communique", None, "al")
    async with sdb.session() as s:
        page = await list_timeline(s, 1, query="NATO communique")
        assert [e.id for e in page.events] == [manual.id, nato.id] and page.total == 2
        assert [src.feed_name for src in page.events[1].sources] == ["Bloomberg", "Reuters"]
        assert (await list_timeline(s, 1, query='"NATO communique"')).total == 1  # manual only
        assert (await list_timeline(s, 1, query="dual-use")).total == 1
        assert (await list_timeline(s, 1, query="source:reuters")).total == 1
        assert (await list_timeline(s, 1, query="NATO", source="bloomberg")).total == 1
        with pytest.raises(BadQuery):
            await list_timeline(s, 1, query="NATO NEAR/")


async def test_removing_a_watch_keeps_what_it_posted_and_drops_what_it_had_not(
    sdb: Database,
) -> None:
    """Issue 19: no ordinary action erases the record. A removed watch keeps the alert rows
    of what it posted (so a re-added watch does not post those events again); the alerts it
    had queued are dropped, so it posts nothing after its removal."""
    async with sdb.session() as s:
        feed = await make_feed(s, "Wire", "https://wire.example/rss", guild_id=1, origin="discord")
        posted = await make_story(s, [feed], "Posted story", hours_ago=2)
        queued = await make_story(s, [feed], "Queued story", hours_ago=1)
        view = await add_watch(s, 1, "Stories", "story", 100, "alice")
        s.add(
            Alert(
                watch_id=view.id, event_id=posted.id, channel_id=100, status="sent", message_id=555
            )
        )
        s.add(Alert(watch_id=view.id, event_id=queued.id, channel_id=100, status="pending"))
    async with sdb.session() as s:
        await remove_watch(s, 1, "Stories", "alice")
    async with sdb.session() as s:
        rows = (await s.execute(select(Alert.event_id, Alert.status))).all()
        assert [tuple(r) for r in rows] == [(posted.id, "sent")]
        timeline = await list_timeline(s, 1)
        assert {e.id: e.watches for e in timeline.events}[posted.id] == ["Stories"]
        back = await add_watch(s, 1, "Stories", "story", 100, "alice")
        assert back.id == view.id
        assert await s.scalar(select(func.count(Alert.id))) == 1
