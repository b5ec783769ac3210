"""FetchSettings.from_settings maps the [polling] settings field by field (issue 13)."""

from __future__ import annotations

from dataclasses import fields, replace

from feeds.fetch import FetchSettings
from timeline.app.config import PollingSettings

# FetchSettings fields that are not config keys (set in code, for tests and benchmarks).
NOT_IN_CONFIG = {"parse_timeout_seconds"}


def test_every_shared_setting_reaches_the_fetcher() -> None:
    polling = replace(
        PollingSettings(),
        timeout_seconds=3.5,
        max_body_bytes=12345,
        user_agent="Tester/1",
        per_host_concurrency=7,
        max_redirects=2,
        allow_private=("127.0.0.1",),
        parse_workers=3,
        skip_seen_items=True,  # FetchSettings' own default is False
    )
    fetch = FetchSettings.from_settings(polling)
    shared = {f.name for f in fields(FetchSettings)} - NOT_IN_CONFIG
    assert shared <= {f.name for f in fields(PollingSettings)}, "a fetch setting lost its key"
    for name in shared:
        assert getattr(fetch, name) == getattr(polling, name), name
        assert getattr(fetch, name) != getattr(FetchSettings(), name), f"{name}: test value"
