"""The admin cogs as Discord sees them: hidden, re-checked server side, described, autocompleted."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from discordbot.bot import TimelineBot, cog_modules
from discordbot.cogs._admin import code, lines_within, link, show
from tests.discord_emulator.specs import AttachmentSpec
from tests.discordbot.admin_harness import ADMIN_COGS, POLLING, admin_bot, answered
from tests.discordbot.harness import GUILD, harness
from timeline.storage.models import GLOBAL_SCOPE
from timeline.usecases import aliases as alias_svc
from timeline.usecases import feeds as feed_svc
from timeline.usecases import watches as watch_svc

ADMIN_GROUPS = {
    "alias": ["list", "remove", "set"],
    "config": ["export"],
    "feed": ["add", "export", "import", "list", "purge", "remove", "status"],
    "settings": ["show", "timezone"],
    "watch": [
        "add",
        "delivery",
        "edit",
        "list",
        "pause",
        "preview",
        "remove",
        "resume",
        "template",
        "test",
    ],
}
OTHER_GUILD = 900_000_000_000_009_999


def _example(option: dict[str, Any]) -> object:
    """A value a member could enter for a required option of this type."""
    kind = option["type"]
    if option.get("choices"):
        return option["choices"][0]["value"]
    if kind == 3:
        return "x"
    if kind == 4:
        return int(option.get("min_value") or 1)
    if kind == 7:
        return "alerts"
    if kind == 8:
        return "Admin"
    if kind == 11:
        return AttachmentSpec("f.opml", b"<opml/>")
    raise AssertionError(f"no example for option type {kind}")


async def test_admin_groups_are_hidden_guild_only_and_fully_described(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        synced = {c["name"]: c for c in h.emu.commands(GUILD.id)}

    assert sorted(synced) == sorted(ADMIN_GROUPS)
    for name, subs in ADMIN_GROUPS.items():
        group = synced[name]
        assert group["default_member_permissions"] == str(1 << 5), name  # Manage Server
        assert group.get("contexts") in (None, [0]), name
        assert sorted(o["name"] for o in group["options"]) == subs
        for sub in group["options"]:
            assert sub["description"] and sub["description"] != "…", (name, sub["name"])
            for option in sub.get("options") or []:
                assert option["description"] != "…", (name, sub["name"], option["name"])


async def test_every_admin_subcommand_refuses_a_member_server_side(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        records = {}
        for group in h.emu.commands(GUILD.id):
            for sub in group["options"]:
                required = {
                    o["name"]: _example(o) for o in sub.get("options") or [] if o.get("required")
                }
                path = f"{group['name']} {sub['name']}"
                records[path] = await h.emu.invoke(
                    path, required, member="user", bypass_permissions=True
                )
        texts = {path: await answered(h, r) for path, r in records.items()}
        async with h.db.session() as session:
            assert await watch_svc.list_watches(session, GUILD.id) == []
            assert await feed_svc.list_feeds(session, GUILD.id) == []
            assert await alias_svc.list_aliases(session, GUILD.id) == []

    assert len(texts) == sum(len(s) for s in ADMIN_GROUPS.values())
    for path, text in texts.items():
        assert text.startswith("Only server admins (Manage Server)"), path
        assert records[path].ephemeral, path
        original = records[path].original
        assert original is not None and original.attachments == [], path


async def test_autocomplete_offers_this_guilds_names_by_prefix(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        async with h.db.session() as s:
            for guild, name in (
                (GUILD.id, "NATO communique"),
                (GUILD.id, "dual-use"),
                (GUILD.id, "Nationals"),
                (GLOBAL_SCOPE, "NATO summit"),
                (OTHER_GUILD, "NATO secret elsewhere"),
            ):
                await watch_svc.add_watch(s, guild, name, "x", 1, "test")
                await feed_svc.add_feed(
                    s,
                    guild,
                    f"https://{guild}.example/{len(name)}/{name[:3]}",
                    name,
                    None,
                    "t",
                    None,
                )
            await alias_svc.set_alias(s, GUILD.id, "nato", "NATO", "test")
            await alias_svc.set_alias(s, GUILD.id, "china", "China", "test")
            await alias_svc.set_alias(s, OTHER_GUILD, "natoish", "x", "test")

        watch_choices = await h.emu.autocomplete("watch remove", "name", "na")
        feed_choices = await h.emu.autocomplete("feed status", "name", "NATO")
        alias_choices = await h.emu.autocomplete("alias remove", "name", "@na")
        everything = await h.emu.autocomplete("watch pause", "name", "")
        by_user = await h.emu.autocomplete("watch edit", "name", "du", member="user")

    # The order is the database's name order (collations differ); the set is what matters.
    values = sorted(c["value"] for c in watch_choices)
    assert values == ["NATO communique", "NATO summit", "Nationals"]
    assert sorted(c["value"] for c in feed_choices) == ["NATO communique", "NATO summit"]
    assert alias_choices == [{"name": "@nato", "value": "nato"}]
    assert sorted(c["value"] for c in everything) == [
        "NATO communique",
        "NATO summit",
        "Nationals",
        "dual-use",
    ]
    # Names are not secret (they appear in alerts); the commands themselves are admin-only.
    assert [c["value"] for c in by_user] == ["dual-use"]


def test_show_escapes_markdown_and_breaks_mentions() -> None:
    assert (
        show("**bold** @everyone <@&1>\nnext")
        == "\\*\\*bold\\*\\* @\u200beveryone <\u200b@&1> next"
    )
    assert show("x" * 500, 10) == "x" * 9 + "…"
    assert show(None) == ""


def test_code_span_cannot_be_closed_from_inside() -> None:
    assert code("a `b` c") == "`a ˋbˋ c`"
    assert code("") == "` `"
    assert code("q" * 50, 10) == "`" + "q" * 9 + "…`"


def test_link_keeps_unsafe_urls_and_brackets_out() -> None:
    assert link("a] (b", "https://x.example/p") == "[a\\] (b](https://x.example/p)"
    assert link("title", "javascript:alert(1)") == "title"
    assert link("title", None) == "title"


def test_lines_within_keeps_whole_lines_and_counts_the_rest() -> None:
    lines = [f"line {i:02d} " + "x" * 40 for i in range(10)]
    text = lines_within(lines, 200, more=" (see export)")
    kept = text.split("\n")
    assert len(text) <= 200
    assert kept[:-1] == lines[: len(kept) - 1]
    assert kept[-1] == f"…and {10 - len(kept) + 1} more (see export)"
    assert lines_within(lines[:2], 200) == "\n".join(lines[:2])
    assert lines_within([], 200) == ""


async def test_admin_groups_load_alongside_every_other_cog(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        settings = replace(h.settings(), polling=POLLING)
        bot = TimelineBot(settings, h.db, deliver_alerts=False, guild_ready_timeout=0.05)
        async with h.emu.run_bot(bot):
            names = {c["name"] for c in h.emu.commands(GUILD.id)}
            loaded = set(bot.extensions)
            added = await h.emu.invoke("alias set", {"name": "eu", "query": "EU OR Brussels"})
            text = await answered(h, added)
            fetcher = bot.fetcher  # type: ignore[attr-defined]
            assert fetcher is not None
        # Closing the bot unloads the feed cog, which closes the fetcher it opened.
        assert getattr(bot, "fetcher", None) is None

    assert set(ADMIN_GROUPS) <= names
    assert loaded == set(cog_modules()) and set(ADMIN_COGS) <= loaded
    assert text == "Set **@eu** = `EU OR Brussels`"


async def test_autocomplete_shows_nothing_rather_than_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def locked(*_args: object, **_kwargs: object) -> list[str]:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    async with harness(tmp_path) as h, admin_bot(h):
        monkeypatch.setattr(watch_svc, "watch_names", locked)
        with caplog.at_level(logging.ERROR, logger="discordbot.autocomplete"):
            choices = await h.emu.autocomplete("watch remove", "name", "n")

    assert choices == []
    assert "autocomplete _watch_names failed" in caplog.text
