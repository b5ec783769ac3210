"""Stored storyline subjects: a restarted cache reads them, and computes (and stores) the rest.

A real SQLite file at head. The subject of an event is the one of its first source (lowest
entry id), stored with that entry (`entries.subject`): whichever entry is first, what the
cache loads is a function of that entry's text, as without stored subjects.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.domain.storylines.labelled import load
from timeline.domain.storylines import (
    SUBJECT_VERSION,
    StorylineIndex,
    decode_subject,
    encode_subject,
    subject,
)
from timeline.storage.engine import Database
from timeline.storage.models import Entry, Event, Feed
from timeline.storage.storylines import NewEvent, StorylineCache

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
VOLCANO = ("Volcano erupts near Reykjavik", "Lava from the Icelandic volcano reached Grindavik.")
ZEBRA = ("Zebras escape from Prague zoo", "Keepers in Prague searched for three zebras.")


def test_stored_subjects_decode_to_the_computed_ones() -> None:
    for e in load("dev") + load("test"):
        computed = subject(e.title, e.summary)
        text = encode_subject(computed)
        assert text is not None and text.startswith(f"{SUBJECT_VERSION}|")
        back = decode_subject(text)
        assert back == computed
        # The same term order too: scores sum the weights in it.
        assert back is not None and list(back.terms.items()) == list(computed.terms.items())
    empty = subject("", "")
    assert decode_subject(encode_subject(empty)) == empty


# The stored forms of the labelled events' subjects at this SUBJECT_VERSION.
FINGERPRINT = {"1": "f8c1b2faa9ee747bdb77c8ad308278e00664daa1324827ae0b9ffe741e635f38"}


def test_a_change_to_what_subject_returns_comes_with_a_new_version() -> None:
    """Stored subjects of the old version would be read as if current: when this fails
    because `subject` changed, bump SUBJECT_VERSION and record the new fingerprint."""
    digest = hashlib.sha256()
    for e in load("dev") + load("test"):
        digest.update((encode_subject(subject(e.title, e.summary)) or "").encode() + b"\n")
    assert FINGERPRINT.get(SUBJECT_VERSION) == digest.hexdigest()


def test_another_version_or_a_damaged_form_is_not_read() -> None:
    text = encode_subject(subject(*VOLCANO))
    assert text is not None
    assert decode_subject(None) is None
    assert decode_subject("") is None
    assert decode_subject("0" + text[len(SUBJECT_VERSION) :]) is None
    assert decode_subject(text.rsplit("|", 1)[0]) is None  # a field missing
    assert decode_subject(text[: text.index(" ")] + "|a|n|x|y") is None  # fields disagree


async def add_event(db: Database, *texts: tuple[str, str], at: datetime = NOW) -> list[int]:
    """One event with an entry per text (ids in that order); return the entry ids."""
    async with db.session() as s:
        feed = await s.scalar(select(Feed).where(Feed.name == "Wire"))
        if feed is None:
            feed = Feed(name="Wire", url="https://wire.example/rss")
            s.add(feed)
            await s.flush()
        event = Event(title=texts[0][0], occurred_at=at, created_at=at, updated_at=at)
        s.add(event)
        await s.flush()
        entries = [
            Entry(
                feed_id=feed.id,
                event_id=event.id,
                key=f"{event.id}-{i}",
                title=title,
                summary=summary,
                published_at=at,
                first_seen_at=at,
            )
            for i, (title, summary) in enumerate(texts)
        ]
        s.add_all(entries)
        await s.flush()
        return [e.id for e in entries]


async def loaded(db: Database) -> StorylineIndex:
    """The index of a freshly started process."""
    cache = StorylineCache()
    async with db.session() as s:
        await cache.refresh(s, NOW)
    return cache.index(0)


def title_of(text: tuple[str, str]) -> str:
    """The storyline title an index of one event with this text gives (its terms' forms)."""
    index = StorylineIndex()
    index.add(1, NOW, subject(*text))
    return index.title_for([1])


async def stored(db: Database, entry_id: int) -> str | None:
    async with db.session() as s:
        return await s.scalar(select(Entry.subject).where(Entry.id == entry_id))


async def set_stored(db: Database, entry_id: int, text: str | None) -> None:
    async with db.session() as s:
        await s.execute(update(Entry).where(Entry.id == entry_id).values(subject=text))


async def event_of(db: Database, entry_id: int) -> int:
    async with db.session() as s:
        got = await s.scalar(select(Entry.event_id).where(Entry.id == entry_id))
    assert got is not None
    return got


async def test_a_restart_reads_the_stored_subject_instead_of_the_text(db: Database) -> None:
    (first,) = await add_event(db, VOLCANO)
    event = await event_of(db, first)
    # What is stored is what is loaded: marked with another text's subject, the entry loads
    # as that text (ingest stores the subject of the entry's own text; this shows it is read).
    await set_stored(db, first, encode_subject(subject(*ZEBRA)))
    assert (await loaded(db)).title_for([event]) == title_of(ZEBRA)
    await set_stored(db, first, None)
    assert (await loaded(db)).title_for([event]) == title_of(VOLCANO)


async def test_subjects_not_stored_or_of_another_version_are_computed_and_stored(
    db: Database,
) -> None:
    (a,) = await add_event(db, VOLCANO)
    (b,) = await add_event(db, ZEBRA, at=NOW - timedelta(hours=1))
    wrong = encode_subject(subject(*VOLCANO))
    assert wrong is not None
    await set_stored(db, b, "0" + wrong[len(SUBJECT_VERSION) :])  # another version's
    assert await stored(db, a) is None
    index = await loaded(db)
    assert index.title_for([await event_of(db, b)]) == title_of(ZEBRA)
    assert await stored(db, a) == encode_subject(subject(*VOLCANO))
    assert await stored(db, b) == encode_subject(subject(*ZEBRA))


async def test_an_earlier_entry_moved_in_defines_the_subject_not_the_stored_one(
    db: Database,
) -> None:
    """The subject is the first source's: an admin moving an earlier entry into an event
    (a merge) makes that entry's subject the event's, stored or not."""
    (early,) = await add_event(db, ZEBRA, at=NOW - timedelta(hours=2))
    (late,) = await add_event(db, VOLCANO)
    await set_stored(db, early, None)
    await set_stored(db, late, encode_subject(subject(*VOLCANO)))
    event = await event_of(db, late)
    async with db.session() as s:
        await s.execute(update(Entry).where(Entry.id == early).values(event_id=event))
    index = await loaded(db)
    assert index.title_for([event]) == title_of(ZEBRA)


async def test_placing_a_new_event_stores_its_subject_with_its_entry(db: Database) -> None:
    (entry,) = await add_event(db, VOLCANO)
    event = await event_of(db, entry)
    cache = StorylineCache()
    async with db.session() as s:
        await cache.refresh(s, NOW)  # (stores the subject it computed: cleared again)
        await s.execute(update(Entry).values(subject=None))
        # Without `subjects` (ingest passes them and writes them itself), for an event the
        # cache has not seen yet.
        cache.index(0).remove(event)
        await cache.place(s, [NewEvent(event, 0, NOW, *VOLCANO, entry_id=entry)], now=NOW)
    assert await stored(db, entry) == encode_subject(subject(*VOLCANO))
