"""Scenario 8: the gateway connection drops; the bot resumes and keeps answering commands.

The real TimelineBot with the real cogs package, against the emulator: a command sent while the
connection is down is replayed on RESUME and answered; commands after it are answered too.
"""

from __future__ import annotations

from pathlib import Path

from discordbot.bot import TimelineBot
from tests.discordbot.harness import harness


async def test_bot_resumes_after_a_dropped_gateway_and_keeps_answering(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        bot = TimelineBot(h.settings(), h.db, deliver_alerts=False, guild_ready_timeout=0.05)
        async with h.emu.run_bot(bot):
            before = await h.emu.invoke("status", member="user")
            await h.emu.wait_for_interaction(
                before, lambda r: bool(r.original and r.original.embeds)
            )

            async with h.emu.gateway_outage():
                during = await h.emu.invoke("status", member="user", wait=False)
            await h.emu.wait_for_resume()
            await h.emu.wait_for_interaction(
                during, lambda r: bool(r.original and r.original.embeds)
            )

            after = await h.emu.invoke("timeline show", member="user")
            await h.emu.wait_for_interaction(after, lambda r: bool(r.original))
            assert h.emu.gateway.resumes, "the bot reconnected without RESUME"
