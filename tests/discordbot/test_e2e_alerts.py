"""End to end: outbox rows become Discord messages through the real discord.py client.

The bot talks to the in-repo Discord emulator (REST + gateway on 127.0.0.1), which enforces
nonces the way Discord does, so "posted twice" would be visible as two messages.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from discordbot import render
from tests.discord_emulator.records import server_error
from tests.discordbot.harness import ALERTS_CHANNEL, GENERAL_CHANNEL, harness
from tests.discordbot.outbox_seed import add_source, alert, alert_rows, event, watch
from tests.helpers import wait_until
from timeline.storage import outbox
from timeline.storage.models import utcnow

POST = "POST /channels/{channel_id}/messages"


async def test_alert_appears_in_the_watch_channel(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "NATO communique", ALERTS_CHANNEL)
        ev = await event(
            h.db,
            h.seed,
            "NATO Summit Draft Communique Calls Out China",
            summary="The draft communique names dual-use materials.",
        )
        alert_id = await alert(h.db, w, ev, ALERTS_CHANNEL, ["communique"])

        # The delivery loop started by setup_hook finds the row on its own.
        async with h.bot(deliver=True) as bot:
            msg = await h.emu.wait_for_message(ALERTS_CHANNEL)
            assert bot.delivery.running
            await h.emu.wait_for(lambda: h.emu.requests_to(POST)[-1].status == 200)

            async def marked_sent() -> bool:
                return [r.status for r in await alert_rows(h.db)] == ["sent"]

            # The message exists before the row says so: stopping in between would hand the
            # claim back (the nonce makes a resend safe), so wait for the commit.
            await wait_until(marked_sent, within=5, what="the alert row marked sent")

        (embed,) = msg.payload["embeds"]
        assert embed["title"] == "NATO Summit Draft Communique Calls Out China"
        assert embed["url"] == "https://bloomberg.example/a"
        assert "**communique**" in embed["description"]
        assert f"Event #{ev}" in embed["footer"]["text"]
        (row,) = await alert_rows(h.db)
        assert (row.id, row.status, row.message_id) == (alert_id, "sent", msg.id)
        assert h.emu.channel_messages(GENERAL_CHANNEL) == []


async def test_second_source_edits_alert(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "NATO communique", ALERTS_CHANNEL)
        ev = await event(h.db, h.seed, "NATO Summit Draft Communique")
        await alert(h.db, w, ev, ALERTS_CHANNEL)
        async with h.bot() as bot:
            await bot.delivery.drain()
            await add_source(h.db, h.seed, ev, "Reuters")
            report = await bot.delivery.drain()

        assert report.edited == 1 and report.messages == 0
        (msg,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert len(msg.history) == 1
        fields = {f["name"]: f["value"] for f in msg.payload["embeds"][0]["fields"]}
        assert fields["Sources"].startswith("[Bloomberg](") and "[Reuters](" in fields["Sources"]
        (row,) = await alert_rows(h.db)
        assert (row.message_id, row.dirty, row.claimed_until) == (msg.id, False, None)


async def test_two_server_errors_still_deliver_exactly_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        await alert(h.db, w, await event(h.db, h.seed, "story"), ALERTS_CHANNEL)
        rule = h.emu.inject_fault(POST, server_error(), times=2)
        async with h.bot() as bot:
            # discord.py retries a 500 itself (1 s, then 3 s): the same nonce each time.
            report = await bot.delivery.drain()

        assert rule.exhausted
        assert report.alerts_sent == 1
        assert len(h.emu.channel_messages(ALERTS_CHANNEL)) == 1
        posts = h.emu.requests_to(POST)
        assert [p.status for p in posts] == [500, 500, 200]
        assert len({p.body["nonce"] for p in posts}) == 1
        assert all(p.body["enforce_nonce"] is True for p in posts)


async def test_stopped_mid_burst_and_restarted_delivers_each_alert_once(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        ids = [
            await alert(h.db, w, await event(h.db, h.seed, f"story {n}"), ALERTS_CHANNEL)
            for n in range(8)
        ]
        async with h.bot(owner="first", burst_threshold=100) as bot:
            drain = asyncio.create_task(bot.delivery.drain())
            await h.emu.wait_for(lambda: len(h.emu.channel_messages(ALERTS_CHANNEL)) >= 3)
            drain.cancel()  # stopped with a request in flight
            await asyncio.gather(drain, return_exceptions=True)
            rows = await alert_rows(h.db)
            assert any(r.status == "sending" for r in rows)
        # Closing the bot handed the claims back (nonces kept), so no lease wait is needed.
        assert {r.status for r in await alert_rows(h.db) if r.message_id is None} == {"pending"}

        async with h.bot(owner="second", burst_threshold=100) as bot:
            await bot.delivery.drain()

        messages = h.emu.channel_messages(ALERTS_CHANNEL)
        rows = await alert_rows(h.db)
        assert [r.id for r in rows] == ids
        assert all(r.status == "sent" for r in rows)
        assert len(messages) == 8
        assert sorted(r.message_id for r in rows if r.message_id) == sorted(m.id for m in messages)
        titles = sorted(m.payload["embeds"][0]["title"] for m in messages)
        assert titles == sorted(f"story {n}" for n in range(8))


async def test_crash_after_post_before_mark_reuses_the_message(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        await alert(h.db, w, await event(h.db, h.seed, "story"), ALERTS_CHANNEL)
        async with h.bot() as bot:
            # A process claims the row and posts it, then dies before recording the message.
            (view,) = await outbox.claim_pending(h.db, "dead", lease_seconds=60)
            assert view.nonce is not None
            message = render.alert_message(view)
            channel = bot.get_partial_messageable(ALERTS_CHANNEL)
            posted = await channel.send(
                embed=message.embed, allowed_mentions=message.allowed_mentions, nonce=view.nonce
            )
            report = await bot.delivery.drain(now=utcnow() + timedelta(seconds=61))

        assert report.alerts_sent == 1
        assert h.emu.nonce_hits == 1
        assert [m.id for m in h.emu.channel_messages(ALERTS_CHANNEL)] == [posted.id]
        (row,) = await alert_rows(h.db)
        assert (row.status, row.message_id) == ("sent", posted.id)


async def test_everyone_and_role_mentions_in_title_ping_nobody(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        hostile = f"@everyone @here <@&{h.emu.guilds[0].roles[0].id}> <@900000000000001001>"
        ev = await event(h.db, h.seed, hostile, summary=hostile)
        await alert(h.db, w, ev, ALERTS_CHANNEL, ["everyone"])
        async with h.bot() as bot:
            await bot.delivery.drain()

        (msg,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert msg.payload["mention_everyone"] is False
        assert msg.payload["mention_roles"] == []
        assert msg.payload["mentions"] == []
        assert msg.allowed_mentions == {"parse": []}


async def test_watch_role_pings_only_that_role(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        admin_role = h.emu.guilds[0].roles[0].id
        watch_role = 900_000_000_000_000_777
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL, role_id=watch_role)
        ev = await event(h.db, h.seed, f"<@&{admin_role}> @everyone story")
        await alert(h.db, w, ev, ALERTS_CHANNEL)
        async with h.bot() as bot:
            await bot.delivery.drain()

        (msg,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert msg.payload["content"] == f"<@&{watch_role}>"
        assert msg.payload["mention_roles"] == [str(watch_role)]
        assert msg.payload["mention_everyone"] is False
