"""Issue 18: alerts posted through a channel webhook the bot creates, with the watch's author
name and avatar, by the real discord.py client against the emulator. Same outbox, same
exactly-once rules, same edits when a source joins; the webhook token is never logged.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from discordbot import delivery as delivery_mod
from tests.discord_emulator.specs import ChannelSpec, Perm
from tests.discordbot.admin_harness import ADMIN_COGS, admin_bot, answered
from tests.discordbot.harness import ALERTS_CHANNEL, GUILD, Harness, harness
from tests.discordbot.outbox_seed import add_source, alert, alert_rows, event, watch
from timeline.app.config import load_settings
from timeline.cli.main import main
from timeline.storage import outbox
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Alert, ChannelWebhook, Watch, utcnow
from timeline.usecases.config_io import sync_config

AVATAR = "https://img.example/desk.png"
CREATE = "POST /channels/{channel_id}/webhooks"
EXECUTE = "POST /webhooks/{webhook_id}/{webhook_token}"
EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"


async def webhook_watch(h: Harness, name: str = "NATO desk") -> int:
    w = await watch(h.db, h.seed, name, ALERTS_CHANNEL)
    async with h.db.session() as session:
        await session.execute(
            update(Watch)
            .where(Watch.id == w)
            .values(delivery="webhook", webhook_name="NATO desk", webhook_avatar=AVATAR)
        )
    return w


def requests(h: Harness, route: str) -> int:
    method, template = route.split(" ", 1)
    return sum(
        1 for r in h.emu.requests if r.method == method and r.route == template and r.status < 300
    )


def tokens(h: Harness) -> list[str]:
    return [w.token for w in h.emu.webhooks.values()]


def assert_no_token_in(h: Harness, caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    assert tokens(h)
    logged = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records)
    for token in tokens(h):
        assert token not in logged
        assert all(token not in text for text in texts)


async def test_alert_is_posted_through_a_created_webhook_with_name_and_avatar_then_edited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with harness(tmp_path) as h:
        w = await webhook_watch(h)
        ev = await event(h.db, h.seed, "Draft NATO communique")
        await alert(h.db, w, ev, ALERTS_CHANNEL)
        await alert(h.db, w, await event(h.db, h.seed, "Second story"), ALERTS_CHANNEL)
        async with h.bot() as bot:
            report = await bot.delivery.drain()
            await add_source(h.db, h.seed, ev, "Reuters")
            edits = await bot.delivery.drain()

        assert (report.messages, report.failed, edits.edited) == (2, 0, 1)
        (hook,) = h.emu.channel_webhooks(ALERTS_CHANNEL)
        assert hook.name == delivery_mod.WEBHOOK_NAME
        assert requests(h, CREATE) == 1  # the second alert reused it
        first, second = h.emu.channel_messages(ALERTS_CHANNEL)
        assert first.payload["webhook_id"] == str(hook.id)
        assert first.payload["author"]["username"] == "NATO desk"
        assert first.avatar_url == AVATAR
        assert second.payload["embeds"][0]["title"] == "Second story"
        # The edit went through the webhook, to the right message.
        assert requests(h, EDIT) == 1 and len(first.history) == 1 and second.history == []
        assert "Reuters" in str(first.payload["embeds"][0])
        rows = await alert_rows(h.db)
        assert [r.message_id for r in rows] == [first.id, second.id]
        assert {r.webhook_id for r in rows} == {hook.id}
        assert {r.status for r in rows} == {"sent"}
        async with h.db.session() as session:
            stored = (await session.scalars(select(ChannelWebhook))).one()
        assert (stored.webhook_id, stored.token) == (hook.id, hook.token)
        assert hook.token not in repr(stored)
        h.emu.assert_clean()
    assert_no_token_in(h, caplog)


async def test_a_deleted_webhook_is_recreated_once_and_the_alert_posted(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        w = await webhook_watch(h)
        await alert(h.db, w, await event(h.db, h.seed, "one"), ALERTS_CHANNEL)
        async with h.bot() as bot:
            await bot.delivery.drain()
            (old,) = h.emu.channel_webhooks(ALERTS_CHANNEL)
            h.emu.delete_webhook(old.id)
            await alert(h.db, w, await event(h.db, h.seed, "two"), ALERTS_CHANNEL)
            report = await bot.delivery.drain()

        assert (report.messages, report.failed, report.retried) == (1, 0, 0)
        (new,) = h.emu.channel_webhooks(ALERTS_CHANNEL)
        assert new.id != old.id and requests(h, CREATE) == 2
        one, two = h.emu.channel_messages(ALERTS_CHANNEL)
        assert (one.payload["webhook_id"], two.payload["webhook_id"]) == (str(old.id), str(new.id))
        rows = await alert_rows(h.db)
        assert [r.webhook_id for r in rows] == [old.id, new.id]
        async with h.db.session() as session:
            stored = (await session.scalars(select(ChannelWebhook))).one()
        assert stored.webhook_id == new.id


async def test_missing_manage_webhooks_fails_the_alert_clearly_and_posts_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(tmp_path) as h:
        h.emu.bot_permissions &= ~Perm.MANAGE_WEBHOOKS
        w = await webhook_watch(h)
        await alert(h.db, w, await event(h.db, h.seed, "s"), ALERTS_CHANNEL)
        async with h.bot() as bot:
            with caplog.at_level(logging.WARNING, logger="discordbot.delivery"):
                report = await bot.delivery.drain()
                again = await bot.delivery.drain(now=utcnow() + timedelta(days=1))

        assert (report.failed, again.claimed) == (1, 0)
        (failed,) = await outbox.failed_alerts(h.db)
        assert failed.reason and "missing Manage Webhooks permission" in failed.reason
        assert "50013" in failed.reason
        (line,) = [r for r in caplog.records if "alert delivery failed" in r.getMessage()]
        assert "Manage Webhooks" in line.getMessage()
        assert h.emu.channel_messages(ALERTS_CHANNEL) == []
        assert requests(h, EXECUTE) == 0


async def test_crash_between_webhook_send_and_record_posts_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness(tmp_path) as h:
        w = await webhook_watch(h)
        ev = await event(h.db, h.seed, "Draft NATO communique")
        await alert(h.db, w, ev, ALERTS_CHANNEL)

        class Crash(BaseException):
            pass

        async def crash(*args: object, **kwargs: object) -> None:
            raise Crash  # the process dies right after Discord created the message

        async with h.bot(owner="crashed") as bot:
            with monkeypatch.context() as patch:
                patch.setattr(outbox, "mark_sent", crash)
                with pytest.raises(Crash):
                    await bot.delivery.drain()
        (row,) = await alert_rows(h.db)
        # Handed back at shutdown, as a dead process's claims are at the next start.
        assert (row.status, row.message_id) == ("pending", None) and row.webhook_id is not None
        (posted,) = h.emu.channel_messages(ALERTS_CHANNEL)

        # A source joined meanwhile; the next process takes over once the lease ran out.
        await add_source(h.db, h.seed, ev, "Reuters")
        async with h.bot(owner="next") as bot:
            later = utcnow() + timedelta(hours=1)
            report = await bot.delivery.drain(now=later)
            again = await bot.delivery.drain(now=later + timedelta(minutes=1))

        assert report.alerts_sent == 1 and again.claimed == 0
        assert h.emu.channel_messages(ALERTS_CHANNEL) == [posted]  # exactly one message
        assert requests(h, EXECUTE) == 1
        (row,) = await alert_rows(h.db)
        assert (row.status, row.message_id) == ("sent", posted.id)
        # The earlier message showed one source: it was edited through the webhook.
        assert "Reuters" in str(posted.payload["embeds"][0]) and requests(h, EDIT) == 1


async def test_watch_delivery_command_then_the_alert_uses_it_and_no_token_is_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cogs = (*ADMIN_COGS, "discordbot.cogs.status")
    async with harness(tmp_path) as h, admin_bot(h, extensions=cogs) as bot:
        w = await watch(h.db, h.seed, "desk", ALERTS_CHANNEL)
        async with h.db.session() as session:
            await session.execute(update(Watch).values(guild_id=GUILD.id, origin="discord"))
        bad = await h.emu.invoke(
            "watch delivery",
            {"name": "desk", "mode": "webhook", "avatar_url": "javascript:alert(1)"},
        )
        assert "avatar URL must be an http or https URL" in await answered(h, bad)
        ok = await h.emu.invoke(
            "watch delivery",
            {"name": "desk", "mode": "webhook", "webhook_name": "Desk", "avatar_url": AVATAR},
        )
        reply = await answered(h, ok)
        assert "now posts through the channel's webhook" in reply
        await alert(h.db, w, await event(h.db, h.seed, "s"), ALERTS_CHANNEL)
        await bot.delivery.drain()
        (posted,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert posted.payload["author"]["username"] == "Desk"
        status = await h.emu.invoke("status")
        status_text = await answered(h, status)
    assert_no_token_in(h, caplog, reply, status_text)


def test_watch_delivery_cli_twin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
    assert main(["--config", str(cfg), "db", "upgrade"]) == 0
    assert main(["--config", str(cfg), "watch", "add", "w", "NATO", "--channel", "1001"]) == 0
    capsys.readouterr()
    args = ["--config", str(cfg), "watch", "delivery", "w", "webhook"]
    assert main([*args, "--webhook-name", "Clyde news"]) == 1
    assert 'must not contain "clyde" or "discord"' in capsys.readouterr().err
    assert main([*args, "--webhook-name", "Desk", "--avatar-url", AVATAR]) == 0
    assert "now posts through the channel's webhook" in capsys.readouterr().out
    assert main(["--config", str(cfg), "watch", "delivery", "w", "channel"]) == 0
    assert "now posts as the bot" in capsys.readouterr().out


def test_bad_delivery_options_in_the_config_stop_the_start_with_exit_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n'
        '[[watches]]\nname = "w"\nquery = "NATO"\nchannel_id = 1001\n'
        'delivery = "carrier pigeon"\n'
        '[[watches]]\nname = "x"\nquery = "NATO"\nchannel_id = 1001\n'
        'delivery = "webhook"\nwebhook_avatar = "ftp://img.example/a.png"\n'
        '[[watches]]\nname = "y"\nquery = "NATO"\nchannel_id = 1001\nwebhook_name = "Desk"\n'
    )
    assert main(["--config", str(cfg), "config", "check"]) == 78
    err = capsys.readouterr().err
    assert "watches[0].delivery: must be one of channel, webhook" in err
    assert "watches[1].webhook_avatar: must be an http or https URL" in err
    assert 'watches[2].webhook_name: needs delivery = "webhook"' in err
    assert str(cfg) in err


async def test_config_watch_delivery_options_are_synced(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n'
        '[[watches]]\nname = "w"\nquery = "NATO"\nchannel_id = 1001\n'
        f'delivery = "webhook"\nwebhook_name = "Desk"\nwebhook_avatar = "{AVATAR}"\n'
    )
    assert main(["--config", str(cfg), "config", "check"]) == 0

    settings = load_settings(cfg)
    await upgrade_async(settings.database.url)
    db = Database(settings.database.url)
    try:
        async with db.session() as session:
            await sync_config(session, settings)
        async with db.session() as session:
            row = (await session.scalars(select(Watch))).one()
        assert (row.delivery, row.webhook_name, row.webhook_avatar) == ("webhook", "Desk", AVATAR)
    finally:
        await db.dispose()


async def thread_watch(h: Harness) -> int:
    w = await watch(h.db, h.seed, "thread desk", ALERTS_CHANNEL)
    async with h.db.session() as session:
        await session.execute(update(Watch).where(Watch.id == w).values(delivery="thread"))
    return w


async def test_thread_mode_starts_a_thread_per_event_and_replies_when_a_source_joins(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        w = await thread_watch(h)
        ev = await event(h.db, h.seed, "Draft NATO communique")
        await alert(h.db, w, ev, ALERTS_CHANNEL)
        async with h.bot() as bot:
            await bot.delivery.drain()
            (starter,) = h.emu.channel_messages(ALERTS_CHANNEL)
            assert set(h.emu.threads) == {starter.id}
            assert h.emu.threads[starter.id].name == "Draft NATO communique"
            await add_source(h.db, h.seed, ev, "Reuters")
            report = await bot.delivery.drain()
            # The edit lease is released; a replayed edit (same source count) posts no reply.
            async with h.db.session() as session:
                await session.execute(update(Alert).values(dirty=True))
            await bot.delivery.drain()

        assert report.edited == 1
        assert "Reuters" in str(starter.payload["embeds"][0]) and len(starter.history) == 2
        (reply,) = h.emu.thread_messages(starter.id)
        assert reply.content.startswith("**Reuters** also reports: Draft NATO communique")
        assert reply.payload["mentions"] == [] and reply.allowed_mentions == {"parse": []}
        assert h.emu.channel_messages(ALERTS_CHANNEL) == [starter]
        (row,) = await alert_rows(h.db)
        assert (row.status, row.message_id) == ("sent", starter.id)
        h.emu.assert_clean()


async def test_thread_mode_retry_after_a_crash_posts_one_message_and_one_thread(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        w = await thread_watch(h)
        await alert(h.db, w, await event(h.db, h.seed, "s"), ALERTS_CHANNEL)

        class Crash(BaseException):
            pass

        async def crash(*args: object, **kwargs: object) -> None:
            raise Crash

        async with h.bot(owner="crashed") as bot:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(outbox, "mark_sent", crash)
                with pytest.raises(Crash):
                    await bot.delivery.drain()
        async with h.bot(owner="next") as bot:
            report = await bot.delivery.drain(now=utcnow() + timedelta(hours=1))

        assert report.alerts_sent == 1
        (starter,) = h.emu.channel_messages(ALERTS_CHANNEL)
        assert set(h.emu.threads) == {starter.id}
        assert h.emu.nonce_hits == 1  # the retry got the first message back by its nonce
        (row,) = await alert_rows(h.db)
        assert (row.status, row.message_id) == ("sent", starter.id)


async def test_thread_mode_without_thread_permission_still_posts_the_alert_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(tmp_path) as h:
        h.emu.bot_permissions &= ~Perm.CREATE_PUBLIC_THREADS
        w = await thread_watch(h)
        await alert(h.db, w, await event(h.db, h.seed, "s"), ALERTS_CHANNEL)
        async with h.bot() as bot:
            with caplog.at_level(logging.WARNING, logger="discordbot.delivery"):
                report = await bot.delivery.drain()

        assert (report.alerts_sent, report.failed) == (1, 0)
        assert len(h.emu.channel_messages(ALERTS_CHANNEL)) == 1 and h.emu.threads == {}
        assert any("missing Create Public Threads" in r.getMessage() for r in caplog.records)


FORUM = ChannelSpec(900_000_000_000_000_150, "news-forum", type=15)
FORUM_GUILD = replace(GUILD, channels=(*GUILD.channels, FORUM))


async def forum_watch(h: Harness) -> int:
    w = await watch(h.db, h.seed, "forum desk", FORUM.id)
    async with h.db.session() as session:
        await session.execute(update(Watch).where(Watch.id == w).values(delivery="forum"))
    return w


async def test_forum_mode_opens_a_post_per_event_then_edits_and_replies(tmp_path: Path) -> None:
    async with harness(tmp_path, guild=FORUM_GUILD) as h:
        w = await forum_watch(h)
        ev = await event(h.db, h.seed, "Draft NATO communique")
        await alert(h.db, w, ev, FORUM.id)
        await alert(h.db, w, await event(h.db, h.seed, "Other story"), FORUM.id)
        async with h.bot() as bot:
            report = await bot.delivery.drain()
            await add_source(h.db, h.seed, ev, "Reuters")
            edits = await bot.delivery.drain()

        assert (report.messages, report.failed, edits.edited) == (2, 0, 1)
        assert sorted(t.name for t in h.emu.threads.values()) == [
            "Draft NATO communique",
            "Other story",
        ]
        post = next(t for t in h.emu.threads.values() if t.name == "Draft NATO communique")
        assert post.parent_id == FORUM.id
        first, reply = h.emu.thread_messages(post.id)
        assert first.id == post.id and len(first.history) == 1
        assert "Reuters" in str(first.payload["embeds"][0])
        assert reply.content.startswith("**Reuters** also reports:")
        rows = await alert_rows(h.db)
        assert rows[0].message_id == post.id and {r.status for r in rows} == {"sent"}
        h.emu.assert_clean()


async def test_forum_mode_retry_after_a_crash_finds_the_post_instead_of_a_second(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path, guild=FORUM_GUILD) as h:
        w = await forum_watch(h)
        await alert(h.db, w, await event(h.db, h.seed, "Draft NATO communique"), FORUM.id)

        class Crash(BaseException):
            pass

        async def crash(*args: object, **kwargs: object) -> None:
            raise Crash

        async with h.bot(owner="crashed") as bot:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(outbox, "mark_sent", crash)
                with pytest.raises(Crash):
                    await bot.delivery.drain()
        (post,) = h.emu.threads.values()
        async with h.bot(owner="next") as bot:
            report = await bot.delivery.drain(now=utcnow() + timedelta(hours=1))

        assert report.alerts_sent == 1
        assert list(h.emu.threads.values()) == [post]  # no second post
        assert requests(h, "POST /channels/{channel_id}/threads") == 1
        (row,) = await alert_rows(h.db)
        assert (row.status, row.message_id) == ("sent", post.id)
