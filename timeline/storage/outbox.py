"""The alert outbox: claim, deliver-mark and edit-mark the alerts ingest writes.

Delivery is exactly-once from the team's point of view. Before a message is sent its alert
rows are claimed (status ``sending``, ``claimed_by``, a ``claimed_until`` lease) and given a
deterministic ``nonce`` that stays on the row for good; the Discord layer sends with that
nonce and ``enforce_nonce``, so a retry after a crash gets the original message back instead
of a second one. An expired ``sending`` lease simply makes the row claimable again.

Rows of one channel that arrive together in a burst share one *digest* nonce (prefix ``d``):
they are posted as one message and are claimed, retried and marked together.

Sent rows whose event gained a source are ``dirty``; `claim_dirty` leases them for an edit
(``claimed_until`` on a ``sent`` row) and `mark_edited` releases them.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from timeline.app import metrics
from timeline.storage.engine import Database
from timeline.storage.models import (
    Alert,
    ChannelWebhook,
    Entry,
    Event,
    Feed,
    Storyline,
    Watch,
    utcnow,
)

log = logging.getLogger(__name__)

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"

# Discord accepts nonces of at most 25 characters.
NONCE_LENGTH = 25
DIGEST_PREFIX = "d"
SINGLE_PREFIX = "a"


@dataclass(frozen=True, slots=True)
class SourceView:
    """One story (feed entry) behind an event."""

    feed_name: str
    title: str
    link: str | None
    summary: str
    published_at: datetime
    # What this source added to the earlier ones (None: first source; "": nothing new).
    brief: str | None = None
    # The story's image (http/https), if its feed gave one.
    image: str | None = None


@dataclass(frozen=True, slots=True)
class StorylineRef:
    """The storyline an alerted event belongs to, as the alert's one line tells it."""

    id: int
    title: str
    earlier_events: int
    since: datetime | None


