"""Prometheus metrics of one process: polls, fetch failures, ingest, alert delivery, outbox.

The counters live in a registry of their own (`REGISTRY`), incremented where the work is
recorded (`timeline.usecases.polling`, `timeline.storage.outbox`); the HTTP endpoint that serves them is in
`timeline.app.ops_http` (this layer imports no aiohttp). Counters are per process: a deployment sums
them over its processes, and reads the outbox depth (a database figure) from any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from sqlalchemy import text

from timeline.storage.engine import Database

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter(
    "timeline_polls",
    "Feed fetches recorded, by outcome (ok, not_modified, error, ...).",
    ["outcome"],
    registry=REGISTRY,
)
FETCH_FAILURES = Counter(
    "timeline_fetch_failures",
    "Failed feed fetches, by kind (timeout, http, dns, parse, ...).",
    ["kind"],
    registry=REGISTRY,
)
FEEDS_CLAIMED = Counter(
    "timeline_feeds_claimed", "Due feeds this process leased for a fetch.", registry=REGISTRY
)
ITEMS_INGESTED = Counter(
    "timeline_items_ingested", "New feed entries stored by ingest.", registry=REGISTRY
)
ALERTS_CREATED = Counter(
    "timeline_alerts_created", "Outbox rows written by ingest.", registry=REGISTRY
)
ALERTS_DELIVERED = Counter(
    "timeline_alerts_delivered",
    "Alerts marked sent after Discord took the message.",
    registry=REGISTRY,
)
ALERTS_FAILED = Counter("timeline_alerts_failed", "Alerts given up on for good.", registry=REGISTRY)
ALERTS_RETRIED = Counter(
    "timeline_alerts_retried", "Alert sends put back for a later retry.", registry=REGISTRY
)
ALERT_LATENCY = Histogram(
    "timeline_alert_latency_seconds",
    "Time from the outbox row's creation to Discord accepting the message.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    "timeline_outbox_depth",
    "Alerts per outbox state (pending, sending, failed, dirty), read at scrape time.",
    ["state"],
    registry=REGISTRY,
)
OUTBOX_NOTIFICATIONS = Counter(
    "timeline_outbox_notifications",
    "PostgreSQL NOTIFY wake-ups received by the delivery process.",
    registry=REGISTRY,
)


def observe_latencies(created: Iterable[datetime], sent_at: datetime) -> None:
    """Record the outbox-to-Discord latency of alerts created at `created`."""
    for value in created:
        ALERT_LATENCY.observe(max((sent_at - value).total_seconds(), 0.0))


async def refresh_outbox_depth(db: Database) -> None:
    """Read the outbox counts into the depth gauge (called before each scrape)."""
    from timeline.storage.outbox import outbox_stats  # noqa: PLC0415 (outbox imports metrics)

    stats = await outbox_stats(db)
    for state in ("pending", "sending", "failed", "dirty"):
        OUTBOX_DEPTH.labels(state).set(getattr(stats, state))


async def database_ok(db: Database) -> bool:
    """Return whether the database answers a trivial query (for health checks)."""
    async with db.session() as session:
        return bool(await session.scalar(text("SELECT 1")) == 1)


def render() -> tuple[bytes, str]:
    """Return the registry in the Prometheus text format, with its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def value(name: str, labels: dict[str, str] | None = None) -> float:
    """Return the current value of one sample (0 if it was never set), e.g. for tests."""
    found = REGISTRY.get_sample_value(name, labels or {})
    return float(found) if found is not None else 0.0
