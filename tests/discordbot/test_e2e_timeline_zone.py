"""End to end: /timeline show and /timeline add read days in the guild's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.discordbot.harness import GUILD, harness
from tests.discordbot.member_harness import event_ids, member_bot, story
from tests.discordbot.outbox_seed import T0
from timeline.storage.models import Event, Storyline
from timeline.usecases import settings as settings_svc


async def test_timeline_days_and_dates_follow_the_guild_zone(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        async with h.db.session() as session:
            await settings_svc.set_timezone(session, GUILD.id, "Europe/Paris", "admin", "UTC")
        noon = await story(h.db, "Noon story", at=T0)  # Tuesday 2024-07-09 14:00 in Paris
        late = await story(h.db, "Late story", at=T0 + timedelta(hours=11, minutes=30))
        async with member_bot(h, ("discordbot.cogs.timeline",)):
            everything = await h.emu.invoke("timeline show", member="user")
            await h.emu.wait_for_interaction(
                everything, lambda r: bool(r.original and r.original.embeds)
            )
            since = await h.emu.invoke("timeline show", {"since": "2024-07-10"}, member="user")
            await h.emu.wait_for_interaction(
                since, lambda r: bool(r.original and r.original.embeds)
            )
            added = await h.emu.invoke(
                "timeline add", {"date": "2024-07-10T09:15", "title": "Briefing"}, member="user"
            )
        assert everything.original is not None and since.original is not None
        (embed,) = everything.original.embeds
        description = embed["description"]
        # 23:30 UTC on the 9th is 01:30 on Wednesday the 10th in Paris.
        assert description.index("**Wednesday 2024-07-10**") < description.index("Late story")
        assert description.index("Late story") < description.index("**Tuesday 2024-07-09**")
        assert description.index("**Tuesday 2024-07-09**") < description.index("Noon story")
        assert "days in Europe/Paris" in embed["footer"]["text"]
        assert event_ids(since.original) == [late]
        assert noon not in event_ids(since.original)
        assert "Added event" in added.text()
        async with h.db.session() as session:
            briefing = await session.get(Event, 3)
        # A time without an offset is the guild's wall time: 09:15 CEST is 07:15 UTC.
        assert briefing is not None
        assert briefing.occurred_at == datetime(2024, 7, 10, 7, 15, tzinfo=UTC)


async def test_search_dates_are_days_in_the_guild_zone(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        async with h.db.session() as session:
            await settings_svc.set_timezone(session, GUILD.id, "Europe/Paris", "admin", "UTC")
        noon = await story(h.db, "Drone noon story", at=T0)  # 14:00 on the 9th in Paris
        late = await story(h.db, "Drone late story", at=T0 + timedelta(hours=11, minutes=30))
        async with member_bot(h, ("discordbot.cogs.search",)):
            since = await h.emu.invoke(
                "search", {"query": "drone", "since": "2024-07-10"}, member="user"
            )
            await h.emu.wait_for_interaction(
                since, lambda r: bool(r.original and r.original.embeds)
            )
            until = await h.emu.invoke(
                "search", {"query": "drone", "until": "2024-07-09"}, member="user"
            )
            await h.emu.wait_for_interaction(
                until, lambda r: bool(r.original and r.original.embeds)
            )
        assert since.original is not None and until.original is not None
        # 23:30 UTC on the 9th is 01:30 on the 10th in Paris: a story of the 10th there.
        assert event_ids(since.original) == [late]
        assert event_ids(until.original) == [noon]


async def test_story_chart_and_export_use_the_guild_zone(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        async with h.db.session() as session:
            await settings_svc.set_timezone(session, GUILD.id, "Europe/Paris", "admin", "UTC")
        ids = [
            await story(h.db, "Noon step", at=T0),  # 14:00 on the 9th in Paris
            await story(h.db, "Late step", at=T0 + timedelta(hours=11, minutes=30)),
        ]
        async with h.db.session() as session:
            row = Storyline(guild_id=0, title="Summit", created_at=T0, updated_at=T0)
            session.add(row)
            await session.flush()
            for event_id in ids:
                (await session.get(Event, event_id)).storyline_id = row.id  # type: ignore[union-attr]
            sid = row.id
        async with member_bot(h, ("discordbot.cogs.storylines",)):
            chart = await h.emu.invoke("story chart", {"story": sid}, member="user")
            await h.emu.wait_for_interaction(
                chart, lambda r: bool(r.original and r.original.attachments), timeout=20
            )
            export = await h.emu.invoke("story export", {"story": sid, "format": "md"})
        assert chart.original is not None and export.original is not None
        assert "per day (days in Europe/Paris)" in chart.original.content
        (attachment,) = export.original.attachments
        md = attachment.data.decode()
        # 23:30 UTC on the 9th is 01:30 on the 10th in Paris: its own day heading.
        assert md.index("## 2024-07-09") < md.index("Noon step") < md.index("## 2024-07-10")
        assert md.index("## 2024-07-10") < md.index("01:30 CEST") < md.index("Late step")