@dataclass(frozen=True, slots=True)
class AlertView:
    """Everything delivery needs to render and send one alert, read in one go."""

    id: int
    status: str
    channel_id: int
    nonce: str | None
    message_id: int | None
    dirty: bool
    attempts: int
    matched_terms: tuple[str, ...]
    watch_id: int
    watch_name: str
    role_id: int | None
    event_id: int
    event_title: str
    event_link: str | None
    occurred_at: datetime
    sources: tuple[SourceView, ...]
    storyline: StorylineRef | None = None
    # The watch's message template and embed colour (None: the default rendering).
    template: str | None = None
    colour: int | None = None
    # How the watch posts ("channel" or "webhook") and the webhook's author name and avatar.
    delivery: str = "channel"
    webhook_name: str | None = None
    webhook_avatar: str | None = None
    # The channel webhook this alert was (or may have been) sent through.
    webhook_id: int | None = None
    # Whether a forum post for this alert may have been created already.
    post_started: bool = False

    @property
    def is_digest(self) -> bool:
        """Whether this alert is posted as part of a digest message."""
        return bool(self.nonce and self.nonce.startswith(DIGEST_PREFIX))

    @property
    def source_names(self) -> tuple[str, ...]:
        """Distinct feed names of the sources, in order of publication."""
        return tuple(dict.fromkeys(s.feed_name for s in self.sources))

    @property
    def snippet_source(self) -> str:
        """The text a snippet is cut from: the first source summary that has one."""
        for source in self.sources:
            if source.summary.strip():
                return source.summary
        return ""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counts per state, for `/status` and the CLI."""

    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    dirty: int = 0


@dataclass(frozen=True, slots=True)
class FailedAlert:
    """An alert given up on, with the reason."""

    id: int
    watch_name: str
    channel_id: int
    event_title: str
    reason: str | None


def make_nonce(alert_id: int, created_at: datetime, *, digest: bool = False) -> str:
    """Derive the deterministic Discord nonce of an alert (or of a digest led by it)."""
    # The creation time is mixed in so a recreated database (ids starting at 1 again) does not
    # hand Discord a nonce it still remembers from the old one.
    seed = f"{alert_id}|{created_at.isoformat()}".encode()
    prefix = DIGEST_PREFIX if digest else SINGLE_PREFIX
    return prefix + hashlib.sha256(seed).hexdigest()[: NONCE_LENGTH - len(prefix)]


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(
            Alert.status == PENDING,
            or_(Alert.next_attempt_at.is_(None), Alert.next_attempt_at <= now),
        ),
        # A lease that ran out: its owner crashed or hung. The row keeps its nonce.
        and_(Alert.status == SENDING, Alert.claimed_until < now),
    )


async def _claim_rows(
    session: AsyncSession,
    condition: ColumnElement[bool],
    limit: int,
    values: dict[str, Any],
    returning: Any,
) -> set[Any]:
    """Claim up to `limit` rows matching `condition` with `values`; return `returning` of each."""
    candidates = select(Alert.id).where(condition).order_by(Alert.id).limit(max(limit, 0))
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Several delivery processes may drain one PostgreSQL outbox.
        candidates = candidates.with_for_update(skip_locked=True)
    claim = (
        update(Alert)
        # The condition is repeated so a row another claimer took between the sub-select and
        # the update (SQLite: never; PostgreSQL: locked) is not taken twice.
        .where(Alert.id.in_(candidates.scalar_subquery()), condition)
        .values(**values)
        .returning(returning)
        .execution_options(synchronize_session=False)
    )
    return set((await session.scalars(claim)).all())


async def claim_pending(
    db: Database,
    owner: str,
    limit: int = 100,
    lease_seconds: float = 120.0,
    now: datetime | None = None,
    *,
    burst_threshold: int | None = None,
) -> list[AlertView]:
    """Claim up to `limit` due alerts for `owner` and return them, nonces assigned.

    Rows of one channel without a nonce yet, more than `burst_threshold` of them, get one
    shared digest nonce. Rows already sharing a nonce are always claimed together.
    """
    now = now or utcnow()
    until = now + timedelta(seconds=lease_seconds)
    async with db.session() as session:
        ids = await _claim_rows(
            session,
            _claimable(now),
            limit,
            {"status": SENDING, "claimed_by": owner, "claimed_until": until},
            Alert.id,
        )
        if not ids:
            return []
        nonces = set(
            (
                await session.scalars(
                    select(Alert.nonce).where(Alert.id.in_(ids), Alert.nonce.is_not(None))
                )
            ).all()
        )
        if nonces:
            # Complete digest groups split by the limit: a digest is always sent whole.
            more = update(Alert).where(Alert.nonce.in_(nonces), _claimable(now))
            more = more.values(status=SENDING, claimed_by=owner, claimed_until=until)
            more = more.returning(Alert.id).execution_options(synchronize_session=False)
            ids.update((await session.scalars(more)).all())
        await _assign_nonces(session, ids, burst_threshold)
        views = await _load_views(session, ids)
    log.debug("claimed %d alerts for %s", len(views), owner)
    return views


async def _assign_nonces(
    session: AsyncSession, ids: Iterable[int], burst_threshold: int | None
) -> None:
    rows = (
        await session.execute(
            select(Alert.id, Alert.channel_id, Alert.created_at)
            .where(Alert.id.in_(list(ids)), Alert.nonce.is_(None))
            .order_by(Alert.id)
        )
    ).all()
    by_channel: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for alert_id, channel_id, created_at in rows:
        by_channel[channel_id].append((alert_id, created_at))
    for group in by_channel.values():
        if burst_threshold is not None and len(group) > burst_threshold:
            lead_id, lead_created = group[0]
            nonce = make_nonce(lead_id, lead_created, digest=True)
            await session.execute(
                update(Alert)
                .where(Alert.id.in_([alert_id for alert_id, _ in group]))
                .values(nonce=nonce)
                .execution_options(synchronize_session=False)
            )
        else:
            # ORM bulk UPDATE by primary key: one executemany, not one statement per row.
            await session.execute(
                update(Alert).execution_options(synchronize_session=False),
                [
                    {"id": alert_id, "nonce": make_nonce(alert_id, created_at)}
                    for alert_id, created_at in group
                ],
            )


async def load_alert_views(session: AsyncSession, ids: Iterable[int]) -> list[AlertView]:
    """The alerts `ids` as delivery renders them (watch, event, sources, storyline)."""
    return await _load_views(session, ids)


async def _load_views(session: AsyncSession, ids: Iterable[int]) -> list[AlertView]:
    id_list = sorted(set(ids))
    if not id_list:
        return []
    rows = (
        await session.execute(
            select(Alert, Watch.name, Watch.role_id, Event, Watch.template, Watch.colour)
            .add_columns(Watch.delivery, Watch.webhook_name, Watch.webhook_avatar)
            .join(Watch, Watch.id == Alert.watch_id)
            .join(Event, Event.id == Alert.event_id)
            .where(Alert.id.in_(id_list))
            .order_by(Alert.id)
        )
    ).all()
    event_ids = {row[3].id for row in rows}
    sources: dict[int, list[SourceView]] = defaultdict(list)
    if event_ids:
        entries = await session.execute(
            select(Entry.event_id, Feed.name, Entry.title, Entry.link, Entry.summary)
            .add_columns(Entry.published_at, Entry.brief, Entry.image_url)
            .join(Feed, Feed.id == Entry.feed_id)
            .where(Entry.event_id.in_(event_ids))
            .order_by(Entry.published_at, Entry.id)
        )
        for event_id, feed_name, title, link, summary, published, brief, image in entries:
            sources[event_id].append(
                SourceView(feed_name, title, link, summary or "", published, brief, image)
            )
    storylines = await storyline_refs(session, [row[3] for row in rows])
    return [
        AlertView(
            id=alert.id,
            status=alert.status,
            channel_id=alert.channel_id,
            nonce=alert.nonce,
            message_id=alert.message_id,
            dirty=alert.dirty,
            attempts=alert.attempts,
            matched_terms=tuple(alert.matched_terms or ()),
            watch_id=alert.watch_id,
            watch_name=watch_name,
            role_id=role_id,
            event_id=event.id,
            event_title=event.title,
            event_link=event.link,
            occurred_at=event.occurred_at,
            sources=tuple(sources.get(event.id, ())),
            storyline=storylines.get(event.id),
            template=template,
            colour=colour,
            delivery=delivery or "channel",
            webhook_name=webhook_name,
            webhook_avatar=webhook_avatar,
            webhook_id=alert.webhook_id,
            post_started=alert.post_started_at is not None,
        )
        for (
            alert,
            watch_name,
            role_id,
            event,
            template,
            colour,
            delivery,
            webhook_name,
            webhook_avatar,
        ) in rows
    ]


async def storyline_refs(session: AsyncSession, events: Sequence[Event]) -> dict[int, StorylineRef]:
    """For each event in a storyline: the storyline's title, the events before it, since when."""
    refs: dict[int, StorylineRef] = {}
    for event in events:
        if event.storyline_id is None or event.id in refs:
            continue
        title = await session.scalar(
            select(Storyline.title).where(Storyline.id == event.storyline_id)
        )
        if title is None:
            continue
        earlier, since = (
            await session.execute(
                select(func.count(Event.id), func.min(Event.occurred_at)).where(
                    Event.storyline_id == event.storyline_id,
                    Event.id != event.id,
                    Event.occurred_at <= event.occurred_at,
                )
            )
        ).one()
        refs[event.id] = StorylineRef(event.storyline_id, title, int(earlier or 0), since)
    return refs


