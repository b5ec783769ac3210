"""End to end: `/timeline show` and `/timeline add` through discord.py and the emulator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.discord_emulator.drivers import DriverError
from tests.discordbot.harness import GENERAL_CHANNEL, harness
from tests.discordbot.member_harness import button, event_ids, make_watch, member_bot, story
from tests.discordbot.outbox_seed import T0
from timeline.storage.models import Feed, utcnow

TIMELINE = ("discordbot.cogs.timeline",)


async def test_25_matching_events_page_10_10_5_and_only_the_invoker_pages(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        ids = [
            await story(h.db, f"Drone strike report {i}", at=T0 + timedelta(hours=i))
            for i in range(25)
        ]
        await story(h.db, "Unrelated harvest festival", at=T0 + timedelta(hours=30))
        newest_first = ids[::-1]
        async with member_bot(h, TIMELINE):
            ix = await h.emu.invoke("timeline show", {"query": "drone"}, member="user")
            msg = await h.emu.wait_for_message(GENERAL_CHANNEL, lambda m: bool(m.embeds))
            assert ix.deferred and not ix.ephemeral
            assert event_ids(msg) == newest_first[:10]
            assert button(msg, "Previous")["disabled"] is True
            assert not button(msg, "Next").get("disabled")
            assert "Events 1–10 of 25 · page 1/3" in msg.embeds[0]["footer"]["text"]

            await h.emu.click(msg, "timeline:next", member="user")
            msg = await h.emu.wait_for_message(GENERAL_CHANNEL, lambda m: m.edit_count >= 2)
            assert event_ids(msg) == newest_first[10:20]
            assert not button(msg, "Previous").get("disabled")

            # Another member is refused privately and the page does not move.
            other = await h.emu.click(msg, "timeline:next", member="admin")
            assert other.ephemeral and "Only the person who ran" in other.text()
            assert event_ids(h.emu.message(msg.id)) == newest_first[10:20]

            await h.emu.click(msg, "timeline:next", member="user")
            msg = await h.emu.wait_for_message(GENERAL_CHANNEL, lambda m: m.edit_count >= 3)
            assert event_ids(msg) == newest_first[20:]
            assert button(msg, "Next")["disabled"] is True
            assert "Events 21–25 of 25 · page 3/3" in msg.embeds[0]["footer"]["text"]

            await h.emu.click(msg, "timeline:previous", member="user")
            msg = await h.emu.wait_for_message(GENERAL_CHANNEL, lambda m: m.edit_count >= 4)
            assert event_ids(msg) == newest_first[10:20]
        assert len(h.emu.channel_messages(GENERAL_CHANNEL)) == 1


async def test_buttons_are_disabled_when_the_view_times_out(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        for i in range(12):
            await story(h.db, f"Story {i}", at=T0 + timedelta(hours=i))
        async with member_bot(h, TIMELINE) as bot:
            cog = bot.get_cog("Timeline")
            cog.page_timeout = 0.2  # type: ignore[union-attr]
            await h.emu.invoke("timeline show", member="user")
            msg = await h.emu.wait_for_message(
                GENERAL_CHANNEL,
                lambda m: bool(m.buttons()) and all(b.get("disabled") for b in m.buttons()),
            )
            assert len(event_ids(msg)) == 10  # the page stays readable
            with pytest.raises(DriverError, match="disabled"):
                await h.emu.click(msg, "timeline:next", member="user")


async def test_filters_since_until_watch_and_source(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        nato = await make_watch(h.db, "NATO communique", "NATO communique")
        old = await story(h.db, "NATO old", at=utcnow() - timedelta(days=20), watches=[nato])
        recent = await story(
            h.db, "NATO recent", sources=("Reuters",), at=utcnow() - timedelta(days=2)
        )
        alerted = await story(
            h.db, "NATO alerted", at=utcnow() - timedelta(hours=5), watches=[nato]
        )
        # Another server's own story never shows here.
        await story(h.db, "NATO elsewhere", at=utcnow() - timedelta(hours=1), guild_id=999)
        async with member_bot(h, TIMELINE):
            cases = [
                ({"since": "7d"}, [alerted, recent]),
                ({"until": "10d"}, [old]),
                ({"watch": "nato communique"}, [alerted, old]),
                ({"source": "reuters.example"}, [recent]),
                ({"since": "3d", "source": "Bloomberg"}, [alerted]),
            ]
            for options, expected in cases:
                ix = await h.emu.invoke("timeline show", options, member="user")
                await h.emu.wait_for_interaction(
                    ix, lambda r: bool(r.original and r.original.embeds)
                )
                assert ix.original is not None
                assert event_ids(ix.original) == expected, options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"query": 'NATO "war'}, "Bad query: unbalanced quote at column 6"),
        ({"since": "last tuesday"}, "since: 'last tuesday' is not a time I understand"),
        ({"since": "1d", "until": "7d"}, "is after until"),
        ({"watch": "nope"}, "no watch named 'nope'"),
        ({"source": "nowhere.example"}, "no feed named 'nowhere.example'"),
    ],
)
async def test_bad_options_are_answered_privately(
    tmp_path: Path, options: dict[str, str], message: str
) -> None:
    async with harness(tmp_path) as h:
        await story(h.db, "NATO communique")
        async with member_bot(h, TIMELINE):
            ix = await h.emu.invoke("timeline show", options, member="user")
        assert ix.ephemeral and not ix.deferred
        assert message in ix.text()
        assert h.emu.channel_messages(GENERAL_CHANNEL) == []


async def test_empty_timeline_says_so(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        async with member_bot(h, TIMELINE):
            ix = await h.emu.invoke("timeline show", member="user")
            await h.emu.wait_for_interaction(
                ix, lambda r: bool(r.original and not r.original.loading)
            )
        assert "The timeline is empty." in ix.text()
        assert ix.original is not None and ix.original.buttons() == []


async def test_a_page_that_fails_later_tells_the_clicker_privately(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        for i in range(11):
            await story(
                h.db, f"Reuters story {i}", sources=("Reuters",), at=T0 + timedelta(hours=i)
            )
        async with member_bot(h, TIMELINE):
            await h.emu.invoke("timeline show", {"source": "Reuters"}, member="user")
            msg = await h.emu.wait_for_message(GENERAL_CHANNEL, lambda m: bool(m.embeds))
            async with h.db.session() as session:
                feed = (await session.scalars(select(Feed))).one()
                await session.delete(feed)
            ix = await h.emu.click(msg, "timeline:next", member="user")
            await h.emu.wait_for_interaction(ix, lambda r: bool(r.followups))
        assert "no feed named 'Reuters'" in ix.followups[0].content
        assert ix.followups[0].ephemeral
        assert len(event_ids(h.emu.message(msg.id))) == 10  # the page did not move


async def test_watch_and_source_options_autocomplete(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await make_watch(h.db, "NATO communique", "NATO")
        await make_watch(h.db, "Drones", "drone")
        await story(h.db, "x", sources=("Reuters", "Bloomberg"))
        async with member_bot(h, TIMELINE):
            watches = await h.emu.autocomplete("timeline show", "watch", "dro", member="user")
            feeds = await h.emu.autocomplete("timeline show", "source", "", member="user")
        assert [c["value"] for c in watches] == ["Drones"]
        assert sorted(c["value"] for c in feeds) == ["Bloomberg", "Reuters"]
