"""End to end: /watch commands through the real discord.py client, the emulator and SQLite."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from tests.discord_emulator.server import CommandNotPermitted
from tests.discord_emulator.specs import ChannelSpec, MemberSpec, Perm, RoleSpec
from tests.discordbot.admin_harness import admin_bot, answered, poll_once
from tests.discordbot.harness import ALERTS_CHANNEL, GENERAL_CHANNEL, GUILD, harness
from tests.helpers import FeedServer, rss
from timeline.usecases import watches as watch_svc

NATO_TITLE = "NATO Summit Draft Communique Calls Out China for Supporting Russian War Machine"
NATO_SUMMARY = "The draft mentions dual-use military-civilian materials."
OLD_STORY = ("old-1", "Parliament passes budget", "A routine vote.")


async def watches(h: object) -> list[watch_svc.WatchView]:
    async with h.db.session() as session:  # type: ignore[attr-defined]
        return await watch_svc.list_watches(session, GUILD.id)


async def test_member_is_refused_admin_adds_watch_and_next_poll_alerts(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.bodies["/world.xml"] = rss(OLD_STORY, title="World News")
    async with harness(tmp_path) as h, admin_bot(h) as bot:
        added = await h.emu.invoke("feed add", {"url": feed_server.url("/world.xml")})
        assert "World News" in await answered(h, added)
        first = await poll_once(bot)  # the backlog is stored silently
        assert [o.outcome for o in first.outcomes] == ["ok"]

        options = {"name": "NATO communique", "query": "NATO communique", "channel": "alerts"}
        with pytest.raises(CommandNotPermitted):
            await h.emu.invoke("watch add", options, member="user")
        refused = await h.emu.invoke("watch add", options, member="user", bypass_permissions=True)
        assert (await answered(h, refused)).startswith("Only server admins (Manage Server)")
        assert refused.ephemeral
        assert await watches(h) == []

        ok = await h.emu.invoke("watch add", options, member="admin")
        text = await answered(h, ok)
        assert "Added watch **NATO communique**" in text and f"<#{ALERTS_CHANNEL}>" in text
        assert ok.ephemeral and ok.original is not None
        assert ok.original.allowed_mentions == {"parse": []}

        feed_server.bodies["/world.xml"] = rss(
            OLD_STORY, ("nato-1", NATO_TITLE, NATO_SUMMARY), title="World News"
        )
        second = await poll_once(bot)
        assert [len(o.alerts) for o in second.outcomes] == [1]
        bot.delivery.notify()
        report = await bot.delivery.drain()
        alert = await h.emu.wait_for_message(
            ALERTS_CHANNEL, lambda m: bool(m.embeds) and m.embeds[0]["title"] == NATO_TITLE
        )

    assert report.alerts_sent == 1
    fields = {f["name"]: f["value"] for f in alert.embeds[0]["fields"]}
    assert fields["Watch"] == "NATO communique"
    assert h.emu.channel_messages(GENERAL_CHANNEL) == []


async def test_invalid_query_gets_the_parser_message_and_saves_nothing(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        add = await h.emu.invoke(
            "watch add", {"name": "broken", "query": 'NATO AND "communique', "channel": "alerts"}
        )
        test = await h.emu.invoke("watch test", {"query": "NATO AND (China"})
        edit_missing = await h.emu.invoke("watch edit", {"name": "nope", "query": "x"})
        added = await answered(h, add)
        tested = await answered(h, test)
        missing = await answered(h, edit_missing)
        assert await watches(h) == []

    assert added.startswith("Bad query: ") and "at column " in added
    assert "quote" in added
    assert tested.startswith("Bad query: ") and "at column " in tested
    assert missing == "no watch named 'nope' on this server (see the watch list)"


async def test_watch_lifecycle_edit_pause_resume_remove(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        # No channel option: the current channel (#general) gets the alerts.
        add = await h.emu.invoke(
            "watch add",
            {"name": "dual-use", "query": "dual-use", "role": "Admin"},
            channel="general",
        )
        assert "Added watch **dual-use**" in await answered(h, add)
        (w,) = await watches(h)
        assert (w.channel_id, w.role_id, w.enabled) == (
            GENERAL_CHANNEL,
            GUILD.role("Admin").id,
            True,
        )
        assert w.created_by == f"admin ({GUILD.member('admin').id})"

        dup = await h.emu.invoke("watch add", {"name": "Dual-Use", "query": "x"})
        assert "already exists" in await answered(h, dup)

        edit = await h.emu.invoke(
            "watch edit",
            {
                "name": "dual-use",
                "query": "dual-use AND China",
                "channel": "alerts",
                "clear_role": True,
            },
        )
        assert "Changed watch" in await answered(h, edit)
        (w,) = await watches(h)
        assert (w.query, w.channel_id, w.role_id) == ("dual-use AND China", ALERTS_CHANNEL, None)

        nothing = await h.emu.invoke("watch edit", {"name": "dual-use"})
        assert "nothing to change" in await answered(h, nothing)

        pause = await h.emu.invoke("watch pause", {"name": "DUAL-USE"})
        assert "Paused watch **dual-use**" in await answered(h, pause)
        listing = await h.emu.invoke("watch list")
        listed = await answered(h, listing)
        assert "**paused**" in listed and "`dual-use AND China`" in listed
        assert listing.original is not None and listing.original.embeds[0]["title"] == "Watches (1)"

        resume = await h.emu.invoke("watch resume", {"name": "dual-use"})
        assert "Resumed" in await answered(h, resume)
        assert (await watches(h))[0].enabled is True

        remove = await h.emu.invoke("watch remove", {"name": "dual-use"})
        assert "Removed watch **dual-use**" in await answered(h, remove)
        again = await h.emu.invoke("watch remove", {"name": "dual-use"})
        assert "is already retired" in await answered(h, again)
        relisted = await h.emu.invoke("watch list")
        assert "**retired**" in await answered(h, relisted)
        (kept,) = await watches(h)
        assert kept.retired_at is not None
        back = await h.emu.invoke("watch add", {"name": "dual-use", "query": "dual-use"})
        assert "dual-use" in await answered(h, back)
        (revived,) = await watches(h)
        assert revived.id == kept.id and revived.retired_at is None


async def test_watch_refuses_everyone_role_and_non_text_current_channel(tmp_path: Path) -> None:
    voice = ChannelSpec(900_000_000_000_000_103, "voice", type=2)
    guild = replace(GUILD, channels=[*GUILD.channels, voice])
    async with harness(tmp_path, guild) as h, admin_bot(h):
        everyone = await h.emu.invoke(
            "watch add", {"name": "w", "query": "x", "channel": "alerts", "role": "@everyone"}
        )
        in_voice = await h.emu.invoke("watch add", {"name": "w", "query": "x"}, channel="voice")
        assert "cannot mention @\u200beveryone" in await answered(h, everyone)
        assert "pick one with the channel option" in await answered(h, in_voice)
        assert await watches(h) == []


async def test_watch_test_counts_matches_without_saving(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    hostile = ("evil", "NATO <b>@everyone</b> [click](javascript:alert(1))", "NATO")
    feed_server.bodies["/feed.xml"] = rss(
        OLD_STORY, ("nato-1", NATO_TITLE, NATO_SUMMARY), hostile, title="Wire"
    )
    async with harness(tmp_path) as h, admin_bot(h) as bot:
        added = await h.emu.invoke("feed add", {"url": feed_server.url("/feed.xml")})
        await answered(h, added)
        await poll_once(bot)
        hit = await h.emu.invoke("watch test", {"query": "NATO", "days": 3650})
        miss = await h.emu.invoke("watch test", {"query": "volcano", "days": 3650})
        one = await h.emu.invoke("watch test", {"query": "communique AND China", "days": 3650})
        hit_text, miss_text, one_text = [await answered(h, r) for r in (hit, miss, one)]
        assert await watches(h) == []

    assert hit.deferred and hit.ephemeral
    assert hit.original is not None
    embed = hit.original.embeds[0]
    assert embed["title"] == "2 stored entries of the last 3650 days match"
    assert "NATO Summit Draft Communique" in embed["description"]
    # Feed text cannot ping, and cannot end the link label early to link somewhere else.
    assert "@everyone" not in hit_text and "NATO @\u200beveryone" in hit_text
    assert (
        "[NATO @\u200beveryone \\[click\\](javascript:alert(1))](https://news.example/evil)"
        in hit_text
    )
    assert embed["footer"]["text"] == "Query: NATO"
    assert "0 stored entries" in miss_text and "Nothing stored matches it yet." in miss_text
    assert "1 stored entry of the last 3650 days match" in one_text


async def test_configured_admin_role_without_manage_server_may_add(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    editors = RoleSpec(900_000_000_000_000_020, "Editors", permissions=0)
    editor = MemberSpec(900_000_000_000_001_003, "editor", [editors.id])
    guild = replace(GUILD, roles=[*GUILD.roles, editors], members=[*GUILD.members, editor])
    async with harness(tmp_path, guild, admin_role_id=editors.id) as h, admin_bot(h):
        with caplog.at_level(logging.INFO, logger="timeline.usecases"):
            ok = await h.emu.invoke(
                "watch add",
                {"name": "drones", "query": "China Russia drone", "channel": "alerts"},
                member="editor",
                bypass_permissions=True,  # Discord hides it from the role; a server may show it
            )
            text = await answered(h, ok)
        assert [w.name for w in await watches(h)] == ["drones"]

    assert text.startswith("Added watch **drones**")
    logged = [r.getMessage() for r in caplog.records]
    assert f"watch 'drones' added by editor ({editor.id})" in logged


async def test_watch_add_says_when_alerts_could_not_post_or_ping(tmp_path: Path) -> None:
    # A server where @everyone (and so the bot) may neither embed links nor mention roles.
    bare = Perm.DEFAULT_EVERYONE & ~Perm.EMBED_LINKS & ~Perm.MENTION_EVERYONE
    async with harness(tmp_path, replace(GUILD, everyone_permissions=bare)) as h, admin_bot(h):
        add = await h.emu.invoke(
            "watch add", {"name": "w", "query": "x", "channel": "alerts", "role": "Admin"}
        )
        text = await answered(h, add)
        assert [w.name for w in await watches(h)] == ["w"]

    assert text.startswith("Added watch **w**")
    assert f"I cannot post there yet: give me Embed Links in <#{ALERTS_CHANNEL}>." in text
    assert f"<@&{GUILD.role('Admin').id}> is not mentionable by me" in text
    assert add.original is not None and add.original.allowed_mentions == {"parse": []}
