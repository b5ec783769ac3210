"""Plain data that leaves `feeds/`: no database, no Discord."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One story from one feed, normalised to plain text and aware UTC."""

    key: str
    title: str
    summary: str
    link: str | None
    published: datetime
    published_is_estimated: bool = False
    author: str | None = None
    tags: tuple[str, ...] = ()
    # Other keys this same story may be stored under, from a document that did (or did not)
    # share its guid with other items: "guid" for a "guid#content" key and the reverse. The
    # store treats a stored entry under one of them as this item when title and link match.
    same_as: tuple[str, ...] = ()
    # An image of the story (media:thumbnail, media:content, an image enclosure): http(s) only.
    image: str | None = None


@dataclass(slots=True)
class FetchState:
    """What the poller remembers about a feed between fetches (stored in the feeds row)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass(slots=True)
class FetchResult:
    """The outcome of one fetch: items or an error, plus the state to store for next time."""

    url: str
    outcome: str  # "ok" | "not_modified" | "unchanged" | "error"
    state: FetchState
    items: list[FeedItem] = field(default_factory=list)
    feed_title: str | None = None
    status: int | None = None
    error: str | None = None
    error_kind: str | None = None
    permanent_url: str | None = None
    retry_after: float | None = None
    bytes_read: int = 0
    duration_ms: float = 0.0
    # Problems repaired while parsing (the items are stored): one line each.
    warnings: list[str] = field(default_factory=list)
