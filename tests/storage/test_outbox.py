"""The outbox service: claims, leases, nonces, digests, retries and edits on real databases."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.discordbot import outbox_seed as seed_mod
from tests.discordbot.outbox_seed import T0, Seed, add_source, alert, alert_rows, event, watch
from tests.helpers import postgres_unreachable
from timeline.storage import outbox
from timeline.storage.engine import Database
from timeline.storage.migrate import upgrade_async
from timeline.storage.models import Alert

CHANNEL = 1001


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await seed_mod.migrated_db(tmp_path)
    yield database
    await database.dispose()


async def _alerts(db: Database, count: int, channel: int = CHANNEL) -> list[int]:
    seed = Seed()
    watch_id = await watch(db, seed, f"w{channel}", channel, role_id=77)
    ids = []
    for n in range(count):
        ev = await event(db, seed, f"story {channel}-{n}", summary="NATO draft communique text")
        ids.append(await alert(db, watch_id, ev, channel, ["communique"]))
    return ids


async def test_claim_returns_full_view_with_stable_nonce(db: Database) -> None:
    seed = Seed()
    watch_id = await watch(db, seed, "NATO communique", CHANNEL, role_id=77)
    ev = await event(db, seed, "NATO Summit Draft Communique", summary="dual-use materials")
    await add_source(db, seed, ev, "Reuters")
    alert_id = await alert(db, watch_id, ev, CHANNEL, ["communique"])

    (view,) = await outbox.claim_pending(db, "a", lease_seconds=60, now=T0)

    assert view.id == alert_id
    assert view.status == "sending"
    assert view.watch_name == "NATO communique" and view.role_id == 77
    assert view.event_title == "NATO Summit Draft Communique"
    assert view.source_names == ("Bloomberg", "Reuters")
    assert view.snippet_source == "dual-use materials"
    assert view.matched_terms == ("communique",)
    assert view.nonce is not None and len(view.nonce) <= 25 and not view.is_digest
    (row,) = await alert_rows(db)
    assert (row.claimed_by, row.nonce) == ("a", view.nonce)
    assert row.claimed_until == T0 + timedelta(seconds=60)


async def test_live_lease_blocks_other_owner_and_expired_lease_keeps_nonce(db: Database) -> None:
    await _alerts(db, 3)
    first = await outbox.claim_pending(db, "a", lease_seconds=60, now=T0)
    assert len(first) == 3

    assert (
        await outbox.claim_pending(db, "b", lease_seconds=60, now=T0 + timedelta(seconds=59)) == []
    )

    again = await outbox.claim_pending(db, "b", lease_seconds=60, now=T0 + timedelta(seconds=61))
    assert [v.id for v in again] == [v.id for v in first]
    assert [v.nonce for v in again] == [v.nonce for v in first]
    assert {r.claimed_by for r in await alert_rows(db)} == {"b"}


async def test_limit_claims_oldest_first(db: Database) -> None:
    ids = await _alerts(db, 5)
    claimed = await outbox.claim_pending(db, "a", limit=2, now=T0)
    assert [v.id for v in claimed] == ids[:2]
    rest = await outbox.claim_pending(db, "a", limit=10, now=T0)
    assert [v.id for v in rest] == ids[2:]


async def test_retry_waits_for_next_attempt_and_counts(db: Database) -> None:
    (alert_id,) = await _alerts(db, 1)
    (view,) = await outbox.claim_pending(db, "a", now=T0)
    await outbox.mark_retry(db, alert_id, "503 Service Unavailable", T0 + timedelta(seconds=30))

    assert await outbox.claim_pending(db, "a", now=T0 + timedelta(seconds=29)) == []
    (again,) = await outbox.claim_pending(db, "a", now=T0 + timedelta(seconds=30))
    assert again.attempts == 1 and again.nonce == view.nonce
    (row,) = await alert_rows(db)
    assert row.last_error == "503 Service Unavailable"


async def test_burst_shares_one_digest_nonce_and_is_claimed_whole(db: Database) -> None:
    burst = await _alerts(db, 6, channel=1)
    calm = await _alerts(db, 2, channel=2)

    views = await outbox.claim_pending(db, "a", now=T0, burst_threshold=3)

    by_id = {v.id: v for v in views}
    assert {by_id[i].nonce for i in burst} == {by_id[burst[0]].nonce}
    assert all(by_id[i].is_digest for i in burst)
    assert len({by_id[i].nonce for i in calm}) == 2
    assert not any(by_id[i].is_digest for i in calm)

    # A retried digest comes back whole even when the limit would cut it.
    await outbox.mark_retry(db, burst, "timeout", T0)
    regrouped = await outbox.claim_pending(db, "a", limit=2, now=T0, burst_threshold=3)
    assert sorted(v.id for v in regrouped) == burst
    assert {v.nonce for v in regrouped} == {by_id[burst[0]].nonce}


async def test_sent_then_new_source_is_claimed_for_edit_once(db: Database) -> None:
    seed = Seed()
    watch_id = await watch(db, seed, "NATO communique", CHANNEL)
    ev = await event(db, seed, "NATO Summit Draft Communique")
    alert_id = await alert(db, watch_id, ev, CHANNEL)
    await outbox.claim_pending(db, "a", now=T0)
    await outbox.mark_sent(db, [alert_id], 555, now=T0)
    assert await outbox.claim_dirty(db, "a", now=T0) == []

    await add_source(db, seed, ev, "Reuters")
    (view,) = await outbox.claim_dirty(db, "a", lease_seconds=60, now=T0)
    assert view.message_id == 555 and view.source_names == ("Bloomberg", "Reuters")
    assert await outbox.claim_dirty(db, "b", now=T0) == []

    # The editor died: once the lease runs out the edit is claimable again.
    (retry,) = await outbox.claim_dirty(db, "b", now=T0 + timedelta(seconds=61))
    assert retry.id == alert_id
    await outbox.mark_edited(db, [alert_id])
    assert await outbox.claim_dirty(db, "b", now=T0 + timedelta(hours=1)) == []
    (row,) = await alert_rows(db)
    assert (row.status, row.dirty, row.claimed_until) == ("sent", False, None)


async def test_source_arriving_during_edit_triggers_another_edit(db: Database) -> None:
    seed = Seed()
    watch_id = await watch(db, seed, "w", CHANNEL)
    ev = await event(db, seed, "story")
    alert_id = await alert(db, watch_id, ev, CHANNEL)
    await outbox.claim_pending(db, "a", now=T0)
    await outbox.mark_sent(db, [alert_id], 9, now=T0)
    await add_source(db, seed, ev, "Reuters")
    await outbox.claim_dirty(db, "a", now=T0)
    await add_source(db, seed, ev, "AP")
    await outbox.mark_edited(db, [alert_id])

    (view,) = await outbox.claim_dirty(db, "a", now=T0)
    assert view.source_names == ("Bloomberg", "Reuters", "AP")


async def test_source_joining_while_in_flight_marks_the_sent_alert_dirty(db: Database) -> None:
    seed = Seed()
    watch_id = await watch(db, seed, "w", CHANNEL)
    ev = await event(db, seed, "story")
    quiet = await event(db, seed, "quiet story")
    alert_id = await alert(db, watch_id, ev, CHANNEL)
    quiet_id = await alert(db, watch_id, quiet, CHANNEL)
    views = await outbox.claim_pending(db, "a", now=T0)
    # Ingest only flags rows already 'sent'; this one is still 'sending'.
    await add_source(db, seed, ev, "Reuters")
    shown = {v.id: len(v.sources) for v in views}
    await outbox.mark_sent(db, [alert_id], 1, now=T0, rendered_sources={alert_id: shown[alert_id]})
    await outbox.mark_sent(db, [quiet_id], 2, now=T0, rendered_sources={quiet_id: shown[quiet_id]})

    (view,) = await outbox.claim_dirty(db, "a", now=T0)
    assert view.id == alert_id and view.source_names == ("Bloomberg", "Reuters")


async def test_release_hands_back_sends_and_edits_of_one_owner_only(db: Database) -> None:
    ids = await _alerts(db, 3)
    await outbox.claim_pending(db, "a", limit=2, now=T0)
    (other,) = await outbox.claim_pending(db, "b", now=T0)
    await outbox.mark_sent(db, [ids[0]], 7, now=T0)
    async with db.session() as session:
        await session.execute(update(Alert).where(Alert.id == ids[0]).values(dirty=True))
    await outbox.claim_dirty(db, "a", now=T0)

    assert await outbox.release_claims(db, "a") == 2
    rows = {r.id: r for r in await alert_rows(db)}
    assert (rows[ids[0]].status, rows[ids[0]].dirty, rows[ids[0]].claimed_by) == (
        "sent",
        True,
        None,
    )
    assert (rows[ids[1]].status, rows[ids[1]].claimed_by) == ("pending", None)
    assert rows[ids[1]].nonce is not None
    assert (rows[other.id].status, rows[other.id].claimed_by) == ("sending", "b")


async def test_release_dead_claims_hands_back_only_the_owners_said_dead(db: Database) -> None:
    ids = await _alerts(db, 3)
    await outbox.claim_pending(db, "dead", limit=2, now=T0)
    await outbox.claim_pending(db, "alive", now=T0)
    asked: list[str] = []

    def is_dead(owner: str) -> bool:
        asked.append(owner)
        return owner == "dead"

    assert await outbox.release_dead_claims(db, is_dead) == {"dead": 2}
    assert sorted(asked) == ["alive", "dead"]
    rows = {r.id: r for r in await alert_rows(db)}
    assert [(rows[i].status, rows[i].claimed_by) for i in ids] == [
        ("pending", None),
        ("pending", None),
        ("sending", "alive"),
    ]
    assert await outbox.release_dead_claims(db, is_dead) == {}


async def test_failed_alerts_are_counted_and_listed(db: Database) -> None:
    ids = await _alerts(db, 3)
    await outbox.claim_pending(db, "a", now=T0)
    await outbox.mark_failed(db, ids[0], "channel 1001 not found (404)")
    await outbox.mark_sent(db, ids[1:], 42, now=T0)

    stats = await outbox.outbox_stats(db)
    assert (stats.failed, stats.sent, stats.pending, stats.sending) == (1, 2, 0, 0)
    (failed,) = await outbox.failed_alerts(db)
    assert failed.id == ids[0] and failed.reason == "channel 1001 not found (404)"
    assert await outbox.claim_pending(db, "a", now=T0 + timedelta(days=1)) == []


async def test_concurrent_claimers_split_the_outbox(db: Database, tmp_path: Path) -> None:
    ids = await _alerts(db, 40)
    other = Database(db.url)
    try:
        results = await asyncio.gather(
            *(
                outbox.claim_pending(database, owner, limit=7, now=T0)
                for _ in range(4)
                for database, owner in ((db, "a"), (other, "b"))
            )
        )
    finally:
        await other.dispose()
    claimed = [v.id for views in results for v in views]
    assert len(claimed) == len(set(claimed))
    assert sorted(claimed) == ids[: len(claimed)]


async def test_daily_digest_groups_events_per_watch(db: Database) -> None:
    seed = Seed()
    w1 = await watch(db, seed, "NATO communique", CHANNEL)
    w2 = await watch(db, seed, "dual-use", CHANNEL)
    w3 = await watch(db, seed, "elsewhere", 2002)
    today = await event(db, seed, "today", occurred_at=T0)
    old = await event(db, seed, "last week", occurred_at=T0 - timedelta(days=7))
    for w in (w1, w2):
        await alert(db, w, today, CHANNEL)
    await alert(db, w1, old, CHANNEL)
    await alert(db, w3, today, 2002)

    digest = await outbox.daily_digest(db, CHANNEL, T0 - timedelta(days=1), T0 + timedelta(hours=1))

    assert list(digest) == ["NATO communique", "dual-use"]
    assert [line.title for line in digest["NATO communique"]] == ["today"]
    assert digest["dual-use"][0].sources == 1


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = f"tb_outbox_test_{os.getpid()}"


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    asyncpg = pytest.importorskip("asyncpg")
    try:
        conn = await asyncpg.connect(PG_ADMIN)
    except (OSError, asyncpg.PostgresError) as exc:
        postgres_unreachable(exc)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {PG_DB}")
        url = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
        await upgrade_async(url)
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()
    finally:
        await conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        await conn.close()


@pytest.mark.postgres
async def test_postgres_skip_locked_claims_are_disjoint(pg_db: Database) -> None:
    ids = await _alerts(pg_db, 30)
    other = Database(pg_db.url)
    try:
        results = await asyncio.gather(
            *(
                outbox.claim_pending(database, owner, limit=4, now=T0, burst_threshold=10)
                for _ in range(4)
                for database, owner in ((pg_db, "a"), (other, "b"))
            )
        )
    finally:
        await other.dispose()
    claimed = [v.id for views in results for v in views]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) <= set(ids)
    rows = {r.id: r for r in await alert_rows(pg_db)}
    assert all(rows[i].status == "sending" and rows[i].nonce for i in claimed)
    # Expired leases come back on PostgreSQL too, nonce intact.
    later = await outbox.claim_pending(pg_db, "c", limit=100, now=T0 + timedelta(hours=1))
    assert {v.id for v in later} == set(ids)
    assert all(v.nonce == rows[v.id].nonce for v in later if v.id in claimed)
