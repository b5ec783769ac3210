"""Guild settings: the time zone a guild reads its timeline in, over the config default."""

from __future__ import annotations

import pytest

from timeline.domain.errors import BadQuery
from timeline.storage.engine import Database
from timeline.storage.models import GuildSettings
from timeline.usecases.settings import (
    channel_zone,
    check_timezone,
    guild_zone,
    set_timezone,
    show_settings,
    timezone_names,
)
from timeline.usecases.watches import add_watch


async def test_a_guild_uses_the_config_zone_until_it_sets_its_own(sdb: Database) -> None:
    async with sdb.session() as s:
        view = await show_settings(s, 7, "Europe/Paris")
        assert (view.timezone, view.origin) == ("Europe/Paris", "config")
        view = await set_timezone(s, 7, " America/New_York ", "alice (1)", "Europe/Paris")
        assert (view.timezone, view.origin, view.updated_by) == (
            "America/New_York",
            "guild",
            "alice (1)",
        )
        assert view.updated_at is not None and view.updated_at.utcoffset() is not None
    async with sdb.session() as s:
        assert str(await guild_zone(s, 7, "Europe/Paris")) == "America/New_York"
        # Another guild, and the config scope, still see the config default.
        assert str(await guild_zone(s, 8, "Europe/Paris")) == "Europe/Paris"
        assert str(await guild_zone(s, 0, "UTC")) == "UTC"
        view = await set_timezone(s, 7, "Asia/Tokyo", "bob (2)", "UTC")
        assert view.timezone == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Mars/Olympus", "unknown time zone"),
        ("europe/paris", "did you mean 'Europe/Paris'"),
        ("../../../etc/passwd", "IANA"),
        ("/etc/localtime", "IANA"),
        ("", "must not be empty"),
        ("x" * 65, "too long"),
        ("Europe/Paris; DROP TABLE x", "IANA"),
    ],
)
async def test_a_bad_zone_is_refused_and_nothing_is_stored(
    sdb: Database, name: str, says: str
) -> None:
    async with sdb.session() as s:
        with pytest.raises(BadQuery) as info:
            await set_timezone(s, 7, name, "alice", "UTC")
        assert says in info.value.message
        assert await s.get(GuildSettings, 7) is None


async def test_the_config_scope_takes_its_zone_from_the_file(sdb: Database) -> None:
    async with sdb.session() as s:
        with pytest.raises(BadQuery, match=r"\[discord\] timezone"):
            await set_timezone(s, 0, "Europe/Paris", "cli:root", "UTC")


async def test_a_stored_zone_zoneinfo_no_longer_knows_falls_back_to_the_default(
    sdb: Database, caplog: pytest.LogCaptureFixture
) -> None:
    async with sdb.session() as s:
        s.add(GuildSettings(guild_id=9, timezone="Europe/Kyiv_Old", updated_by="x"))
        await s.flush()
        view = await show_settings(s, 9, "Europe/Berlin")
    assert (view.timezone, view.origin) == ("Europe/Berlin", "config")
    assert "Europe/Kyiv_Old" in caplog.text


async def test_a_channel_reads_the_zone_of_the_guild_whose_watches_alert_it(
    sdb: Database,
) -> None:
    async with sdb.session() as s:
        await add_watch(s, 7, "NATO", "NATO", 555, "alice")
        await set_timezone(s, 7, "Asia/Kolkata", "alice", "UTC")
        assert str(await channel_zone(s, 555, "Europe/Paris")) == "Asia/Kolkata"
        assert str(await channel_zone(s, 556, "Europe/Paris")) == "Europe/Paris"


def test_autocomplete_offers_iana_names_by_prefix_then_substring() -> None:
    assert timezone_names("europe/pa") == ["Europe/Paris"]
    found = timezone_names("york")
    assert "America/New_York" in found
    assert len(timezone_names("")) == 25
    assert timezone_names("no such place") == []
    assert check_timezone("UTC") == "UTC"
