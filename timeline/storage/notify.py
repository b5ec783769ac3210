"""PostgreSQL as the coordination engine: outbox NOTIFY/LISTEN and a start-up lock.

Ingest writes its alerts and, in the same transaction, `NOTIFY timeline_outbox`; PostgreSQL
delivers the notification only when that transaction commits, so the Discord process never
wakes up to rows it cannot see yet. The Discord process keeps one connection that LISTENs
(`OutboxListener`) and wakes delivery on each notification. Notifications are a hint, not a
queue: one lost while the listener reconnects costs nothing, because delivery also sweeps the
outbox on its own interval, and the listener wakes delivery once after every (re)connect.

On SQLite (one process) every function here is a no-op; the all-in-one runner wakes delivery
in-process instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from timeline.app import metrics
from timeline.storage.engine import normalise_url

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "timeline_outbox"
KEEPALIVE_SECONDS = 30.0
MAX_RECONNECT_DELAY = 30.0


def is_postgres(url: str) -> bool:
    """Whether `url` names a PostgreSQL database."""
    return make_url(normalise_url(url)).get_backend_name() == "postgresql"


def asyncpg_dsn(url: str) -> str:
    """Turn a SQLAlchemy PostgreSQL URL into a DSN asyncpg accepts."""
    parsed = make_url(normalise_url(url)).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def lock_key(name: str) -> int:
    """Map a lock name onto PostgreSQL's signed 64-bit advisory lock key space."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def announce_outbox(session: AsyncSession) -> None:
    """Queue a `timeline_outbox` notification, sent when the session's transaction commits."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})


@contextlib.asynccontextmanager
async def startup_lock(url: str, name: str = "timeline-bot:startup") -> AsyncIterator[None]:
    """Hold a PostgreSQL session advisory lock (no-op on SQLite) around start-up work.

    Several processes starting together would otherwise run the migrations and the config sync
    at the same time and trip over each other's CREATE TABLE and inserts.
    """
    if not is_postgres(url):
        yield
        return
    import asyncpg  # noqa: PLC0415 (the PostgreSQL driver is optional)

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=30)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key(name))
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key(name))
    finally:
        await conn.close(timeout=5)


class OutboxListener:
    """LISTEN for outbox notifications on one dedicated connection and call `on_notify`.

    `start()` it and `stop()` it (or use it as an async context manager). It reconnects with
    backoff when the connection drops and calls `on_notify` after each (re)connect, so rows
    written while it was deaf are picked up at once.
    """

    def __init__(self, url: str, on_notify: Callable[[], None]) -> None:
        self.dsn = asyncpg_dsn(url)
        self.on_notify = on_notify
        self.listening = asyncio.Event()
        self.notifications = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OutboxListener:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Start listening in a background task owned by this object."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outbox-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_message(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.notifications += 1
        metrics.OUTBOX_NOTIFICATIONS.inc()
        self.on_notify()

    async def _run(self) -> None:
        import asyncpg  # noqa: PLC0415 (the PostgreSQL driver is optional)

        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("outbox listener cannot connect (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)  # reconnect backoff
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(OUTBOX_CHANNEL, self._on_message)
                self.listening.set()
                delay = 0.5
                log.info("listening for outbox notifications")
                self.on_notify()  # catch up on anything committed while not listening
                await self._watch(conn, lost)
                log.warning("outbox listener lost its connection; reconnecting")
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("outbox listener failed (%s); reconnecting", exc)
            finally:
                self.listening.clear()
                if not conn.is_closed():
                    conn.terminate()

    async def _watch(self, conn: Any, lost: asyncio.Event) -> None:
        # A half-open TCP connection would keep us deaf forever: ping it now and then.
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), KEEPALIVE_SECONDS)
                return
            await conn.execute("SELECT 1", timeout=10)