async def mark_sent(
    db: Database,
    alert_ids: Sequence[int],
    message_id: int,
    now: datetime | None = None,
    *,
    rendered_sources: Mapping[int, int] | None = None,
    stale: bool = False,
) -> None:
    """Record that `alert_ids` were delivered as Discord message `message_id`.

    `rendered_sources` maps alert id to the number of sources the message showed; an event
    that has more by now (a source joined while the message was in flight) is marked dirty
    so the message gets edited, whatever ingest did meanwhile. `stale` marks every row dirty:
    Discord returned a message an earlier attempt created (same nonce) showing an older
    rendering.
    """
    # `dirty` is never cleared here: an edit requested during the send must still happen.
    sent_at = now or utcnow()
    async with db.session() as session:
        created = (
            await session.scalars(
                update(Alert)
                .where(Alert.id.in_(list(alert_ids)))
                .values(
                    status=SENT,
                    message_id=message_id,
                    sent_at=sent_at,
                    claimed_by=None,
                    claimed_until=None,
                    next_attempt_at=None,
                    last_error=None,
                    **({"dirty": True} if stale else {}),
                )
                .returning(Alert.created_at)
                .execution_options(synchronize_session=False)
            )
        ).all()
        for alert_id, shown in (rendered_sources or {}).items():
            current = (
                select(func.count(Entry.id))
                .where(Entry.event_id == Alert.event_id)
                .scalar_subquery()
            )
            await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, current > shown)
                .values(dirty=True)
                .execution_options(synchronize_session=False)
            )
    metrics.ALERTS_DELIVERED.inc(len(created))
    metrics.observe_latencies(created, sent_at)


async def stored_webhook(db: Database, channel_id: int) -> tuple[int, str] | None:
    """The (webhook id, token) the bot stored for `channel_id`'s webhook deliveries, if any."""
    async with db.session() as session:
        row = await session.get(ChannelWebhook, channel_id)
        return None if row is None else (row.webhook_id, row.token)


