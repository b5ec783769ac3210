"""bench/web.py at a tiny size: it builds its store, serves the app and prints its table."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import web as bench_web


def test_bench_web_runs_at_a_tiny_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 1,100 events: enough for the 40-page cursor walk of 25 events a page.
    db = tmp_path / "bench_web.db"
    assert bench_web.main(["--events", "1100", "--requests", "3", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "first page" in out and "page 41 (cursor)" in out and "search dual-use" in out
    assert "search drone OR drones, page 5" in out and "load average before" in out
    assert "target search w17 w23: p95" in out and "target first page: p95" in out
