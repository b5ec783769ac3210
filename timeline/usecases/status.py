"""`/status`: feed health, polling times and the alert outbox, as one guild sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.storage.models import Alert, Feed, Watch
from timeline.usecases._common import scope

MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class FailingFeed:
    """A feed that keeps failing."""

    name: str
    last_error: str | None
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class FailedAlert:
    """An alert that could not be delivered, with the reason."""

    watch: str
    reason: str


@dataclass(frozen=True, slots=True)
class StatusView:
    """What `/status` shows."""

    feeds_total: int
    feeds_ok: int
    feeds_failing: list[FailingFeed]
    last_poll_at: datetime | None
    next_poll_at: datetime | None
    alerts_pending: int
    alerts_failed: list[FailedAlert]
    version: str
    alerts_failed_total: int = 0
    # Feeds and watches that left the config file: not polled / not alerting, history kept.
    feeds_retired: tuple[str, ...] = ()
    watches_retired: tuple[str, ...] = ()


async def status(session: AsyncSession, guild_id: int, version: str) -> StatusView:
    """Summarise the guild's feeds and alerts (counts are of active feeds; retired ones listed)."""
    visible = scope(guild_id)
    every_feed = (await session.scalars(select(Feed).where(Feed.guild_id.in_(visible)))).all()
    feeds = [f for f in every_feed if f.retired_at is None]
    retired = sorted(f.name for f in every_feed if f.retired_at is not None)
    retired_watches = (
        await session.scalars(
            select(Watch.name)
            .where(Watch.guild_id.in_(visible), Watch.retired_at.is_not(None))
            .order_by(Watch.name)
        )
    ).all()
    failing = sorted(
        (f for f in feeds if f.status == "failing"),
        key=lambda f: (-f.error_count, f.name),
    )
    checked = [f.last_checked_at for f in feeds if f.last_checked_at is not None]
    upcoming = [f.next_check_at for f in feeds if f.enabled and f.next_check_at is not None]
    # Alerts of the watches this guild sees: its own and the config file's.
    watch_scope = Watch.guild_id.in_(visible)
    pending = await session.scalar(
        select(func.count(Alert.id))
        .join(Watch, Watch.id == Alert.watch_id)
        .where(watch_scope, Alert.status.in_(("pending", "sending")))
    )
    failed_total = await session.scalar(
        select(func.count(Alert.id))
        .join(Watch, Watch.id == Alert.watch_id)
        .where(watch_scope, Alert.status == "failed")
    )
    failed_rows = (
        await session.execute(
            select(Watch.name, Alert.last_error)
            .join(Watch, Watch.id == Alert.watch_id)
            .where(watch_scope, Alert.status == "failed")
            .order_by(Alert.created_at.desc(), Alert.id.desc())
            .limit(MAX_LISTED)
        )
    ).all()
    return StatusView(
        feeds_total=len(feeds),
        feeds_ok=sum(1 for f in feeds if f.status == "ok"),
        feeds_failing=[FailingFeed(f.name, f.last_error, f.last_success_at) for f in failing],
        last_poll_at=max(checked) if checked else None,
        next_poll_at=min(upcoming) if upcoming else None,
        alerts_pending=int(pending or 0),
        alerts_failed=[FailedAlert(name, error or "unknown error") for name, error in failed_rows],
        version=version,
        alerts_failed_total=int(failed_total or 0),
        feeds_retired=tuple(retired),
        watches_retired=tuple(retired_watches),
    )
