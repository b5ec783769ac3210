"""The bot the cogs plug into: cog discovery, command sync, the error handler, admin checks."""

from __future__ import annotations

import logging
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from discordbot.bot import cog_modules
from tests.discord_emulator.server import CommandNotPermitted
from tests.discord_emulator.specs import MemberSpec, RoleSpec
from tests.discordbot.harness import GUILD, harness

PROBE_COG = """
import discord
from discord import app_commands

from discordbot.checks import admin_only
from timeline.domain.errors import BadQuery, NotFound


@app_commands.command(name="probe", description="Fail in a chosen way")
async def probe(interaction: discord.Interaction, how: str) -> None:
    if how == "badquery":
        raise BadQuery("unbalanced quote", 12)
    if how == "notfound":
        raise NotFound("no watch named @everyone <@&900000000000000010>")
    if how == "deferred":
        await interaction.response.defer(ephemeral=True)
    if how == "ok":
        await interaction.response.send_message("fine", ephemeral=True)
        return
    raise RuntimeError("secret internals")


@app_commands.command(name="adminprobe", description="Admins only")
@admin_only()
async def adminprobe(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("admin ok", ephemeral=True)


async def setup(bot) -> None:
    bot.tree.add_command(probe)
    bot.tree.add_command(adminprobe)
"""


@pytest.fixture
def cogs_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "tb_probe_cogs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "probe.py").write_text(textwrap.dedent(PROBE_COG))
    (package / "helpers.py").write_text("VALUE = 1\n")  # no setup(): not an extension
    (package / "_private.py").write_text("raise RuntimeError('never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "tb_probe_cogs"


def test_cog_discovery_takes_modules_with_setup_only(cogs_package: str) -> None:
    assert cog_modules(cogs_package) == [f"{cogs_package}.probe"]
    assert cog_modules("tb_no_such_package") == []


async def test_cogs_load_commands_sync_to_the_configured_guild(
    tmp_path: Path, cogs_package: str
) -> None:
    async with harness(tmp_path) as h, h.bot(cogs=cogs_package) as bot:
        assert f"{cogs_package}.probe" in bot.extensions
        names = sorted(c["name"] for c in h.emu.commands(GUILD.id))
        assert names == ["adminprobe", "probe"]
        admin = next(c for c in h.emu.commands(GUILD.id) if c["name"] == "adminprobe")
        assert admin["default_member_permissions"] == str(1 << 5)
        assert admin.get("contexts") in (None, [0])
        assert bot.version and bot.db is h.db and bot.settings.discord.guild_ids == (GUILD.id,)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("badquery", "Bad query: unbalanced quote at column 12."),
        ("notfound", "no watch named @\u200beveryone <\u200b@&900000000000000010>"),
        ("boom", "Sorry, something went wrong on my side. The error was logged."),
        ("deferred", "Sorry, something went wrong on my side. The error was logged."),
    ],
)
async def test_errors_become_short_ephemeral_replies(
    tmp_path: Path,
    cogs_package: str,
    caplog: pytest.LogCaptureFixture,
    how: str,
    expected: str,
) -> None:
    async with harness(tmp_path) as h, h.bot(cogs=cogs_package):
        with caplog.at_level(logging.INFO, logger="discordbot.errors"):
            record = await h.emu.invoke("probe", {"how": how}, member="user")
            await h.emu.wait_for(lambda: record.text(), what="a reply")

    assert record.text() == expected
    assert all(m.ephemeral for m in record.messages())
    assert all(m.allowed_mentions == {"parse": []} for m in record.messages())
    tracebacks = [r for r in caplog.records if r.exc_info]
    if how in ("boom", "deferred"):
        assert len(tracebacks) == 1 and "secret internals" in str(tracebacks[0].exc_info)
        assert "secret" not in record.text()
    else:
        assert tracebacks == []


async def test_admin_command_refuses_non_admins_server_side(
    tmp_path: Path, cogs_package: str
) -> None:
    async with harness(tmp_path) as h, h.bot(cogs=cogs_package):
        with pytest.raises(CommandNotPermitted):
            await h.emu.invoke("adminprobe", member="user")
        # A server may re-enable the command for everyone: the bot still says no.
        refused = await h.emu.invoke("adminprobe", member="user", bypass_permissions=True)
        allowed = await h.emu.invoke("adminprobe", member="admin")
        await h.emu.wait_for(lambda: refused.text() and allowed.text())

    assert refused.text().startswith("Only server admins (Manage Server)")
    assert refused.ephemeral
    assert allowed.text() == "admin ok"


async def test_configured_admin_role_is_enough_without_manage_server(
    tmp_path: Path, cogs_package: str
) -> None:
    editors = RoleSpec(900_000_000_000_000_020, "Editors", permissions=0)
    guild = replace(
        GUILD,
        roles=[*GUILD.roles, editors],
        members=[*GUILD.members, MemberSpec(900_000_000_000_001_003, "editor", [editors.id])],
    )
    async with harness(tmp_path, guild, admin_role_id=editors.id) as h, h.bot(cogs=cogs_package):
        # Discord hides the command from the role (no Manage Server); a server override may
        # show it, and then the configured role is what lets the editor in.
        editor = await h.emu.invoke("adminprobe", member="editor", bypass_permissions=True)
        user = await h.emu.invoke("adminprobe", member="user", bypass_permissions=True)
        await h.emu.wait_for(lambda: editor.text() and user.text())

    assert editor.text() == "admin ok"
    assert user.text().startswith("Only server admins")
