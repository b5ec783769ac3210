"""Outbox delivery against the Discord emulator: digests, failures, retries, edits, schedule."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from discordbot.delivery import owner_is_dead
from tests.discord_emulator.records import Fault, missing_permissions, unknown_message
from tests.discordbot.harness import ALERTS_CHANNEL, GENERAL_CHANNEL, harness
from tests.discordbot.outbox_seed import T0, add_source, alert, alert_rows, event, watch
from timeline.storage import outbox
from timeline.storage.models import utcnow

POST = "POST /channels/{channel_id}/messages"
PATCH = "PATCH /channels/{channel_id}/messages/{message_id}"
UNAVAILABLE = Fault(503, {"message": "503: Service Unavailable", "code": 0})


async def test_burst_becomes_one_digest_and_a_calm_channel_does_not(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        busy = await watch(h.db, h.seed, "NATO communique", ALERTS_CHANNEL, role_id=4242)
        calm = await watch(h.db, h.seed, "dual-use", GENERAL_CHANNEL)
        for n in range(7):
            await alert(h.db, busy, await event(h.db, h.seed, f"burst {n}"), ALERTS_CHANNEL)
        await alert(h.db, calm, await event(h.db, h.seed, "calm"), GENERAL_CHANNEL)
        async with h.bot(burst_threshold=5) as bot:
            report = await bot.delivery.drain()

        assert (report.messages, report.digests, report.alerts_sent) == (2, 1, 8)
        (digest,) = h.emu.channel_messages(ALERTS_CHANNEL)
        embed = digest.payload["embeds"][0]
        assert embed["title"] == "7 new stories"
        assert all(f"burst {n}" in embed["description"] for n in range(7))
        assert digest.payload["mention_roles"] == ["4242"]
        rows = await alert_rows(h.db)
        assert {r.message_id for r in rows if r.channel_id == ALERTS_CHANNEL} == {digest.id}
        (single,) = h.emu.channel_messages(GENERAL_CHANNEL)
        assert single.payload["embeds"][0]["title"] == "calm"


async def test_digest_is_edited_when_one_of_its_events_gains_a_source(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        events = [await event(h.db, h.seed, f"burst {n}") for n in range(3)]
        for ev in events:
            await alert(h.db, w, ev, ALERTS_CHANNEL)
        async with h.bot(burst_threshold=2) as bot:
            await bot.delivery.drain()
            await add_source(h.db, h.seed, events[1], "Reuters")
            report = await bot.delivery.drain()

        assert report.edited == 1
        (digest,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert len(digest.history) == 1
        assert "Bloomberg, Reuters" in digest.payload["embeds"][0]["description"]
        assert digest.payload["embeds"][0]["title"] == "3 new stories"


async def test_gone_channel_fails_alerts_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = 900_000_000_000_000_999
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "orphan", gone)
        for n in range(3):
            await alert(h.db, w, await event(h.db, h.seed, f"s{n}"), gone)
        async with h.bot() as bot:
            with caplog.at_level(logging.WARNING, logger="discordbot.delivery"):
                report = await bot.delivery.drain()
                again = await bot.delivery.drain(now=utcnow() + timedelta(days=1))

        assert report.failed == 3 and again.claimed == 0
        rows = await alert_rows(h.db)
        assert {r.status for r in rows} == {"failed"}
        assert all("not found (404 10003" in (r.last_error or "") for r in rows)
        warnings = [r for r in caplog.records if r.name == "discordbot.delivery"]
        assert len(warnings) == 1 and str(gone) in warnings[0].getMessage()
        stats = await outbox.outbox_stats(h.db)
        assert stats.failed == 3


async def test_missing_permission_fails_the_alert_with_the_reason(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        await alert(h.db, w, await event(h.db, h.seed, "s"), ALERTS_CHANNEL)
        h.emu.inject_fault(POST, missing_permissions())
        async with h.bot() as bot:
            await bot.delivery.drain()

        (failed,) = await outbox.failed_alerts(h.db)
        assert failed.reason and "no permission" in failed.reason and "50013" in failed.reason
        assert h.emu.channel_messages(ALERTS_CHANNEL) == []


async def test_unavailable_discord_is_retried_with_backoff_then_posted_once(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        await alert(h.db, w, await event(h.db, h.seed, "s"), ALERTS_CHANNEL)
        h.emu.inject_fault(POST, UNAVAILABLE, times=2)
        async with h.bot(retry_base_seconds=10) as bot:
            first = await bot.delivery.drain(now=T0)
            too_soon = await bot.delivery.drain(now=T0 + timedelta(seconds=9))
            second = await bot.delivery.drain(now=T0 + timedelta(seconds=10))
            (row,) = await alert_rows(h.db)
            # The second failure doubles the wait.
            assert row.next_attempt_at == T0 + timedelta(seconds=30)
            third = await bot.delivery.drain(now=T0 + timedelta(seconds=30))

        assert (first.retried, too_soon.claimed, second.retried, third.alerts_sent) == (1, 0, 1, 1)
        assert len(h.emu.channel_messages(ALERTS_CHANNEL)) == 1
        (row,) = await alert_rows(h.db)
        assert (row.status, row.attempts) == ("sent", 2)
        assert len({p.body["nonce"] for p in h.emu.requests_to(POST)}) == 1


async def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        await alert(h.db, w, await event(h.db, h.seed, "s"), ALERTS_CHANNEL)
        h.emu.inject_fault(POST, UNAVAILABLE, times=2)
        async with h.bot(max_attempts=2, retry_base_seconds=1) as bot:
            await bot.delivery.drain(now=T0)
            await bot.delivery.drain(now=T0 + timedelta(seconds=1))

        (row,) = await alert_rows(h.db)
        assert row.status == "failed"
        assert row.last_error and row.last_error.startswith("gave up after 2 attempts: Discord 503")


async def test_edit_of_a_deleted_message_is_dropped(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        ev = await event(h.db, h.seed, "s")
        await alert(h.db, w, ev, ALERTS_CHANNEL)
        async with h.bot() as bot:
            await bot.delivery.drain()
            await add_source(h.db, h.seed, ev, "Reuters")
            h.emu.inject_fault(PATCH, unknown_message())
            report = await bot.delivery.drain()
            after = await bot.delivery.drain(now=utcnow() + timedelta(hours=1))

        assert (report.edited, after.edited) == (0, 0)
        (row,) = await alert_rows(h.db)
        assert (row.status, row.dirty, row.claimed_until) == ("sent", False, None)


async def test_edit_during_outage_is_deferred_then_done(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        ev = await event(h.db, h.seed, "s")
        await alert(h.db, w, ev, ALERTS_CHANNEL)
        async with h.bot(retry_base_seconds=1) as bot:
            await bot.delivery.drain(now=T0)
            await add_source(h.db, h.seed, ev, "Reuters")
            h.emu.inject_fault(PATCH, UNAVAILABLE)
            failed = await bot.delivery.drain(now=T0)
            early = await bot.delivery.drain(now=T0 + timedelta(seconds=3))
            done = await bot.delivery.drain(now=T0 + timedelta(seconds=5))

        assert (failed.edited, early.edited, done.edited) == (0, 0, 1)
        (msg,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert "[Reuters](" in msg.payload["embeds"][0]["fields"][0]["value"]


async def test_delivery_loop_wakes_on_notify(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        # A long interval: only notify() can make the loop look again in time.
        async with h.bot(deliver=True, delivery_interval_seconds=3600) as bot:
            await h.emu.wait_for(lambda: h.emu.requests_to("PUT /applications/*/guilds/*/commands"))
            await alert(h.db, w, await event(h.db, h.seed, "late story"), ALERTS_CHANNEL)
            bot.delivery.notify()
            msg = await h.emu.wait_for_message(ALERTS_CHANNEL)
        assert msg.payload["embeds"][0]["title"] == "late story"
        assert not bot.delivery.running


async def test_scheduled_digest_lists_the_days_events_per_watch(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w1 = await watch(h.db, h.seed, "NATO communique", ALERTS_CHANNEL)
        w2 = await watch(h.db, h.seed, "dual-use", ALERTS_CHANNEL)
        ev = await event(h.db, h.seed, "Summit communique", occurred_at=T0)
        old = await event(h.db, h.seed, "old news", occurred_at=T0 - timedelta(days=3))
        await alert(h.db, w1, ev, ALERTS_CHANNEL)
        await alert(h.db, w2, ev, ALERTS_CHANNEL)
        await alert(h.db, w1, old, ALERTS_CHANNEL)
        async with h.bot(digest_cron={ALERTS_CHANNEL: "0 8 * * *"}) as bot:
            assert bot.scheduler is not None
            (job,) = bot.scheduler.get_jobs()
            assert job.id == f"digest-{ALERTS_CHANNEL}"
            message_id = await bot.delivery.post_daily_digest(
                ALERTS_CHANNEL, now=T0 + timedelta(hours=1)
            )
            nothing = await bot.delivery.post_daily_digest(GENERAL_CHANNEL, now=T0)

        assert nothing is None
        (msg,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert msg.id == message_id
        fields = msg.payload["embeds"][0]["fields"]
        assert [f["name"] for f in fields] == ["NATO communique", "dual-use"]
        assert "Summit communique" in fields[0]["value"]
        assert "old news" not in fields[0]["value"]
        assert bot.scheduler is None


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process now
    return child.pid


def test_owner_is_dead_only_for_a_gone_process_of_this_host() -> None:
    host = socket.gethostname()[:60]
    gone = _gone_pid()
    assert owner_is_dead(f"{host}:{gone}:abcd1234")
    assert not owner_is_dead(f"{host}:{os.getpid()}:abcd1234")  # this process
    assert not owner_is_dead(f"{host}:1:abcd1234")  # alive (init), whoever owns it
    assert not owner_is_dead(f"other-{host}:{gone}:abcd1234")  # cannot check there
    assert not owner_is_dead(f"{host}:{gone}:x", host="elsewhere")
    for odd in ("first", "", f"{host}:", f"{host}:pid:x", f"{host}:-3:x", f"{host}:0:x"):
        assert not owner_is_dead(odd), odd


async def test_message_found_by_nonce_with_an_older_rendering_is_edited(tmp_path: Path) -> None:
    # A sender dies after Discord created its message but before recording it; the event grows
    # meanwhile. The next sender gets the old message back by nonce and must edit it.
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        ev = await event(h.db, h.seed, "summit communique")
        await alert(h.db, w, ev, ALERTS_CHANNEL)
        async with h.bot(owner="doomed") as bot:
            hold = h.emu.hold_message_creates()
            dying = asyncio.create_task(bot.delivery.drain())
            await hold.wait_held()
            dying.cancel()  # the process is gone: its claim stays, no mark_sent
            await asyncio.gather(dying, return_exceptions=True)
            hold.release()
        # Closing that bot handed its claim back, as the next start does for a killed process.
        await add_source(h.db, h.seed, ev, "Reuters")
        async with h.bot(owner="next") as bot:
            report = await bot.delivery.drain()

        assert (report.alerts_sent, report.edited, h.emu.nonce_hits) == (1, 1, 1)
        (msg,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert msg.edit_count == 1
        assert "[Reuters](" in msg.payload["embeds"][0]["fields"][0]["value"]
        (row,) = await alert_rows(h.db)
        assert (row.status, row.message_id, row.dirty, row.claimed_by) == (
            "sent",
            msg.id,
            False,
            None,
        )


async def test_delivery_start_hands_back_claims_of_a_dead_process(tmp_path: Path) -> None:
    dead = f"{socket.gethostname()[:60]}:{_gone_pid()}:deadbeef"
    async with harness(tmp_path) as h:
        w = await watch(h.db, h.seed, "w", ALERTS_CHANNEL)
        await alert(h.db, w, await event(h.db, h.seed, "left claimed"), ALERTS_CHANNEL)
        (claimed,) = await outbox.claim_pending(h.db, dead, lease_seconds=3600)
        # A long sweep interval: only the start-up hand-back can deliver it in time.
        async with h.bot(deliver=True, delivery_interval_seconds=3600):
            msg = await h.emu.wait_for_message(ALERTS_CHANNEL)
        assert msg.payload["embeds"][0]["title"] == "left claimed"
        assert msg.nonce == claimed.nonce
