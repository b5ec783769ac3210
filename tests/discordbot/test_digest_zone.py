"""The scheduled digest runs in the zone of the guild that owns its channel."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from discordbot.bot import TimelineBot
from tests.discordbot.harness import ALERTS_CHANNEL, GENERAL_CHANNEL, GUILD, harness
from tests.discordbot.outbox_seed import T0, alert, event
from timeline.app.config import AlertSettings
from timeline.usecases import settings as settings_svc
from timeline.usecases import watches as watch_svc


async def test_digest_cron_and_heading_follow_the_guild_zone(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        async with h.db.session() as session:
            view = await watch_svc.add_watch(
                session, GUILD.id, "NATO", "NATO", ALERTS_CHANNEL, "alice"
            )
            await settings_svc.set_timezone(session, GUILD.id, "Asia/Kolkata", "alice", "UTC")
        ev = await event(h.db, h.seed, "Summit communique", occurred_at=T0)
        await alert(h.db, view.id, ev, ALERTS_CHANNEL)
        base = h.settings()
        # The config default covers channels no guild's watch alerts (here: general).
        settings = replace(
            base,
            discord=replace(base.discord, timezone="America/New_York"),
            alerts=AlertSettings(
                digest_cron={ALERTS_CHANNEL: "0 8 * * *", GENERAL_CHANNEL: "0 9 * * *"}
            ),
        )
        bot = TimelineBot(
            settings, h.db, deliver_alerts=False, cogs_package=None, guild_ready_timeout=0.05
        )
        async with h.emu.run_bot(bot):
            assert bot.scheduler is not None
            jobs = {job.id: job for job in bot.scheduler.get_jobs()}
            alerts_job = jobs[f"digest-{ALERTS_CHANNEL}"]
            general_job = jobs[f"digest-{GENERAL_CHANNEL}"]
            assert str(alerts_job.trigger.timezone) == "Asia/Kolkata"
            assert str(general_job.trigger.timezone) == "America/New_York"
            # 08:00 in Kolkata is 02:30 UTC.
            fire = alerts_job.trigger.get_next_fire_time(None, T0)
            assert (fire.hour, fire.minute, fire.utcoffset()) == (
                8,
                0,
                timedelta(hours=5, minutes=30),
            )
            await bot.delivery.post_daily_digest(ALERTS_CHANNEL, now=T0 + timedelta(hours=1))
            # A guild changing its zone moves the job without a restart.
            async with h.db.session() as session:
                await settings_svc.set_timezone(session, GUILD.id, "Europe/Paris", "bob", "UTC")
            await bot.reschedule_digests()
            moved = bot.scheduler.get_job(f"digest-{ALERTS_CHANNEL}")
            assert str(moved.trigger.timezone) == "Europe/Paris"
        (msg,) = h.emu.channel_messages(ALERTS_CHANNEL)
        # Since T0 - 23 h = 2024-07-08 13:00 UTC = 18:30 IST.
        assert msg.payload["embeds"][0]["title"] == "Timeline digest since 2024-07-08 18:30 IST"
