"""End to end: /alias and /config export through the real discord.py client and the emulator."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.discord_emulator.specs import AttachmentSpec
from tests.discordbot.admin_harness import admin_bot, answered
from tests.discordbot.harness import ALERTS_CHANNEL, GUILD, Harness, harness
from timeline.app.config import parse_settings
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import aliases as alias_svc
from timeline.usecases import watches as watch_svc


async def aliases(h: Harness) -> dict[str, str]:
    async with h.db.session() as session:
        return {a.name: a.query for a in await alias_svc.list_aliases(session, GUILD.id)}


async def test_alias_set_list_remove_and_the_watches_that_use_it(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        china = await h.emu.invoke("alias set", {"name": "@china", "query": "China OR Chinese"})
        assert await answered(h, china) == "Set **@china** = `China OR Chinese`"
        watch = await h.emu.invoke(
            "watch add", {"name": "china drones", "query": "@china AND drone", "channel": "alerts"}
        )
        assert "Added watch" in await answered(h, watch)

        cycle = await h.emu.invoke("alias set", {"name": "beijing", "query": "@china OR @beijing"})
        assert "alias cycle: @beijing -> @beijing" in await answered(h, cycle)
        bad_name = await h.emu.invoke("alias set", {"name": "no spaces", "query": "x"})
        assert "must be 1-50 letters" in await answered(h, bad_name)
        # Changing the alias must leave every watch that uses it parseable.
        broken = await h.emu.invoke("alias set", {"name": "china", "query": '"China'})
        assert (await answered(h, broken)).startswith("Bad query: ")

        used = await h.emu.invoke("alias remove", {"name": "china"})
        assert "still used by watch 'china drones'" in await answered(h, used)
        listing = await h.emu.invoke("alias list")
        assert "**@china** = `China OR Chinese`" in await answered(h, listing)

        await answered(h, await h.emu.invoke("watch remove", {"name": "china drones"}))
        removed = await h.emu.invoke("alias remove", {"name": "@china"})
        assert await answered(h, removed) == "Removed alias **@china**."
        empty = await h.emu.invoke("alias list")
        assert "No aliases yet" in await answered(h, empty)
        assert await aliases(h) == {}


async def test_config_export_is_a_file_the_config_loader_accepts(tmp_path: Path) -> None:
    opml = AttachmentSpec(
        "feeds.opml",
        b'<opml version="2.0"><body><outline text="Wire" xmlUrl="https://wire.example/rss"'
        b' category="World,Europe"/></body></opml>',
    )
    async with harness(tmp_path) as h, admin_bot(h):
        async with h.db.session() as session:
            # A config-file watch (guild 0) is part of what this guild sees.
            await watch_svc.add_watch(
                session, GLOBAL_SCOPE, "from file", "NATO", 1, "config", origin="config"
            )
        steps = [
            h.emu.invoke("alias set", {"name": "nato", "query": 'NATO OR "North Atlantic"'}),
            h.emu.invoke("feed import", {"file": opml}),
            h.emu.invoke(
                "watch add",
                {"name": "NATO summit.draft", "query": "@nato AND communique", "channel": "alerts"},
            ),
            h.emu.invoke("watch pause", {"name": "NATO summit.draft"}),
        ]
        for step in steps:
            done = await answered(h, await step)
            assert not done.startswith(("Bad query", "Sorry", "no ")), done
        export = await h.emu.invoke("config export")
        text = await answered(h, export)

    assert export.ephemeral and "config file format" in text
    assert export.original is not None
    (attachment,) = export.original.attachments
    assert attachment.filename == "timeline-config.toml"
    settings = parse_settings(tomllib.loads(attachment.data.decode("utf-8")), "export.toml")
    assert settings.aliases == {"nato": 'NATO OR "North Atlantic"'}
    assert [(f.name, f.url, f.tags) for f in settings.feeds] == [
        ("Wire", "https://wire.example/rss", ("World", "Europe"))
    ]
    by_name = {w.name: w for w in settings.watches}
    assert sorted(by_name) == ["NATO summit.draft", "from file"]
    draft = by_name["NATO summit.draft"]
    assert (draft.query, draft.channel_id, draft.enabled) == (
        "@nato AND communique",
        ALERTS_CHANNEL,
        False,
    )
