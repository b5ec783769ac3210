"""Drain the alert outbox into Discord: post new alerts, edit grown ones, digest bursts.

Exactly-once from the team's point of view: rows are claimed with a lease and a stable nonce
before anything is sent (`timeline.storage.outbox`), messages are created with that nonce and
``enforce_nonce`` (discord.py 2.7 sets it whenever a nonce is given), so a retry after a
timeout, a 5xx or a crash gets Discord's original message back instead of posting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

import aiohttp
import discord

from discordbot import render
from timeline.app.config import AlertSettings
from timeline.storage import notices, outbox
from timeline.storage.engine import Database
from timeline.storage.models import utcnow
from timeline.storage.outbox import AlertView
from timeline.usecases.settings import channel_zone

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0


@dataclass
class DrainReport:
    """What one drain did."""

    claimed: int = 0
    messages: int = 0
    alerts_sent: int = 0
    digests: int = 0
    edited: int = 0
    retried: int = 0
    failed: int = 0
    notices: int = 0


def _host() -> str:
    return socket.gethostname()[:60]


def default_owner() -> str:
    """Name this process as a lease owner: host, pid and a random part."""
    return f"{_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str, *, host: str | None = None) -> bool:
    """Tell whether lease `owner` (`default_owner()` form) was a process of this host now gone.

    Only this host's processes can be checked (`os.kill(pid, 0)`); an owner on another host,
    in another form, or alive (or merely not ours to signal) is not dead. This process's own
    pid counts as alive, so several deliveries in one process never take each other's claims.
    """
    name, sep, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if not sep or name != (host if host is not None else _host()) or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        # EPERM: the pid exists, it belongs to someone else.
        return False
    return False


def _shown(message: discord.Message) -> tuple[object, ...]:
    # The text Discord echoes back as given: enough to tell one rendering from another.
    return (
        (message.content or "").strip(),
        tuple(_embed_text(e) for e in message.embeds),
    )


def _rendered(message: render.RenderedMessage) -> tuple[object, ...]:
    return ((message.content or "").strip(), (_embed_text(message.embed),))


def _embed_text(embed: discord.Embed) -> tuple[object, ...]:
    return (
        (embed.title or "").strip(),
        (embed.description or "").strip(),
        tuple(((f.name or "").strip(), (f.value or "").strip()) for f in embed.fields),
        (embed.footer.text or "").strip(),
    )


class _Transient(Exception):
    """A failure worth retrying later (5xx, timeout, connection trouble, rate limit)."""

    def __init__(self, message: str, *, unexpected: bool = False) -> None:
        super().__init__(message)
        self.unexpected = unexpected


class _Permanent(Exception):
    """A failure that retrying will not fix (channel gone, no permission, refused payload)."""


# The name of the webhook the bot creates in a channel (each watch sets its own author).
WEBHOOK_NAME = "Timeline Bot alerts"
# How many of a channel's latest messages a retried webhook send looks through for its own.
WEBHOOK_LOOKBACK = 50
UNKNOWN_WEBHOOK = 10015
THREAD_EXISTS = 160004
THREAD_NAME_LIMIT = 100


# Webhook tokens this process knows. A log record that would show one (discord.py's debug
# lines print webhook URLs and the webhooks Discord returns, the SQLite driver's print
# statement parameters) shows a mask instead; so does any `"token": "..."` pair.
_SECRETS: set[str] = set()
_TOKEN_PAIR = re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+""")
_base_record_factory = logging.getLogRecordFactory()


def _scrubbing_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_record_factory(*args, **kwargs)
    try:
        text = record.getMessage()
    except Exception:
        return record  # a broken format string: the logging machinery reports it
    clean = _TOKEN_PAIR.sub(r"\1<token>", text) if "token" in text else text
    for secret in _SECRETS:
        clean = clean.replace(secret, "<webhook token>")
    if clean != text:
        record.msg, record.args = clean, None
    return record


logging.setLogRecordFactory(_scrubbing_record_factory)


def _keep_secret(token: str) -> str:
    _SECRETS.add(token)
    return token


