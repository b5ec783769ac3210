"""Plain, frozen views the services return: the Discord layer never sees an ORM object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from timeline.storage.outbox import StorylineRef


@dataclass(frozen=True, slots=True)
class SourceView:
    """One outlet's story inside an event."""

    feed_name: str
    title: str
    link: str | None
    published_at: datetime
    entry_id: int = 0
    # What this source added to the earlier ones (None: the first source; "": nothing new).
    brief: str | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    """An event on the timeline with its sources and the watches that alerted on it."""

    id: int
    title: str
    link: str | None
    occurred_at: datetime
    sources: list[SourceView] = field(default_factory=list)
    watches: list[str] = field(default_factory=list)
    note_count: int = 0
    manual: bool = False
    storyline_id: int | None = None
    storyline_title: str | None = None


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """One page of the timeline, newest first, and how many events match in all."""

    events: list[EventView]
    total: int
    offset: int = 0
    limit: int = 10
    capped: bool = False  # a query matched more entries than were searched: total is a floor


@dataclass(frozen=True, slots=True)
class TimelineCursorPage:
    """One page of the timeline in time order, and the cursor of the next (None: the last).

    A cursor, not an offset: a page costs the same however deep it is, and events stored
    meanwhile do not shift what the next page shows.
    """

    events: list[EventView]
    next_cursor: str | None
    capped: bool = False  # a searched page stopped early (SCAN_BUDGET): next_cursor goes on


@dataclass(frozen=True, slots=True)
class NoteView:
    """A note a team member left on an event."""

    id: int
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DateView:
    """A date mentioned in an event's sources, with the phrase it came from."""

    start: date
    end: date
    precision: str
    phrase: str


@dataclass(frozen=True, slots=True)
class EventDetail:
    """Everything `/event show` displays."""

    event: EventView
    notes: list[NoteView]
    dates: list[DateView]
    summaries: dict[int, str] = field(default_factory=dict)  # entry id -> summary
    storyline: StorylineRef | None = None


@dataclass(frozen=True, slots=True)
class HitView:
    """One stored entry a query matched."""

    entry_id: int
    event_id: int | None
    title: str
    link: str | None
    published_at: datetime
    feed_name: str
    terms: list[str] = field(default_factory=list)
    summary: str = ""


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of stored stories matching a query, newest first.

    `next_cursor` is an opaque string that asks for the page after this one (None on the
    last page): a cursor, not an offset, so a page costs the same however deep it is and
    stories stored meanwhile do not shift what the next page shows.
    """

    query: str
    hits: list[HitView]
    next_cursor: str | None