async def store_webhook(db: Database, channel_id: int, webhook_id: int, token: str) -> None:
    """Remember the webhook the bot delivers through in `channel_id` (replacing an older one)."""
    async with db.session() as session:
        await session.merge(
            ChannelWebhook(channel_id=channel_id, webhook_id=webhook_id, token=token)
        )


async def forget_webhook(db: Database, channel_id: int) -> None:
    """Forget `channel_id`'s stored webhook (Discord said it is gone)."""
    async with db.session() as session:
        await session.execute(delete(ChannelWebhook).where(ChannelWebhook.channel_id == channel_id))


async def mark_webhook_attempt(db: Database, alert_ids: Sequence[int], webhook_id: int) -> None:
    """Record, before a webhook send, which webhook the message may appear under.

    Webhook messages take no nonce: a retry after a crash between send and `mark_sent` finds
    the earlier message among that webhook's recent ones in the channel instead.
    """
    async with db.session() as session:
        await session.execute(
            update(Alert)
            .where(Alert.id.in_(list(alert_ids)))
            .values(webhook_id=webhook_id)
            .execution_options(synchronize_session=False)
        )


async def mark_post_started(db: Database, alert_ids: Sequence[int]) -> None:
    """Record, before a forum post is created, that it may exist from now on (see
    `mark_webhook_attempt`: a retry looks for it among the forum's active posts)."""
    async with db.session() as session:
        await session.execute(
            update(Alert)
            .where(Alert.id.in_(list(alert_ids)))
            .values(post_started_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def mark_retry(
    db: Database, alert_ids: int | Sequence[int], error: str, next_attempt_at: datetime
) -> None:
    """Put alerts back to pending after a transient failure; they keep their nonce."""
    ids = [alert_ids] if isinstance(alert_ids, int) else list(alert_ids)
    async with db.session() as session:
        await session.execute(
            update(Alert)
            .where(Alert.id.in_(ids))
            .values(
                status=PENDING,
                attempts=Alert.attempts + 1,
                last_error=error[:2000],
                next_attempt_at=next_attempt_at,
                claimed_by=None,
                claimed_until=None,
            )
            .execution_options(synchronize_session=False)
        )
    metrics.ALERTS_RETRIED.inc(len(ids))


async def mark_failed(db: Database, alert_ids: int | Sequence[int], reason: str) -> None:
    """Give up on alerts for good (channel gone, no permission, too many attempts)."""
    ids = [alert_ids] if isinstance(alert_ids, int) else list(alert_ids)
    async with db.session() as session:
        await session.execute(
            update(Alert)
            .where(Alert.id.in_(ids))
            .values(
                status=FAILED,
                last_error=reason[:2000],
                claimed_by=None,
                claimed_until=None,
                next_attempt_at=None,
            )
            .execution_options(synchronize_session=False)
        )
    metrics.ALERTS_FAILED.inc(len(ids))


def _edit_claimable(now: datetime) -> ColumnElement[bool]:
    # A sent row wants an edit when it is dirty, or when an edit lease ran out unfinished.
    return and_(
        Alert.status == SENT,
        Alert.message_id.is_not(None),
        or_(Alert.dirty.is_(True), Alert.claimed_until.is_not(None)),
        or_(Alert.claimed_until.is_(None), Alert.claimed_until < now),
    )


async def claim_dirty(
    db: Database,
    owner: str,
    limit: int = 100,
    lease_seconds: float = 120.0,
    now: datetime | None = None,
) -> list[AlertView]:
    """Lease sent alerts whose event changed, clearing `dirty`, and return them for an edit.

    The returned list holds every alert sharing a message with a dirty one (a digest is
    re-rendered whole). A source that arrives during the edit sets `dirty` again.
    """
    now = now or utcnow()
    until = now + timedelta(seconds=lease_seconds)
    async with db.session() as session:
        message_ids = await _claim_rows(
            session,
            _edit_claimable(now),
            limit,
            {"dirty": False, "claimed_by": owner, "claimed_until": until},
            Alert.message_id,
        )
        if not message_ids:
            return []
        ids = (
            await session.scalars(
                select(Alert.id).where(Alert.message_id.in_(message_ids), Alert.status == SENT)
            )
        ).all()
        return await _load_views(session, ids)


async def mark_edited(db: Database, alert_ids: Sequence[int]) -> None:
    """Release the edit lease of alerts whose message now shows their event."""
    async with db.session() as session:
        await session.execute(
            update(Alert)
            .where(Alert.id.in_(list(alert_ids)), Alert.status == SENT)
            .values(claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )


async def defer_edit(db: Database, alert_ids: Sequence[int], retry_at: datetime) -> None:
    """Keep an edit pending until `retry_at` after a transient failure."""
    async with db.session() as session:
        await session.execute(
            update(Alert)
            .where(Alert.id.in_(list(alert_ids)), Alert.status == SENT)
            .values(claimed_until=retry_at, last_error="edit deferred")
            .execution_options(synchronize_session=False)
        )


async def release_claims(db: Database, owner: str) -> int:
    """Hand back every claim `owner` holds (graceful shutdown); return how many rows.

    Safe even if a message was posted in the meantime: the rows keep their nonce, so the
    next sender gets Discord's original message back.
    """
    async with db.session() as session:
        sends = await session.execute(
            update(Alert)
            .where(Alert.status == SENDING, Alert.claimed_by == owner)
            .values(status=PENDING, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        edits = await session.execute(
            update(Alert)
            .where(
                Alert.status == SENT, Alert.claimed_by == owner, Alert.claimed_until.is_not(None)
            )
            .values(dirty=True, claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
    return int(sends.rowcount or 0) + int(edits.rowcount or 0)  # type: ignore[attr-defined]


async def release_dead_claims(db: Database, is_dead: Callable[[str], bool]) -> dict[str, int]:
    """Hand back the claims of every owner `is_dead` says is gone; return rows per owner.

    A process killed mid-delivery (SIGKILL, OOM, power) never runs `release_claims`; without
    this its rows would wait for their leases to run out. Handing back a claim of a process
    that is in fact alive is still safe (see `release_claims`), merely wasteful.
    """
    async with db.session() as session:
        owners = (
            await session.scalars(
                select(Alert.claimed_by).where(Alert.claimed_by.is_not(None)).distinct()
            )
        ).all()
    released: dict[str, int] = {}
    for owner in owners:
        if owner is not None and is_dead(owner):
            released[owner] = await release_claims(db, owner)
    return released


async def outbox_stats(db: Database) -> OutboxStats:
    """Count alerts per state (`failed` is what `/status` shows as alerts_failed)."""
    async with db.session() as session:
        rows = await session.execute(select(Alert.status, func.count()).group_by(Alert.status))
        counts: dict[str, int] = {status: count for status, count in rows.all()}
        dirty = await session.scalar(
            select(func.count()).select_from(Alert).where(Alert.dirty.is_(True))
        )
    return OutboxStats(
        pending=counts.get(PENDING, 0),
        sending=counts.get(SENDING, 0),
        sent=counts.get(SENT, 0),
        failed=counts.get(FAILED, 0),
        dirty=dirty or 0,
    )


async def failed_alerts(db: Database, limit: int = 20) -> list[FailedAlert]:
    """List the most recent alerts given up on, with their reason."""
    async with db.session() as session:
        rows = await session.execute(
            select(Alert.id, Watch.name, Alert.channel_id, Event.title, Alert.last_error)
            .join(Watch, Watch.id == Alert.watch_id)
            .join(Event, Event.id == Alert.event_id)
            .where(Alert.status == FAILED)
            .order_by(Alert.id.desc())
            .limit(limit)
        )
        return [FailedAlert(*row) for row in rows.all()]


@dataclass(frozen=True, slots=True)
class DigestLine:
    """One event in a scheduled daily digest."""

    event_id: int
    title: str
    link: str | None
    occurred_at: datetime
    sources: int


async def daily_digest(
    db: Database, channel_id: int, since: datetime, until: datetime
) -> dict[str, list[DigestLine]]:
    """Return the events alerted to `channel_id` that occurred in [since, until), per watch."""
    async with db.session() as session:
        source_count = (
            select(func.count(Entry.id)).where(Entry.event_id == Event.id).scalar_subquery()
        )
        rows = await session.execute(
            select(Watch.name, Event.id, Event.title, Event.link, Event.occurred_at, source_count)
            .select_from(Alert)
            .join(Watch, Watch.id == Alert.watch_id)
            .join(Event, Event.id == Alert.event_id)
            .where(
                Alert.channel_id == channel_id,
                Event.occurred_at >= since,
                Event.occurred_at < until,
            )
            .order_by(Watch.name, Event.occurred_at, Event.id)
        )
        result: dict[str, list[DigestLine]] = {}
        for watch_name, event_id, title, link, occurred_at, sources in rows.all():
            result.setdefault(watch_name, []).append(
                DigestLine(event_id, title, link, occurred_at, sources or 0)
            )
        return result