def _classify(exc: BaseException, channel_id: int) -> Exception:
    if isinstance(exc, discord.NotFound):
        return _Permanent(f"channel {channel_id} not found (404 {exc.code}: {exc.text})")
    if isinstance(exc, discord.Forbidden):
        return _Permanent(f"no permission in channel {channel_id} (403 {exc.code}: {exc.text})")
    if isinstance(exc, discord.HTTPException):
        if exc.status >= 500 or exc.status == 429:
            return _Transient(f"Discord {exc.status}: {exc.text or exc}")
        return _Permanent(f"Discord refused the message ({exc.status} {exc.code}: {exc.text})")
    if isinstance(exc, TimeoutError):
        return _Transient("timed out talking to Discord")
    if isinstance(exc, (discord.RateLimited, aiohttp.ClientError, OSError)):
        return _Transient(f"{type(exc).__name__}: {exc}")
    return _Transient(f"unexpected {type(exc).__name__}: {exc}", unexpected=True)


class AlertDelivery:
    """Own the outbox drain loop for one Discord client; `start()` it and `stop()` it."""

    def __init__(
        self,
        client: discord.Client,
        db: Database,
        settings: AlertSettings,
        *,
        owner: str | None = None,
        batch_size: int = 100,
        lease_seconds: float = 120.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.client = client
        self.db = db
        self.settings = settings
        self.owner = owner or default_owner()
        self.batch_size = batch_size
        # The lease must outlive a request and discord.py's own 5xx retries (1 + 3 + 5 ... s).
        self.lease_seconds = max(lease_seconds, request_timeout * 2)
        self.request_timeout = request_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reported_channels: set[int] = set()

    # -- loop ownership ------------------------------------------------------------------

    def notify(self) -> None:
        """Wake the loop now (ingest committed new alerts)."""
        self._wake.set()

    def start(self) -> None:
        """Start the drain loop; the caller owns it and must `stop()` it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"outbox-delivery:{self.owner}")

    async def stop(self) -> None:
        """Cancel the drain loop, wait for it, and hand back this owner's claims."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            released = await outbox.release_claims(self.db, self.owner)
        except Exception:
            # The leases run out on their own; a shutdown must not fail over this.
            log.exception("could not release outbox claims of %s", self.owner)
            return
        if released:
            log.info("released %d outbox claims of %s", released, self.owner)

    @property
    def running(self) -> bool:
        """Whether the drain loop is running."""
        return self._task is not None and not self._task.done()

    async def release_dead_claims(self) -> int:
        """Hand back the claims of this host's delivery processes that died; return how many."""
        try:
            released = await outbox.release_dead_claims(self.db, owner_is_dead)
        except Exception:
            # Their leases run out on their own; delivery must start anyway.
            log.exception("could not hand back the outbox claims of dead processes")
            return 0
        for owner, count in released.items():
            log.warning(
                "handed back %d outbox claims of %s: that process is gone (killed?)", count, owner
            )
        return sum(released.values())

    async def _run(self) -> None:
        interval = max(self.settings.delivery_interval_seconds, 0.1)
        # A predecessor killed mid-delivery left rows claimed: deliver them now, not when
        # their leases run out.
        await self.release_dead_claims()
        while True:
            # Cleared before draining so a notify() during the drain is not lost.
            self._wake.clear()
            busy = False
            try:
                report = await self.drain()
                busy = report.claimed >= self.batch_size
            except Exception:
                log.exception("outbox drain failed; retrying in %.0f s", interval)
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    # -- one drain -----------------------------------------------------------------------

    async def drain(self, now: datetime | None = None) -> DrainReport:
        """Claim and deliver one batch of due alerts, then one batch of pending edits."""
        now = now or utcnow()
        report = DrainReport()
        claimed = await outbox.claim_pending(
            self.db,
            self.owner,
            limit=self.batch_size,
            lease_seconds=self.lease_seconds,
            now=now,
            burst_threshold=self.settings.burst_threshold,
        )
        report.claimed = len(claimed)
        groups: dict[str, list[AlertView]] = {}
        for view in claimed:
            # Every claimed row has a nonce; rows sharing one are one message.
            groups.setdefault(view.nonce or f"id{view.id}", []).append(view)
        for group in groups.values():
            await self._deliver(group, report, now)

        edits = await outbox.claim_dirty(
            self.db, self.owner, limit=self.batch_size, lease_seconds=self.lease_seconds, now=now
        )
        by_message: dict[int, list[AlertView]] = {}
        for view in edits:
            if view.message_id is not None:
                by_message.setdefault(view.message_id, []).append(view)
        for group in by_message.values():
            await self._edit(group, report, now)
        await self._notices(report, now)
        if report.claimed or report.edited:
            log.info(
                "outbox drain: %d messages (%d alerts, %d digests), %d edits, %d retries, "
                "%d failed",
                report.messages,
                report.alerts_sent,
                report.digests,
                report.edited,
                report.retried,
                report.failed,
            )
        return report

    async def _notices(self, report: DrainReport, now: datetime) -> None:
        """Post the feed health notices to the ops channel, each once (see timeline.storage.notices)."""
        channel_id = self.settings.ops_channel_id
        if channel_id is None:
            return
        claimed = await notices.claim(
            self.db, self.owner, limit=self.batch_size, lease_seconds=self.lease_seconds, now=now
        )
        channel = self.client.get_partial_messageable(channel_id)
        for notice in claimed:
            message = render.notice_message(notice)
            try:
                async with asyncio.timeout(self.request_timeout):
                    sent = await channel.send(
                        embed=message.embed,
                        allowed_mentions=message.allowed_mentions,
                        nonce=notice.nonce,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = _classify(exc, channel_id)
                attempts = notice.attempts + 1
                if isinstance(problem, _Permanent) or attempts >= self.settings.max_attempts:
                    await notices.mark_failed(self.db, notice.id, str(problem))
                    log.warning(
                        "feed notice for %r could not be posted to channel %s: %s",
                        notice.feed_name,
                        channel_id,
                        problem,
                    )
                else:
                    delay = min(
                        self.settings.retry_base_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS
                    )
                    await notices.mark_retry(
                        self.db, notice.id, str(problem), now + timedelta(seconds=delay)
                    )
                continue
            await notices.mark_sent(self.db, notice.id, sent.id)
            report.notices += 1
            log.info(
                "feed %r %s: notice posted to channel %s", notice.feed_name, notice.kind, channel_id
            )

    def _render(self, group: Sequence[AlertView]) -> render.RenderedMessage:
        if group[0].is_digest:
            return render.digest_message(group)
        return render.alert_message(group[0], self.settings.snippet_chars)

    # -- channel webhooks ----------------------------------------------------------------

    async def _stored_webhook(self, channel_id: int) -> discord.Webhook | None:
        stored = await outbox.stored_webhook(self.db, channel_id)
        if stored is None:
            return None
        webhook_id, token = stored
        return discord.Webhook.partial(webhook_id, _keep_secret(token), client=self.client)

    async def _webhook(self, channel_id: int, *, renew: bool = False) -> discord.Webhook:
        """The channel's webhook the bot made: stored, else reused or created and stored.

        `renew`: the stored one is gone (404 Unknown Webhook); forget it and make another.
        """
        if renew:
            await outbox.forget_webhook(self.db, channel_id)
        else:
            stored = await self._stored_webhook(channel_id)
            if stored is not None:
                return stored
        channel = self.client.get_channel(channel_id)
        if channel is None:
            channel = await self.client.fetch_channel(channel_id)
        if not isinstance(channel, discord.TextChannel):
            raise _Permanent(f"channel {channel_id} is not a text channel: webhooks need one")
        me = self.client.user.id if self.client.user is not None else None
        try:
            ours = [
                w
                for w in await channel.webhooks()
                if w.token and w.user is not None and w.user.id == me and w.name == WEBHOOK_NAME
            ]
            webhook = ours[0] if ours else await channel.create_webhook(name=WEBHOOK_NAME)
        except discord.Forbidden as exc:
            raise _Permanent(
                f"missing Manage Webhooks permission in channel {channel_id} "
                f"(403 {exc.code}: {exc.text})"
            ) from None
        if webhook.token is None:
            raise _Permanent(f"Discord gave no token for the webhook of channel {channel_id}")
        _keep_secret(webhook.token)
        await outbox.store_webhook(self.db, channel_id, webhook.id, webhook.token)
        log.info("channel %s: using webhook %s for alerts", channel_id, webhook.id)
        return discord.Webhook.partial(webhook.id, webhook.token, client=self.client)

    async def _earlier_webhook_message(
        self, first: AlertView, message: render.RenderedMessage
    ) -> discord.Message | None:
        """The message an earlier attempt posted through webhook `first.webhook_id`, if any.

        Webhook messages take no nonce; what tells ours apart is the webhook that posted it,
        the author name the watch gives it, and the embed's title and link (the event's).
        """
        if first.webhook_id is None:
            return None
        channel = self.client.get_partial_messageable(first.channel_id)
        wanted = ((message.embed.title or "").strip(), message.embed.url)
        async for earlier in channel.history(limit=WEBHOOK_LOOKBACK):
            if earlier.webhook_id != first.webhook_id or not earlier.embeds:
                continue
            if first.webhook_name and earlier.author.name != first.webhook_name:
                continue
            embed = earlier.embeds[0]
            if ((embed.title or "").strip(), embed.url) == wanted:
                return earlier
        return None

    async def _send_webhook(
        self, group: list[AlertView], message: render.RenderedMessage
    ) -> discord.Message:
        first = group[0]
        earlier = await self._earlier_webhook_message(first, message)
        if earlier is not None:
            log.info(
                "alerts %s: found message %s an earlier attempt posted through the webhook",
                [a.id for a in group],
                earlier.id,
            )
            return earlier
        webhook = await self._webhook(first.channel_id)
        for renewed in (False, True):
            await outbox.mark_webhook_attempt(self.db, [a.id for a in group], webhook.id)
            try:
                return await webhook.send(
                    content=message.content or "",
                    embed=message.embed,
                    allowed_mentions=message.allowed_mentions,
                    username=first.webhook_name or discord.utils.MISSING,
                    avatar_url=first.webhook_avatar or discord.utils.MISSING,
                    wait=True,
                )
            except discord.NotFound as exc:
                if exc.code != UNKNOWN_WEBHOOK or renewed:
                    raise
                log.info(
                    "channel %s: alert webhook was deleted; making a new one", first.channel_id
                )
                webhook = await self._webhook(first.channel_id, renew=True)
        raise AssertionError("unreachable")

    async def _deliver(self, group: list[AlertView], report: DrainReport, now: datetime) -> None:
        first = group[0]
        ids = [a.id for a in group]
        try:
            message = self._render(group)
            channel = self.client.get_partial_messageable(first.channel_id)
            async with asyncio.timeout(self.request_timeout):
                if first.delivery == "forum":
                    sent = await self._forum_post(group, message)
                elif first.delivery == "webhook" and not first.is_digest:
                    sent = await self._send_webhook(group, message)
                else:
                    sent = await channel.send(
                        content=message.content,
                        embed=message.embed,
                        allowed_mentions=message.allowed_mentions,
                        nonce=first.nonce or outbox.make_nonce(first.id, now),
                    )
        except asyncio.CancelledError:
            raise
        except _Permanent as exc:
            await self._failed_send(group, exc, report, now, exc)
            return
        except Exception as exc:
            await self._failed_send(group, _classify(exc, first.channel_id), report, now, exc)
            return
        if first.delivery == "thread" and not first.is_digest:
            await self._start_thread(first, sent.id)
        # A message an earlier attempt created (Discord found it by the nonce) shows what that
        # attempt rendered; if the event has grown since, it must be edited, not left stale.
        stale = _shown(sent) != _rendered(message)
        if stale:
            log.info(
                "alerts %s: message %s found by its nonce shows an earlier version; editing it",
                ids,
                sent.id,
            )
        await outbox.mark_sent(
            self.db,
            ids,
            sent.id,
            now=utcnow(),
            rendered_sources={a.id: len(a.sources) for a in group},
            stale=stale,
        )
        report.messages += 1
        report.alerts_sent += len(group)
        if first.is_digest:
            report.digests += 1
        log.debug("alerts %s delivered as message %s", ids, sent.id)

    async def _failed_send(
        self,
        group: list[AlertView],
        problem: Exception,
        report: DrainReport,
        now: datetime,
        exc: BaseException,
    ) -> None:
        first = group[0]
        ids = [a.id for a in group]
        attempts = max(a.attempts for a in group) + 1
        if isinstance(problem, _Permanent) or attempts >= self.settings.max_attempts:
            reason = str(problem)
            if isinstance(problem, _Transient):
                reason = f"gave up after {attempts} attempts: {reason}"
            await outbox.mark_failed(self.db, ids, reason)
            report.failed += len(group)
            # One line per channel and process: a deleted channel must not flood the log.
            if first.channel_id not in self._reported_channels:
                self._reported_channels.add(first.channel_id)
                log.warning(
                    "alert delivery failed for channel %s (watch %r): %s",
                    first.channel_id,
                    first.watch_name,
                    reason,
                )
            return
        if isinstance(problem, _Transient) and problem.unexpected:
            log.error("unexpected error delivering alerts %s", ids, exc_info=exc)
        delay = min(self.settings.retry_base_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        await outbox.mark_retry(self.db, ids, str(problem), now + timedelta(seconds=delay))
        report.retried += len(group)
        log.info("alerts %s will be retried in %.0f s: %s", ids, delay, problem)

    async def _edit(self, group: list[AlertView], report: DrainReport, now: datetime) -> None:
        first = group[0]
        ids = [a.id for a in group]
        assert first.message_id is not None
        try:
            message = self._render(group)
            channel = self.client.get_partial_messageable(first.channel_id)
            async with asyncio.timeout(self.request_timeout):
                if first.webhook_id is not None:
                    await self._edit_webhook_message(first, message)
                else:
                    if first.delivery == "forum":
                        # A forum post's first message is in the post (thread) of its own id.
                        channel = self.client.get_partial_messageable(first.message_id)
                    await channel.get_partial_message(first.message_id).edit(
                        content=message.content,
                        embed=message.embed,
                        allowed_mentions=message.allowed_mentions,
                    )
            if first.delivery in ("thread", "forum") and not first.is_digest:
                try:
                    async with asyncio.timeout(self.request_timeout):
                        await self._thread_reply(first)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # The starter shows every source already; a lost reply is only logged.
                    log.warning("alert %s: no reply in its thread: %s", first.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            problem = exc if isinstance(exc, _Permanent) else _classify(exc, first.channel_id)
            if isinstance(problem, _Permanent):
                # The message was deleted or the channel closed to us: nothing left to edit.
                log.info("edit of message %s dropped: %s", first.message_id, problem)
                await outbox.mark_edited(self.db, ids)
                return
            delay = min(self.settings.retry_base_seconds * 4, MAX_BACKOFF_SECONDS)
            await outbox.defer_edit(self.db, ids, now + timedelta(seconds=delay))
            log.info("edit of message %s deferred %.0f s: %s", first.message_id, delay, problem)
            return
        await outbox.mark_edited(self.db, ids)
        report.edited += 1

    async def _forum_post(
        self, group: list[AlertView], message: render.RenderedMessage
    ) -> discord.Message:
        """Open a forum post (a thread with its first message) for the alert; return the message.

        A forum post takes no nonce: `post_started_at` is written before it is created, and a
        retry first looks among the guild's active threads for the bot's post in this forum
        with the same name whose first message shows the same embed title and link.
        """
        first = group[0]
        name = render.cut(
            render.clean_text(message.embed.title or first.event_title) or "Event",
            THREAD_NAME_LIMIT,
        )
        if first.post_started:
            earlier = await self._earlier_forum_post(first, name, message)
            if earlier is not None:
                log.info(
                    "alerts %s: found forum post %s an earlier attempt created",
                    [a.id for a in group],
                    earlier.id,
                )
                return earlier
        await outbox.mark_post_started(self.db, [a.id for a in group])
        channel_payload = {"name": name, "auto_archive_duration": 1440, "type": 11}
        with discord.http.handle_message_parameters(
            content=message.content or discord.utils.MISSING,
            embed=message.embed,
            allowed_mentions=message.allowed_mentions,
            channel_payload=channel_payload,
        ) as params:
            data = await self.client.http.start_thread_in_forum(first.channel_id, params=params)
        thread = self.client.get_partial_messageable(int(data["id"]))
        return discord.Message(
            state=self.client._connection,
            channel=thread,
            data=data["message"],
        )

    async def _earlier_forum_post(
        self, first: AlertView, name: str, message: render.RenderedMessage
    ) -> discord.Message | None:
        channel = self.client.get_channel(first.channel_id)
        if channel is None:
            channel = await self.client.fetch_channel(first.channel_id)
        guild = getattr(channel, "guild", None)
        me = self.client.user.id if self.client.user is not None else None
        if guild is None or me is None:
            return None
        active = await self.client.http.get_active_threads(guild.id)
        wanted = ((message.embed.title or "").strip(), message.embed.url)
        for thread in active.get("threads", []):
            if (thread.get("parent_id"), thread.get("owner_id"), thread.get("name")) != (
                str(first.channel_id),
                str(me),
                name,
            ):
                continue
            post = self.client.get_partial_messageable(int(thread["id"]))
            try:
                starter = await post.fetch_message(int(thread["id"]))
            except discord.NotFound:
                continue
            if (
                starter.embeds
                and (
                    (starter.embeds[0].title or "").strip(),
                    starter.embeds[0].url,
                )
                == wanted
            ):
                return starter
        return None

    async def _start_thread(self, first: AlertView, message_id: int) -> None:
        """Start the event's thread on its alert message (its id is the message's).

        A retry finds the message again by its nonce; a thread made by an earlier attempt
        answers 160004, which is success. A thread that cannot be made does not unpost the
        alert: it is logged, and later sources are then only edited into the message.
        """
        name = render.cut(render.clean_text(first.event_title) or "Event", THREAD_NAME_LIMIT)
        try:
            async with asyncio.timeout(self.request_timeout):
                await self.client.http.start_thread_with_message(
                    first.channel_id, message_id, name=name, auto_archive_duration=1440
                )
        except asyncio.CancelledError:
            raise
        except discord.HTTPException as exc:
            if exc.code == THREAD_EXISTS:
                return
            log.warning(
                "alert %s: no thread on message %s in channel %s (watch %r): %s %s: %s",
                first.id,
                message_id,
                first.channel_id,
                first.watch_name,
                exc.status,
                exc.code,
                "missing Create Public Threads permission" if exc.status == 403 else exc.text,
            )
        except Exception as exc:
            log.warning("alert %s: no thread on message %s: %s", first.id, message_id, exc)

    async def _thread_reply(self, first: AlertView) -> None:
        """Post the newest source as a reply in the event's thread, once (nonce by count)."""
        assert first.message_id is not None
        if len(first.sources) < 2:
            return
        source = first.sources[-1]
        line = f"**{render.escape(source.feed_name)}** also reports: "
        text = line + render.cut(render.escape(source.title), 300)
        url = render.safe_url(source.link)
        if url:
            text += f"\n<{url}>"
        seed = f"reply|{first.nonce or first.id}|{len(first.sources)}".encode()
        nonce = "r" + hashlib.sha256(seed).hexdigest()[:24]
        thread = self.client.get_partial_messageable(first.message_id)
        await thread.send(content=text, allowed_mentions=render.no_pings(), nonce=nonce)

    async def _edit_webhook_message(
        self, first: AlertView, message: render.RenderedMessage
    ) -> None:
        """Edit a webhook-posted alert through the webhook that posted it (only it may)."""
        assert first.message_id is not None
        webhook = await self._stored_webhook(first.channel_id)
        if webhook is None or webhook.id != first.webhook_id:
            # The webhook was deleted and replaced: its messages can no longer be edited.
            raise _Permanent(f"webhook {first.webhook_id} of channel {first.channel_id} is gone")
        await webhook.edit_message(
            first.message_id,
            content=message.content,
            embed=message.embed,
            allowed_mentions=message.allowed_mentions,
        )

    # -- scheduled digest ----------------------------------------------------------------

    async def _channel_zone(self, channel_id: int) -> tzinfo:
        """The zone the digest heading is written in: that of the guild owning the channel."""

        settings = getattr(self.client, "settings", None)
        default = getattr(getattr(settings, "discord", None), "timezone", "UTC")
        async with self.db.session() as session:
            return await channel_zone(session, channel_id, default)

    async def post_daily_digest(
        self, channel_id: int, now: datetime | None = None, hours: float = 24.0
    ) -> int | None:
        """Post the last day's events per watch to `channel_id`; return the message id."""
        now = now or utcnow()
        since = now - timedelta(hours=hours)
        digest = await outbox.daily_digest(self.db, channel_id, since, now)
        message = render.daily_digest_message(digest, since, await self._channel_zone(channel_id))
        if message is None:
            log.info("no events for the scheduled digest of channel %s", channel_id)
            return None
        # One nonce per channel and minute: a retried job cannot post the digest twice.
        seed = f"digest|{channel_id}|{now:%Y%m%d%H%M}".encode()
        nonce = "g" + hashlib.sha256(seed).hexdigest()[:24]
        channel = self.client.get_partial_messageable(channel_id)
        try:
            async with asyncio.timeout(self.request_timeout):
                sent = await channel.send(
                    embed=message.embed, allowed_mentions=message.allowed_mentions, nonce=nonce
                )
        except (discord.DiscordException, TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("scheduled digest for channel %s failed: %s", channel_id, exc)
            return None
        return sent.id
