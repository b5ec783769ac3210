"""End to end: /feed purge through the real discord.py client, the emulator and SQLite.

Purging is the one way to delete a feed's history (config sync only retires): it is refused
for a feed still in the config file, asks with a confirmation button, and logs who did it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.discord_emulator.records import StoredMessage
from tests.discordbot.admin_harness import ADMIN_COGS, admin_bot, answered
from tests.discordbot.harness import GUILD, Harness, harness
from tests.usecases.factories import make_story
from timeline.storage.models import GLOBAL_SCOPE, Entry, Feed


async def edited(h: Harness, message: StoredMessage) -> StoredMessage:
    """Wait until the (ephemeral) message has no buttons left, and return it."""
    await h.emu.wait_for(lambda: not h.emu.message(message.id).components, what="the answer")
    return h.emu.message(message.id)


async def test_feed_purge_refuses_a_configured_feed_then_asks_and_deletes_a_retired_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="timeline.usecases.feeds")
    cogs = (*ADMIN_COGS, "discordbot.cogs.status")
    async with harness(tmp_path) as h, admin_bot(h, extensions=cogs):
        async with h.db.session() as s:
            old = Feed(guild_id=GLOBAL_SCOPE, name="Old wire", url="https://old.example/rss")
            s.add(old)
            await s.flush()
            await make_story(s, [old], "Port traffic report for June")
            await make_story(s, [old], "Grain exports rise")

        still_listed = await h.emu.invoke("feed purge", {"name": "Old wire"})
        refused = await answered(h, still_listed)
        assert still_listed.original is not None and still_listed.original.components == []

        async with h.db.session() as s:
            row = (await s.scalars(select(Feed))).one()
            row.retired_at = datetime.now(UTC)
        listed = await answered(h, await h.emu.invoke("feed list"))
        status = await answered(h, await h.emu.invoke("status", member="user"))
        asked = await h.emu.invoke("feed purge", {"name": "old wire"})
        question = await answered(h, asked)
        assert asked.original is not None and asked.ephemeral
        labels = [b["label"] for b in asked.original.buttons()]
        async with h.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(Entry)) == 2  # not yet
        confirm_id = next(
            b["custom_id"] for b in asked.original.buttons() if b["label"] != "Cancel"
        )
        await h.emu.click(asked.original, confirm_id)
        done = await edited(h, asked.original)
        async with h.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(Entry)) == 0
            assert await s.scalar(select(func.count()).select_from(Feed)) == 0

    assert "still in the config file: remove it from the config first" in refused
    assert (
        "**Old wire**" in listed
        and "**retired** (not polled; its stories stay on the timeline)" in listed
    )
    assert "Retired (not polled or alerting; history kept)" in status
    assert "feed **Old wire**" in status
    assert "2 stored entries" in question and "cannot be undone" in question
    assert labels == ["Delete for good", "Cancel"]
    assert done.content == "Purged **Old wire**: 2 stored entries and 2 events deleted."
    purged = [r for r in caplog.records if "purged by" in r.getMessage()]
    admin = GUILD.member("admin")
    assert len(purged) == 1 and f"({admin.id})" in purged[0].getMessage()
    assert getattr(purged[0], "actor", "") == f"{admin.name} ({admin.id})"
