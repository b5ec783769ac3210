"""SQLAlchemy models: the schema Alembic migrations create (never `create_all` in production)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware UTC datetimes; refuse naive ones; always hand back aware UTC.

    SQLite has no time zone type, so values come back naive from it: they were UTC when
    written, so they are marked UTC again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime refused: {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Scope of a row: the Discord guild that owns it; 0 means "from the config file", shared by
# every configured guild.
GLOBAL_SCOPE = 0


class Feed(Base):
    __tablename__ = "feeds"
    __table_args__ = (UniqueConstraint("guild_id", "url"), UniqueConstraint("guild_id", "name"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, default=GLOBAL_SCOPE)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    origin: Mapped[str] = mapped_column(String(16), default="config")  # config | discord | cli
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    title: Mapped[str | None] = mapped_column(String(500))
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    body_hash: Mapped[str | None] = mapped_column(String(64))
    next_check_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new")  # new | ok | failing
    backfilled: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the feed left the config file: not polled, history kept (NULL = active).
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Storyline(Base):
    """Events about one developing subject, followed over weeks (see timeline.domain.storylines)."""

    __tablename__ = "storylines"
    __table_args__ = (Index("ix_storylines_guild_updated", "guild_id", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, default=GLOBAL_SCOPE)
    title: Mapped[str] = mapped_column(Text)
    # An admin's title is kept; a derived one follows the events that join.
    title_edited: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_guild_occurred", "guild_id", "occurred_at"),
        # What a poller reads back each round: the events stored since it last looked (in
        # the order it adds them), and the rows admins changed since (see storage.storylines).
        Index("ix_events_created", "created_at", "id"),
        Index("ix_events_updated", "updated_at"),
        # The few manual events, which a timeline search matches by title (no entries).
        Index(
            "ix_events_manual",
            "guild_id",
            "occurred_at",
            sqlite_where=text("manual = 1"),
            postgresql_where=text("manual"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, default=GLOBAL_SCOPE)
    title: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(2048), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    storyline_id: Mapped[int | None] = mapped_column(
        ForeignKey("storylines.id", ondelete="SET NULL"), index=True
    )
    # An admin took this event out of a storyline: ingest does not put it back.
    storyline_detached: Mapped[bool] = mapped_column(Boolean, default=False)


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("feed_id", "key"),
        Index("ix_entries_published", "published_at"),
        Index("ix_entries_first_seen", "first_seen_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="SET NULL"), index=True
    )
    key: Mapped[str] = mapped_column(String(512))
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(2048), index=True)
    author: Mapped[str | None] = mapped_column(String(300))
    # The story's image from the feed (http/https), shown as the alert's thumbnail.
    image_url: Mapped[str | None] = mapped_column(String(2048))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_is_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What this source added to its event's earlier sources (None: the first source, or not
    # computed; "": nothing new). See timeline.domain.storylines.source_brief.
    brief: Mapped[str | None] = mapped_column(Text)
    # The storyline subject of this entry's title and summary, as ingest computed it when the
    # entry created its event (timeline.domain.storylines.encode_subject), so a restart reads
    # it instead of recomputing it. None: not stored (then computed from the text).
    subject: Mapped[str | None] = mapped_column(Text)


class EventNote(Base):
    __tablename__ = "event_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Watch(Base):
    __tablename__ = "watches"
    __table_args__ = (UniqueConstraint("guild_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, default=GLOBAL_SCOPE)
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    role_id: Mapped[int | None] = mapped_column(BigInteger)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    origin: Mapped[str] = mapped_column(String(16), default="config")
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the watch left the config file: no new alerts, alert records kept (NULL = active).
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The team's message template (timeline.render.templates) and embed colour; None: the default.
    template: Mapped[str | None] = mapped_column(Text)
    colour: Mapped[int | None] = mapped_column(Integer)
    # How alerts are posted: None = as the bot ("channel"), "webhook" = through the channel's
    # webhook with `webhook_name` and `webhook_avatar` (an http(s) URL) as author.
    delivery: Mapped[str | None] = mapped_column(String(16))
    webhook_name: Mapped[str | None] = mapped_column(String(80))
    webhook_avatar: Mapped[str | None] = mapped_column(Text)


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("guild_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, default=GLOBAL_SCOPE)
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(16), default="config")
    created_by: Mapped[str | None] = mapped_column(String(100))


class GuildSettings(Base):
    """A guild's own choices (its time zone); a guild without a row uses the config file's."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # An IANA name (Europe/Paris), checked with zoneinfo when set; NULL = the config default.
    timezone: Mapped[str | None] = mapped_column(String(64))
    updated_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChannelWebhook(Base):
    """The webhook the bot created in a channel. `token` is a secret: never logged or shown."""

    __tablename__ = "channel_webhooks"

    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    webhook_id: Mapped[int] = mapped_column(BigInteger)
    token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        # The default repr would show the token.
        return f"ChannelWebhook(channel_id={self.channel_id}, webhook_id={self.webhook_id})"


class Alert(Base):
    """The outbox: one row per (watch, event), written in the ingest transaction."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("watch_id", "event_id"),
        Index("ix_alerts_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(BigInteger)
    # pending -> sending -> sent | failed; `dirty` marks a sent alert whose event gained a source.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    silent: Mapped[bool] = mapped_column(Boolean, default=False)
    matched_terms: Mapped[list[str]] = mapped_column(JSON, default=list)
    nonce: Mapped[str | None] = mapped_column(String(25))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The channel webhook a webhook delivery was (or may have been) sent through, written
    # before the send: a retry looks for that webhook's message first; edits go through it.
    webhook_id: Mapped[int | None] = mapped_column(BigInteger)
    # Set before a forum post is created (that takes no nonce either): a retry looks for it.
    post_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FeedNotice(Base):
    """A feed turned failing or recovered: one notice for the ops channel, per change.

    Written in the transaction that changes the feed's status, so a state change gets
    exactly one row; delivered like alerts (claimed with a lease, sent with a nonce).
    """

    __tablename__ = "feed_notices"
    __table_args__ = (Index("ix_feed_notices_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    # failing | recovered
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # pending -> sending -> sent | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    nonce: Mapped[str | None] = mapped_column(String(25))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FetchLog(Base):
    """One row per fetch attempt: what happened, how long, how much."""

    __tablename__ = "fetch_results"
    __table_args__ = (Index("ix_fetch_results_feed_started", "feed_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    new_entries: Mapped[int] = mapped_column(Integer, default=0)
    bytes_read: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
