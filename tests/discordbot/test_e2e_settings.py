"""End to end: /settings timezone and /settings show through discord.py and the emulator."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.discordbot.admin_harness import admin_bot, answered
from tests.discordbot.harness import GUILD, harness
from timeline.storage.models import GuildSettings
from timeline.usecases import settings as settings_svc


async def test_an_admin_sets_the_zone_and_show_says_where_it_comes_from(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="timeline.usecases.settings")
    async with harness(tmp_path) as h, admin_bot(h):
        before = await answered(h, await h.emu.invoke("settings show"))
        assert "`UTC`" in before and "config file's default" in before
        done = await h.emu.invoke("settings timezone", {"name": "Europe/Paris"})
        text = await answered(h, done)
        assert done.ephemeral
        assert "`Europe/Paris` (UTC+0" in text and "set by" in text
        after = await answered(h, await h.emu.invoke("settings show"))
        assert "`Europe/Paris`" in after
        async with h.db.session() as session:
            view = await settings_svc.show_settings(session, GUILD.id, "UTC")
    assert (view.timezone, view.origin) == ("Europe/Paris", "guild")
    # One line for the operator: who changed what.
    assert [r for r in caplog.records if "Europe/Paris" in r.getMessage()]


async def test_an_unknown_zone_is_refused_with_a_hint_and_nothing_stored(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        typo = await h.emu.invoke("settings timezone", {"name": "europe/paris"})
        text = await answered(h, typo)
        hostile = await h.emu.invoke("settings timezone", {"name": "../../../etc/passwd"})
        text2 = await answered(h, hostile)
        async with h.db.session() as session:
            row = await session.get(GuildSettings, GUILD.id)
    assert typo.ephemeral and "did you mean 'Europe/Paris'" in text
    assert "IANA time zone name" in text2
    assert row is None


async def test_autocomplete_suggests_iana_names(tmp_path: Path) -> None:
    async with harness(tmp_path) as h, admin_bot(h):
        choices = await h.emu.autocomplete("settings timezone", "name", "america/new")
    assert [c["value"] for c in choices] == ["America/New_York"]
