"""Feed health notices: a feed turning failing, or recovering, told once to the ops channel.

`record` adds a row in the transaction that changes the feed's status, so each state change
has exactly one notice however many polls fail after it. Delivery (discordbot.delivery)
claims pending notices with a lease, posts each with a nonce derived from it (a retry after
a crash gets Discord's original message back) and marks it sent.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.storage.engine import Database
from timeline.storage.models import Feed, FeedNotice, utcnow

log = logging.getLogger(__name__)

FAILING = "failing"
RECOVERED = "recovered"
NONCE_PREFIX = "fn"
NONCE_LENGTH = 25


@dataclass(frozen=True, slots=True)
class NoticeView:
    """What a notice message shows."""

    id: int
    kind: str
    feed_name: str
    feed_url: str
    detail: str | None
    error_count: int
    created_at: datetime
    nonce: str
    attempts: int


def record(session: AsyncSession, feed: Feed, kind: str, now: datetime) -> None:
    """Add the notice of `feed`'s change to `kind` (in the caller's transaction)."""
    session.add(
        FeedNotice(
            feed_id=feed.id,
            kind=kind,
            detail=(feed.last_error or None) if kind == FAILING else None,
            error_count=feed.error_count,
            created_at=now,
        )
    )


def make_nonce(notice_id: int, created_at: datetime) -> str:
    seed = f"notice|{notice_id}|{created_at.isoformat()}".encode()
    return NONCE_PREFIX + hashlib.sha256(seed).hexdigest()[: NONCE_LENGTH - len(NONCE_PREFIX)]


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    return or_(
        and_(
            FeedNotice.status == "pending",
            or_(FeedNotice.next_attempt_at.is_(None), FeedNotice.next_attempt_at <= now),
        ),
        # A lease that ran out: its owner died. The row keeps its nonce.
        and_(FeedNotice.status == "sending", FeedNotice.claimed_until < now),
    )


async def claim(
    db: Database, owner: str, *, limit: int = 20, lease_seconds: float = 120.0, now: datetime
) -> list[NoticeView]:
    """Claim up to `limit` due notices for `owner`, oldest first, nonces assigned."""
    until = now + timedelta(seconds=lease_seconds)
    async with db.session() as session:
        candidates = (
            select(FeedNotice.id).where(_claimable(now)).order_by(FeedNotice.id).limit(limit)
        )
        if db.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        ids = (
            await session.scalars(
                update(FeedNotice)
                .where(FeedNotice.id.in_(candidates.scalar_subquery()), _claimable(now))
                .values(status="sending", claimed_by=owner, claimed_until=until)
                .returning(FeedNotice.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if not ids:
            return []
        rows = (
            await session.execute(
                select(FeedNotice, Feed.name, Feed.url)
                .join(Feed, Feed.id == FeedNotice.feed_id)
                .where(FeedNotice.id.in_(ids))
                .order_by(FeedNotice.id)
            )
        ).all()
        views = []
        for notice, name, url in rows:
            if notice.nonce is None:
                notice.nonce = make_nonce(notice.id, notice.created_at)
            views.append(
                NoticeView(
                    notice.id,
                    notice.kind,
                    name,
                    url,
                    notice.detail,
                    notice.error_count,
                    notice.created_at,
                    notice.nonce,
                    notice.attempts,
                )
            )
    return views


async def mark_sent(db: Database, notice_id: int, message_id: int) -> None:
    async with db.session() as session:
        await session.execute(
            update(FeedNotice)
            .where(FeedNotice.id == notice_id)
            .values(
                status="sent",
                message_id=message_id,
                sent_at=utcnow(),
                claimed_by=None,
                claimed_until=None,
            )
        )


async def mark_retry(db: Database, notice_id: int, error: str, at: datetime) -> None:
    async with db.session() as session:
        await session.execute(
            update(FeedNotice)
            .where(FeedNotice.id == notice_id)
            .values(
                status="pending",
                attempts=FeedNotice.attempts + 1,
                last_error=error[:2000],
                next_attempt_at=at,
                claimed_by=None,
                claimed_until=None,
            )
        )


async def mark_failed(db: Database, notice_id: int, error: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(FeedNotice)
            .where(FeedNotice.id == notice_id)
            .values(status="failed", last_error=error[:2000], claimed_by=None, claimed_until=None)
        )
